"""Windows over a Doc's tokens bounded in wordpieces, as plain functions: the
span getter (`pos_ner.span_getters`) and the ONNX runtime, which runs without
torch or spacy-transformers, cut documents with the same code."""

from bisect import bisect_left
from itertools import accumulate
from typing import Any, Dict, List, Sequence, Tuple

from spacy.pipeline import Sentencizer
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


def sentence_window_bounds(
    lengths: Sequence[int], sentences: Sequence[Tuple[int, int]], window: int, stride: int
) -> List[Tuple[int, int]]:
    """(start, end) token windows that begin and end at sentence boundaries.

    Whole sentences (`sentences`: (start, end) token bounds covering the
    tokens in order) are packed the way `window_bounds` packs tokens, a
    sentence counting its wordpieces; a sentence longer than `window` is cut
    within itself by `window_bounds`."""
    sentence_lengths = [sum(lengths[start:end]) for start, end in sentences]
    windows: List[Tuple[int, int]] = []
    for first, last in window_bounds(sentence_lengths, window, stride):
        start, end = sentences[first][0], sentences[last - 1][1]
        if sentence_lengths[first] > window:  # such a sentence is alone in its window
            windows.extend((start + a, start + b) for a, b in window_bounds(lengths[start:end], window, stride))
        else:
            windows.append((start, end))
    return windows


_SENTENCIZER = Sentencizer()


def sentences_of(doc: Doc) -> List[Tuple[int, int]]:
    """(start, end) of each sentence of `doc`: its own boundaries where a
    component set them, else those of spaCy's rule-based `sentencizer` (which
    `doc` is not changed by)."""
    if doc.has_annotation("SENT_START"):
        return [(sent.start, sent.end) for sent in doc.sents]
    starts = [i for i, is_start in enumerate(_SENTENCIZER.predict([doc])[0]) if is_start]
    return list(zip(starts, [*starts[1:], len(doc)]))


def doc_windows(doc: Doc, lengths: Sequence[int], window: int, stride: int, sentences: bool) -> List[Tuple[int, int]]:
    """The windows of `doc`, whose tokens are `lengths` wordpieces long: by
    `window_bounds`, or with `sentences` by `sentence_window_bounds`."""
    if not sentences or not len(doc):
        return window_bounds(lengths, window, stride)
    return sentence_window_bounds(lengths, sentences_of(doc), window, stride)


def encoder_max_length(tokenizer: Any, transformer: Any) -> int:
    """The most wordpieces the encoder takes: the tokenizer's declared maximum,
    or the model's position embeddings where the tokenizer declares none."""
    limit = getattr(getattr(transformer, "config", None), "max_position_embeddings", None)
    declared = int(tokenizer.model_max_length)
    return min(declared, limit) if limit and declared >= UNSET_MAX_LENGTH else min(declared, UNSET_MAX_LENGTH)


def wordpiece_lengths(tokenizer: Any, texts: Sequence[str]) -> List[int]:
    """Wordpieces of each text, each tokenized on its own, special tokens left out.

    Quietly (`verbose=False`): a text is counted here, never run through the
    encoder as it is, so the tokenizer's warning that a text longer than its
    maximum "will result in indexing errors" (a token of hundreds of wordpieces)
    is untrue here; the windows are what keep the encoder within its maximum."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]]


def wordpiece_counts(tokenizer: Any, doc: Doc) -> List[int]:
    """Wordpieces of each token of `doc`, special tokens left out."""
    return wordpiece_lengths(tokenizer, [token.text for token in doc])


class WordpieceCounter:
    """`wordpiece_counts` with the count of each distinct token text kept, so a
    word is tokenized once, not again in every document and every training step
    (the per-word tokenizer call is a measurable share of a served request's time;
    see the project's benchmark results).
    The cache holds plain strings (nothing of a Doc's memory zone) and starts
    over once it holds `max_entries` texts."""

    def __init__(self, tokenizer: Any, max_entries: int = 200_000):
        self.tokenizer, self.max_entries = tokenizer, max_entries
        self._counts: Dict[str, int] = {}

    def __call__(self, doc: Doc) -> List[int]:
        texts = [token.text for token in doc]
        counts = self._counts
        missing = list(dict.fromkeys(text for text in texts if text not in counts))
        if missing:
            if len(counts) + len(missing) > self.max_entries:
                counts = self._counts = {}
            counts.update(zip(missing, wordpiece_lengths(self.tokenizer, missing)))
        return [counts[text] for text in texts]
