"""Prediction of the encoder in groups of windows of similar length.

spacy-transformers tokenizes all windows of a batch together and pads them to
the longest, so each document's shorter last window costs a full one (see
docs/speed.md, "Length groups"). `GroupedByLength` replaces the forward of
the Hugging Face wrapper layer: at prediction it sorts the windows by length and
runs them in groups of at most `max_wordpieces` padded positions, each group
padded only to its own longest window, and puts the outputs back in the original
order. Real positions get the same vectors up to float rounding (tested);
padded positions, which nothing reads, get zeros.

Training keeps the single padded batch, so that a seed trains the same model
whatever `max_wordpieces` is. Outputs other than `last_hidden_state` and
`pooler_output` (hidden states or attentions asked for in `transformer_config`)
fall back to one batch.
"""

from typing import TYPE_CHECKING, Any, Callable, List, Sequence, Tuple

if TYPE_CHECKING:  # spacy-transformers imports torch; the ONNX runtime groups documents without it
    from spacy_transformers.data_classes import WordpieceBatch

GROUPED_OUTPUTS = {"last_hidden_state", "pooler_output"}


def length_groups(lengths: Sequence[int], max_wordpieces: int) -> List[List[int]]:
    """Indices of `lengths` sorted longest first and cut into groups whose size,
    padded to the group's longest, stays within `max_wordpieces` (each group at
    least one item)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: List[List[int]] = []
    for i in order:
        # The group's first item is its longest, since the order is descending.
        if groups and lengths[groups[-1][0]] * (len(groups[-1]) + 1) <= max_wordpieces:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _rows(wordpieces: "WordpieceBatch", rows: List[int]) -> "WordpieceBatch":
    from spacy_transformers.data_classes import WordpieceBatch

    width = max(wordpieces.lengths[i] for i in rows)
    token_type_ids = wordpieces.token_type_ids
    return WordpieceBatch(
        strings=[wordpieces.strings[i] for i in rows],
        input_ids=wordpieces.input_ids[rows, :width],
        attention_mask=wordpieces.attention_mask[rows, :width],
        lengths=[wordpieces.lengths[i] for i in rows],
        token_type_ids=None if token_type_ids is None else token_type_ids[rows, :width],
    )


def _no_backprop(d_output: Any) -> Any:
    raise ValueError("GroupedByLength: the output of a prediction (is_train=False) has no backprop")


class GroupedByLength:
    """Forward of spacy-transformers' HF wrapper layer that predicts in length
    groups (see the module's doc); `forward` is the wrapper's own forward. A class,
    not a closure, so that the pipeline pickles."""

    def __init__(self, forward: Callable, max_wordpieces: int):
        self.forward = forward
        self.max_wordpieces = max_wordpieces

    def __call__(self, model: Any, wordpieces: "WordpieceBatch", is_train: bool) -> Tuple[Any, Callable]:
        if is_train or self.max_wordpieces <= 0 or len(wordpieces) < 2:
            return self.forward(model, wordpieces, is_train)
        groups = length_groups(wordpieces.lengths, self.max_wordpieces)
        padded = wordpieces.input_ids.shape[1]
        if len(groups) == 1 and max(wordpieces.lengths) == padded:
            return self.forward(model, wordpieces, is_train)
        outputs = []
        for rows in groups:
            output, _ = self.forward(model, _rows(wordpieces, rows), False)
            if set(output.keys()) - GROUPED_OUTPUTS:
                return self.forward(model, wordpieces, is_train)
            outputs.append((rows, output))
        import torch  # the wrapper's outputs are torch tensors

        first = outputs[0][1]
        hidden = first.last_hidden_state
        like = {"dtype": hidden.dtype, "device": hidden.device}
        last = torch.zeros((len(wordpieces), padded, hidden.shape[-1]), **like)
        pooled = None
        if getattr(first, "pooler_output", None) is not None:
            pooled = torch.zeros((len(wordpieces), first.pooler_output.shape[-1]), **like)
        for rows, output in outputs:
            index = torch.tensor(rows, device=hidden.device)
            last[index, : output.last_hidden_state.shape[1]] = output.last_hidden_state
            if pooled is not None:
                pooled[index] = output.pooler_output
        fields = {"last_hidden_state": last}
        if pooled is not None:
            fields["pooler_output"] = pooled
        return type(first)(**fields), _no_backprop
