"""Windows over a Doc's tokens bounded in wordpieces, as plain functions: the
span getter (`pos_ner.span_getters`) and the ONNX runtime, which runs without
torch or spacy-transformers, cut documents with the same code."""

from bisect import bisect_left
from itertools import accumulate
from typing import Any, List, Sequence, Tuple

from spacy.tokens import Doc

WORDPIECE_WINDOWS = "pos_ner.wordpiece_windows.v1"
STRIDED_SPANS = "spacy-transformers.strided_spans.v1"
# Tokenizers without a declared maximum report a huge placeholder (transformers' VERY_LARGE_INTEGER).
UNSET_MAX_LENGTH = 10**9


def window_bounds(lengths: Sequence[int], window: int, stride: int) -> List[Tuple[int, int]]:
    """(start, end) token windows over tokens of `lengths` wordpieces.

    Each window holds as many tokens as fit in `window` wordpieces (at least
    one); the next starts at the first token `stride` wordpieces after the
    previous start, but no later than the previous end and late enough to reach
    past it. With every length 1 this gives spacy-transformers' strided_spans
    windows."""
    n_tokens = len(lengths)
    if not n_tokens:
        return []
    offsets = [0, *accumulate(lengths)]  # offsets[i]: wordpieces before token i
    windows = []
    start = 0
    while True:
        end = start + 1
        while end < n_tokens and offsets[end + 1] - offsets[start] <= window:
            end += 1
        windows.append((start, end))
        if end >= n_tokens:
            return windows
        # `stride` wordpieces on, but late enough that the next window reaches past this one.
        by_stride = bisect_left(offsets, offsets[start] + stride, start + 1, end)
        reaching = bisect_left(offsets, offsets[end + 1] - window, start + 1, end)
        start = max(by_stride, reaching)


def encoder_max_length(tokenizer: Any, transformer: Any) -> int:
    """The most wordpieces the encoder takes: the tokenizer's declared maximum,
    or the model's position embeddings where the tokenizer declares none."""
    limit = getattr(getattr(transformer, "config", None), "max_position_embeddings", None)
    declared = int(tokenizer.model_max_length)
    return min(declared, limit) if limit and declared >= UNSET_MAX_LENGTH else min(declared, UNSET_MAX_LENGTH)


def wordpiece_counts(tokenizer: Any, doc: Doc) -> List[int]:
    """Wordpieces of each token of `doc`, special tokens left out."""
    if not len(doc):
        return []
    encoded = tokenizer([token.text for token in doc], add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in encoded]
