"""Constrained decoding of per-token BIO probabilities into entities.

Pure numpy: `PosNer.set_annotations` and the ONNX runtime (`pos_ner.onnx`) both
call `decode`, so the two paths cannot drift apart.
"""

from functools import lru_cache
from typing import List, NamedTuple, Sequence, Tuple

import numpy
from spacy.training.iob_utils import iob_to_biluo, tags_to_entities

# The Span extension (`span._.confidence`) that holds `Entity.confidence` on a Doc.
CONFIDENCE_ATTR = "confidence"


class Entity(NamedTuple):
    """A decoded entity: tokens `start`..`end` (exclusive), its label, and its
    confidence: the lowest probability among the decoded tags of its tokens."""

    start: int
    end: int
    label: str
    confidence: float


def tag_names(labels: Sequence[str]) -> List[str]:
    """The output classes for `labels`: "O", then "B-X" and "I-X" for each label X."""
    return ["O"] + [f"{prefix}-{label}" for label in labels for prefix in ("B", "I")]


@lru_cache(maxsize=32)
def transition_masks(names: Tuple[str, ...]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """`allowed[i, j]`: tag j may follow tag i; `allowed_first[j]`: tag j may
    start a sentence. "I-X" only continues "B-X" or "I-X"."""
    n = len(names)
    allowed = numpy.ones((n, n), dtype=bool)
    allowed_first = numpy.ones(n, dtype=bool)
    for j, tag in enumerate(names):
        if tag.startswith("I-"):
            label = tag[2:]
            allowed_first[j] = False
            allowed[:, j] = [prev in (f"B-{label}", f"I-{label}") for prev in names]
    return allowed, allowed_first


def viterbi_decode(
    log_probs: numpy.ndarray,
    allowed: numpy.ndarray,
    allowed_first: numpy.ndarray,
    sent_starts: Sequence[bool],
) -> List[int]:
    """The most probable tag sequence in which every transition is allowed.
    At token 0 and at sentence starts only `allowed_first` tags may occur."""
    n_tokens, n_tags = log_probs.shape
    if n_tokens == 0:
        return []
    forbidden = numpy.where(allowed, 0.0, -numpy.inf)
    forbidden_first = numpy.where(allowed_first, 0.0, -numpy.inf)
    score = log_probs[0] + forbidden_first
    backpointers = numpy.zeros((n_tokens, n_tags), dtype=numpy.int64)
    for i in range(1, n_tokens):
        if sent_starts[i]:
            backpointers[i] = int(numpy.argmax(score))
            score = score.max() + log_probs[i] + forbidden_first
        else:
            candidates = score[:, None] + forbidden
            backpointers[i] = candidates.argmax(axis=0)
            score = candidates.max(axis=0) + log_probs[i]
    best = [int(numpy.argmax(score))]
    for i in range(n_tokens - 1, 0, -1):
        best.append(int(backpointers[i, best[-1]]))
    return best[::-1]


def decode(probs: numpy.ndarray, names: Sequence[str], sent_starts: Sequence[bool]) -> List[Entity]:
    """The entities of the best valid BIO sequence for `probs` (tokens × `names`)."""
    allowed, allowed_first = transition_masks(tuple(names))
    best = viterbi_decode(numpy.log(probs + 1e-12), allowed, allowed_first, sent_starts)
    chosen = probs[numpy.arange(len(best)), best]
    biluo = iob_to_biluo([names[i] for i in best])
    return [
        Entity(start, end + 1, label, float(chosen[start : end + 1].min()))
        for label, start, end in tags_to_entities(biluo)
    ]
