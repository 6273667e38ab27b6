"""Encoder windows bounded in wordpieces, not in spaCy tokens.

spacy-transformers' `strided_spans.v1` cuts a document into windows of a fixed
number of spaCy tokens. One token can split into thousands of wordpieces (a run
of dots in a table of contents, a URL, base64), so such a window overflows the
encoder: with a tokenizer that declares its maximum length the wordpieces past it
are dropped and every later token of the window silently gets a zero vector;
with one that does not, the position embeddings raise.

`pos_ner.wordpiece_windows.v1` counts each token's wordpieces with the
pipeline's own tokenizer and packs tokens into windows of at most `window`
wordpieces, the next window starting `stride` wordpieces later (never skipping a
token). A token with more wordpieces than `window` gets a window of its own and
is cut to the encoder's maximum length, so it keeps a vector from its first
wordpieces and every other token keeps its full context. The tokenizer comes
from the transformer model the getter belongs to, so use it with
`pos_ner.TransformerModel.v1`, which connects the two.

With `sentences = true` a window also begins and ends at sentence boundaries:
whole sentences are packed by the same rule (a longer sentence is cut within
itself), so the encoder never sees a sentence cut at a window's edge. The
boundaries are the Doc's own where an earlier component set them, else those of
spaCy's rule-based `sentencizer`, found by the getter itself, so training,
evaluation and prediction on raw text cut alike.

Counts are per token: the joint tokenization of a window's text can differ by a
piece at a token boundary, which the margin between `window` and the encoder's
maximum (512 for BERT) absorbs.
"""

from typing import Any, Dict, List, Optional, Sequence

from spacy.tokens import Doc, Span
from spacy_transformers.layers import TransformerModel
from spacy_transformers.util import registry

from .windows import WORDPIECE_WINDOWS, WordpieceCounter, doc_windows, encoder_max_length

# The key of transformers' "Token indices sequence length is longer than the specified
# maximum sequence length for this model" warning in a tokenizer's `deprecation_warnings`.
TOO_LONG_WARNING = "sequence-length-is-longer-than-the-specified-maximum"


class WordpieceWindows:
    """The span getter: call it on a batch of Docs for each Doc's windows."""

    def __init__(self, window: int, stride: int, sentences: bool = False):
        if window < 1 or not 0 < stride <= window:
            raise ValueError(f"{WORDPIECE_WINDOWS}: need window >= 1 and 0 < stride <= window, got {window}, {stride}")
        self.window, self.stride, self.sentences = window, stride, sentences
        self.model: Optional[TransformerModel] = None
        self._counter: Optional[WordpieceCounter] = None

    def bind(self, model: TransformerModel) -> None:
        """Count with `model`'s tokenizer (loaded when the model is initialized or read from disk)."""
        self.model = model

    def tokenizer(self) -> Any:
        if self.model is None:
            raise ValueError(
                f"{WORDPIECE_WINDOWS} needs the transformer's tokenizer: use it as the get_spans of "
                '[components.transformer.model] with @architectures = "pos_ner.TransformerModel.v1"'
            )
        tokenizer = self.model.tokenizer
        # Without a declared maximum spacy-transformers cannot cut an over-long token's
        # wordpieces, and the position embeddings would fail on it.
        tokenizer.model_max_length = encoder_max_length(tokenizer, self.model.transformer)
        # spacy-transformers tokenizes each window whole, and the one window longer than the
        # maximum (a token of more wordpieces than `window`, alone) it cuts to the maximum
        # (truncate_oversize_splits) before the encoder sees it: the tokenizer's warning that
        # such a sequence "will result in indexing errors" is untrue for this pipeline. Marked
        # as given (transformers gives it once per tokenizer), for this tokenizer only.
        warnings_given = getattr(tokenizer, "deprecation_warnings", None)
        if isinstance(warnings_given, dict):
            warnings_given[TOO_LONG_WARNING] = True
        if self.window + tokenizer.num_special_tokens_to_add() > tokenizer.model_max_length:
            raise ValueError(
                f"{WORDPIECE_WINDOWS}: window = {self.window} wordpieces does not fit the encoder's "
                f"maximum of {tokenizer.model_max_length} with its special tokens; lower the window"
            )
        return tokenizer

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "_counter": None}  # a pickled pipeline does not carry the cache

    def counter(self) -> WordpieceCounter:
        """Counts with the current tokenizer (loading from disk replaces it, and with it the cache)."""
        tokenizer = self.tokenizer()
        if self._counter is None or self._counter.tokenizer is not tokenizer:
            self._counter = WordpieceCounter(tokenizer)
        return self._counter

    def __call__(self, docs: Sequence[Doc]) -> List[List[Span]]:
        counter = self.counter()
        return [
            [doc[start:end] for start, end in doc_windows(doc, counter(doc), self.window, self.stride, self.sentences)]
            for doc in docs
        ]


@registry.span_getters(WORDPIECE_WINDOWS)  # type: ignore[attr-defined]
def configure_wordpiece_windows(window: int, stride: int, sentences: bool = False) -> WordpieceWindows:
    """Windows of at most `window` wordpieces, starting every `stride` wordpieces;
    with `sentences`, made of whole sentences."""
    return WordpieceWindows(window, stride, sentences)
