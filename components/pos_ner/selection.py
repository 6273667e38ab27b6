"""Which unlabelled records to annotate next (`pos-ner select`): record scores
from the model's own probabilities, and the ranking of the three strategies.

Pure Python and numpy (no spaCy), so the simulation that picks the defaults
can call it on stored probabilities.

Every score is confidence-like, in [0, 1]: 1 for a record the model is sure
of, lower for one it is less sure of; `uncertainty` and `diverse` pick the
lowest scores first (Label Studio's and Prodigy's own reading of a
prediction's score). Scores are rounded to `SCORE_DIGITS` decimals before
ranking, so float noise (a batch padded differently) cannot reorder two
records that score the same; ties are broken by a draw from the seed, then
by input order.
"""

import json
import random
from enum import Enum
from typing import Any, Dict, Hashable, List, Optional, Sequence

import numpy

SCORE_DIGITS = 6


class Strategy(str, Enum):
    """random: the baseline, a seeded shuffle; uncertainty: the lowest scores
    first; diverse: uncertainty, at most `per_doc_cap` records per document
    group and no text twice (lowercased, whitespace collapsed)."""

    random = "random"
    uncertainty = "uncertainty"
    diverse = "diverse"


class Scorer(str, Enum):
    """How a record's score is computed (see `record_score`)."""

    margin = "margin"
    entropy = "entropy"
    confidence = "confidence"


# Provisional: the default scorer (and strategy) will be chosen by a simulation on labelled data.
DEFAULT_SCORER = Scorer.margin
DEFAULT_STRATEGY = Strategy.uncertainty
# Diverse: picks per document group unless the caller says otherwise.
DEFAULT_PER_DOC_CAP = 1
# Diverse: the record field (or field of its "meta" object) that names its document.
DEFAULT_GROUP_FIELD = "doc_id"


def margin_score(probs: numpy.ndarray) -> float:
    """The smallest gap, over the tokens, between the best and the second-best
    tag probability (probs: tokens × tags, at least one token)."""
    top = numpy.sort(numpy.asarray(probs, dtype=numpy.float64), axis=1)[:, -2:]
    return float((top[:, 1] - top[:, 0]).min())


def entropy_score(probs: numpy.ndarray) -> float:
    """1 minus the mean token entropy, each divided by log(number of tags), so
    neither the record's length nor the number of labels sets the scale."""
    p = numpy.clip(numpy.asarray(probs, dtype=numpy.float64), 1e-12, 1.0)
    entropy = -(p * numpy.log(p)).sum(axis=1) / numpy.log(p.shape[1])
    return float(1.0 - entropy.mean())


def confidence_score(confidences: Sequence[float]) -> float:
    """The lowest entity confidence (`span._.confidence`, as calibrated); 1 for
    a record without entities: this scorer never asks about entities missed."""
    return float(min(confidences, default=1.0))


def record_score(scorer: Scorer, probs: numpy.ndarray, confidences: Sequence[float]) -> float:
    """A record's score under `scorer`, rounded to SCORE_DIGITS decimals: from
    its per-token tag probabilities (margin, entropy) or from the confidences of
    the entities the model found in it, those below a threshold included
    (confidence)."""
    if scorer == Scorer.margin:
        score = margin_score(probs)
    elif scorer == Scorer.entropy:
        score = entropy_score(probs)
    else:
        score = confidence_score(confidences)
    return round(min(1.0, max(0.0, score)), SCORE_DIGITS)


def tie_breaks(n: int, seed: int) -> List[float]:
    """One draw per record, in input order, from `seed`."""
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


def random_order(n: int, seed: int) -> List[int]:
    """The indices 0..n-1 shuffled by `seed` (the same seed, the same order)."""
    draws = tie_breaks(n, seed)
    return sorted(range(n), key=lambda i: (draws[i], i))


def uncertainty_order(scores: Sequence[float], seed: int) -> List[int]:
    """The indices of `scores`, lowest score first; ties by the seed's draw, then input order."""
    draws = tie_breaks(len(scores), seed)
    return sorted(range(len(scores)), key=lambda i: (scores[i], draws[i], i))


def group_key(fields: Dict[str, Any], name: str = DEFAULT_GROUP_FIELD) -> Optional[Hashable]:
    """The document a record belongs to: its field `name`, else that field of
    its "meta" object; None (a group of its own) if it has neither or it is null."""
    meta = fields.get("meta")
    value = fields[name] if name in fields else meta.get(name) if isinstance(meta, dict) else None
    return None if value is None else json.dumps(value, sort_keys=True)


def text_key(text: str) -> str:
    """What makes two texts duplicates for `diverse`: lowercased, whitespace collapsed."""
    return " ".join(text.lower().split())


def diverse_pick(
    order: Sequence[int], n: int, groups: Sequence[Optional[Hashable]], texts: Sequence[str], per_doc_cap: int
) -> List[int]:
    """The first `n` of `order` that keep at most `per_doc_cap` per group (None:
    no group) and no `text_key` twice; fewer if the pool has no more such records."""
    picked: List[int] = []
    per_group: Dict[Hashable, int] = {}
    seen = set()
    for i in order:
        if len(picked) == n:
            break
        key, group = text_key(texts[i]), groups[i]
        if key in seen or (group is not None and per_group.get(group, 0) >= per_doc_cap):
            continue
        picked.append(i)
        seen.add(key)
        if group is not None:
            per_group[group] = per_group.get(group, 0) + 1
    return picked
