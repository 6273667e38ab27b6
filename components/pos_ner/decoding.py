"""Constrained decoding of per-token BIO probabilities into entities.

Pure numpy: `PosNer.set_annotations` and the ONNX runtime (`pos_ner.onnx`) both
call `decode`, so the two paths cannot drift apart. A model with learned
transition scores (`pos_ner.PosNerModel.v1` with `transitions = true`) adds them
to the allowed transitions; its training loss (`pos_ner.layers.transitions`)
scores the same lattice (`lattice`).
"""

from functools import lru_cache
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy

# The Span extension (`span._.confidence`) that holds `Entity.confidence` on a Doc.
CONFIDENCE_ATTR = "confidence"


class Entity(NamedTuple):
    """A decoded entity: tokens `start`..`end` (exclusive), its label, and its
    confidence: the lowest probability among the decoded tags of its tokens
    (`decode`), or what `Calibration` makes of the probabilities."""

    start: int
    end: int
    label: str
    confidence: float


# What an entity's confidence is computed from (`Calibration.confidence`).
CONFIDENCE_METHODS = ("min", "span")


class Calibration(NamedTuple):
    """How an entity's confidence is computed from the token probabilities.

    `confidence`: "min", the lowest probability of the entity's decoded tags, or
    "span", the probability of exactly that span and label under the
    constrained lattice (`span_probabilities`). `temperature`: T > 0; the
    probabilities are raised to 1/T and renormalised per token (the learned
    transitions divided by T) before either is computed. The entities
    themselves always come from the unscaled probabilities, so calibration
    never changes which entities are found. Calibration() is the identity: the
    confidence `decode` gives."""

    confidence: str = "min"
    temperature: float = 1.0

    @classmethod
    def from_dict(cls, value: Optional[Dict]) -> "Calibration":
        """From the dict `to_dict` wrote (None: the identity); a bad one raises ValueError."""
        if not value:
            return cls()
        confidence, temperature = value.get("confidence", "min"), value.get("temperature", 1.0)
        if confidence not in CONFIDENCE_METHODS:
            methods = ", ".join(CONFIDENCE_METHODS)
            raise ValueError(f"calibration: confidence must be one of {methods}, got {confidence!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"calibration: temperature must be a number > 0, got {temperature!r}")
        return cls(confidence, float(temperature))

    def to_dict(self) -> Dict[str, Any]:
        return {"confidence": self.confidence, "temperature": self.temperature}

    @property
    def is_identity(self) -> bool:
        return self.confidence == "min" and self.temperature == 1.0


def tempered(probs: numpy.ndarray, temperature: float) -> numpy.ndarray:
    """`probs` (tokens × tags) raised to 1/`temperature`, renormalised per token."""
    if temperature == 1.0:
        return numpy.asarray(probs)
    logits = numpy.log(numpy.asarray(probs, dtype=numpy.float64) + 1e-12) / temperature
    scaled = numpy.exp(logits - logits.max(axis=1, keepdims=True))
    return scaled / scaled.sum(axis=1, keepdims=True)


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


def lattice(names: Tuple[str, ...], transitions: Optional[numpy.ndarray] = None) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """The scores of a step between two tokens of a sentence (`within[i, j]`:
    tag i to tag j) and of the tag that starts a sentence (`first[j]`): -inf
    where the step is not allowed, else 0 plus the learned `transitions[i, j]`
    when given. A sentence start takes no transition score from the tag before."""
    allowed, allowed_first = transition_masks(names)
    return step_scores(allowed, transitions), numpy.where(allowed_first, 0.0, -numpy.inf)


def step_scores(allowed: numpy.ndarray, transitions: Optional[numpy.ndarray]) -> numpy.ndarray:
    """-inf for the steps `allowed` rules out, else 0 or the learned score."""
    within = numpy.where(allowed, 0.0, -numpy.inf)
    if transitions is not None:
        within = within + numpy.asarray(transitions, dtype=numpy.float64)
    return within


def viterbi_decode(
    log_probs: numpy.ndarray,
    allowed: numpy.ndarray,
    allowed_first: numpy.ndarray,
    sent_starts: Sequence[bool],
    transitions: Optional[numpy.ndarray] = None,
) -> List[int]:
    """The most probable tag sequence in which every transition is allowed.
    At token 0 and at sentence starts only `allowed_first` tags may occur.
    `transitions[i, j]`, when given, is added to each step from tag i to tag j
    within a sentence."""
    return viterbi_decode_batch([log_probs], allowed, allowed_first, [sent_starts], transitions)[0]


def viterbi_decode_batch(
    log_probs: Sequence[numpy.ndarray],
    allowed: numpy.ndarray,
    allowed_first: numpy.ndarray,
    sent_starts: Sequence[Sequence[bool]],
    transitions: Optional[numpy.ndarray] = None,
) -> List[List[int]]:
    """`viterbi_decode` for several sequences at once, with one step per position
    for the whole batch: the Python loop runs max(lengths) times, not
    sum(lengths). Sequences are sorted longest first, so step i works on the
    first k rows (those longer than i) and a finished sequence's scores are
    left as they were. A sentence start is a transition from any tag to an
    `allowed_first` tag, so each step is one masked max-plus product."""
    lengths = numpy.array([len(lp) for lp in log_probs], dtype=numpy.int64)
    n_docs, n_tags = len(lengths), allowed.shape[0]
    longest = int(lengths.max()) if n_docs else 0
    if longest == 0:
        return [[] for _ in range(n_docs)]
    order = numpy.argsort(-lengths, kind="stable")
    lengths_sorted = lengths[order]
    padded = numpy.zeros((n_docs, longest, n_tags))
    starts = numpy.zeros((n_docs, longest), dtype=bool)
    for row, b in enumerate(order):
        padded[row, : lengths[b]] = log_probs[b]
        starts[row, : lengths[b]] = numpy.asarray(sent_starts[b], dtype=bool)
    # live[i]: how many (sorted) sequences are longer than i
    live = numpy.searchsorted(-lengths_sorted, -numpy.arange(longest), side="left")
    forbidden = step_scores(allowed, transitions)
    forbidden_first = numpy.where(allowed_first, 0.0, -numpy.inf)
    restart = numpy.broadcast_to(forbidden_first, (n_tags, n_tags))
    backpointers = numpy.zeros((n_docs, longest, n_tags), dtype=numpy.int64)
    score = padded[:, 0] + forbidden_first
    for i in range(1, longest):
        k = int(live[i])
        transitions = numpy.where(starts[:k, i, None, None], restart, forbidden)
        candidates = score[:k, :, None] + transitions
        backpointers[:k, i] = candidates.argmax(axis=1)
        score[:k] = candidates.max(axis=1) + padded[:k, i]
    path = numpy.zeros((n_docs, longest), dtype=numpy.int64)
    path[numpy.arange(n_docs), lengths_sorted - 1] = score.argmax(axis=1)
    for i in range(longest - 1, 0, -1):
        k = int(live[i])
        path[:k, i - 1] = backpointers[numpy.arange(k), i, path[:k, i]]
    result: List[List[int]] = [[] for _ in range(n_docs)]
    for row, b in enumerate(order):
        result[b] = path[row, : lengths[b]].tolist()
    return result


def decode(
    probs: numpy.ndarray,
    names: Sequence[str],
    sent_starts: Sequence[bool],
    transitions: Optional[numpy.ndarray] = None,
) -> List[Entity]:
    """The entities of the best valid BIO sequence for `probs` (tokens × `names`),
    with the learned `transitions` (names × names) when the model has them."""
    return decode_batch([probs], names, [sent_starts], transitions)[0]


def decode_batch(
    probs: Sequence[numpy.ndarray],
    names: Sequence[str],
    sent_starts: Sequence[Sequence[bool]],
    transitions: Optional[numpy.ndarray] = None,
    calibration: Calibration = Calibration(),
) -> List[List[Entity]]:
    """`decode` for several docs, with one batched Viterbi pass; the entities'
    confidences as `calibration` computes them."""
    allowed, allowed_first = transition_masks(tuple(names))
    log_probs = [numpy.log(p + 1e-12) for p in probs]
    paths = viterbi_decode_batch(log_probs, allowed, allowed_first, sent_starts, transitions)
    entities = [path_entities(numpy.asarray(best, dtype=numpy.int64), p, names) for p, best in zip(probs, paths)]
    if calibration.is_identity:
        return entities
    confidences = entity_confidences(probs, names, sent_starts, entities, transitions, calibration)
    return [[ent._replace(confidence=c) for ent, c in zip(ents, cs)] for ents, cs in zip(entities, confidences)]


def entity_confidences(
    probs: Sequence[numpy.ndarray],
    names: Sequence[str],
    sent_starts: Sequence[Sequence[bool]],
    entities: Sequence[Sequence[Entity]],
    transitions: Optional[numpy.ndarray],
    calibration: Calibration,
) -> List[List[float]]:
    """The confidence of each doc's `entities` (decoded from `probs`) as
    `calibration` computes it."""
    scaled = [tempered(p, calibration.temperature) for p in probs]
    if calibration.confidence == "span":
        steps = None if transitions is None else numpy.asarray(transitions, numpy.float64) / calibration.temperature
        return span_probabilities(scaled, names, sent_starts, entities, steps)
    index = {name: i for i, name in enumerate(names)}
    result = []
    for q, ents in zip(scaled, entities):
        doc_confidences = []
        for ent in ents:
            tags = [index[f"B-{ent.label}"]] + [index[f"I-{ent.label}"]] * (ent.end - ent.start - 1)
            doc_confidences.append(float(q[numpy.arange(ent.start, ent.end), tags].min()))
        result.append(doc_confidences)
    return result


@lru_cache(maxsize=32)
def tag_parts(names: Tuple[str, ...]) -> Tuple[numpy.ndarray, numpy.ndarray, Tuple[str, ...]]:
    """For each tag: its kind (0 O, 1 B, 2 I) and its label's index in the labels returned."""
    labels = tuple(dict.fromkeys(name[2:] for name in names if name != "O"))
    kinds = numpy.array([0 if name == "O" else 1 if name.startswith("B-") else 2 for name in names])
    label_ids = numpy.array([-1 if name == "O" else labels.index(name[2:]) for name in names])
    return kinds, label_ids, labels


def path_entities(best: numpy.ndarray, probs: numpy.ndarray, names: Sequence[str]) -> List[Entity]:
    """The entities of the BIO tag path `best` (as spaCy's iob_to_biluo reads it:
    an I-X that does not continue an X entity starts one) with their confidences."""
    if not len(best):
        return []
    kinds, label_ids, labels = tag_parts(tuple(names))
    kind, label = kinds[best], label_ids[best]
    inside = kind != 0
    continues = numpy.zeros(len(best), dtype=bool)
    continues[1:] = (kind[1:] == 2) & inside[:-1] & (label[1:] == label[:-1])
    begins = numpy.flatnonzero(inside & ~continues)
    if not len(begins):
        return []
    chosen = numpy.where(inside, probs[numpy.arange(len(best)), best], numpy.inf)
    confidences = numpy.minimum.reduceat(chosen, begins)
    # an entity runs from its begin over the tokens that continue it
    run_ids = numpy.cumsum(inside & ~continues) - 1
    lengths = numpy.bincount(run_ids[inside], minlength=len(begins))
    return [
        Entity(int(start), int(start + n), labels[label[start]], float(confidence))
        for start, n, confidence in zip(begins, lengths, confidences)
    ]


def span_probabilities(
    probs: Sequence[numpy.ndarray],
    names: Sequence[str],
    sent_starts: Sequence[Sequence[bool]],
    entities: Sequence[Sequence[Entity]],
    transitions: Optional[numpy.ndarray] = None,
) -> List[List[float]]:
    """For each doc's `entities`, the probability that exactly that span, with
    that label, is an entity: the total weight of the valid tag paths (those
    the decoder chooses among) that tag its tokens B-X I-X … and the token after
    it anything but I-X, over the total weight of all valid paths. A path's
    weight is the product of its tags' probabilities (times the exponentiated
    learned `transitions`, when given), as Viterbi scores it. Computed by the
    forward–backward algorithm, all docs at once, as `viterbi_decode_batch`
    walks them."""
    allowed, allowed_first = transition_masks(tuple(names))
    within = step_scores(allowed, transitions)
    first = numpy.where(allowed_first, 0.0, -numpy.inf)
    restart = numpy.broadcast_to(first, within.shape)
    lengths = numpy.array([len(p) for p in probs], dtype=numpy.int64)
    longest = int(lengths.max()) if len(lengths) else 0
    if longest == 0:
        return [[] for _ in probs]
    order = numpy.argsort(-lengths, kind="stable")
    n_docs, n_tags = len(probs), len(names)
    emit = numpy.full((n_docs, longest, n_tags), 0.0)
    starts = numpy.zeros((n_docs, longest), dtype=bool)
    for row, b in enumerate(order):
        emit[row, : lengths[b]] = numpy.log(numpy.asarray(probs[b], dtype=numpy.float64) + 1e-12)
        starts[row, : lengths[b]] = numpy.asarray(sent_starts[b], dtype=bool)
    live = numpy.searchsorted(-lengths[order], -numpy.arange(longest), side="left")

    def steps(i: int, k: int) -> numpy.ndarray:  # (k, tags, tags): the scores of the step into token i
        return numpy.where(starts[:k, i, None, None], restart, within)

    alpha = numpy.full((n_docs, longest, n_tags), -numpy.inf)
    beta = numpy.zeros((n_docs, longest, n_tags))
    alpha[:, 0] = emit[:, 0] + first
    for i in range(1, longest):
        k = int(live[i])
        alpha[:k, i] = numpy.logaddexp.reduce(alpha[:k, i - 1, :, None] + steps(i, k), axis=1) + emit[:k, i]
    for i in range(longest - 2, -1, -1):
        k = int(live[i + 1])
        beta[:k, i] = numpy.logaddexp.reduce(steps(i + 1, k) + (emit[:k, i + 1] + beta[:k, i + 1])[:, None, :], axis=2)
    index = {name: i for i, name in enumerate(names)}
    result: List[List[float]] = [[] for _ in probs]
    for row, b in enumerate(order):
        n = int(lengths[b])
        log_z = numpy.logaddexp.reduce(alpha[row, n - 1], axis=0)
        for ent in entities[b]:
            begin, inside = index[f"B-{ent.label}"], index[f"I-{ent.label}"]
            score, prev = alpha[row, ent.start, begin], begin
            for i in range(ent.start + 1, ent.end):
                score += (restart if starts[row, i] else within)[prev, inside] + emit[row, i, inside]
                prev = inside
            if ent.end < n:
                step = restart if starts[row, ent.end] else within
                after = step[prev] + emit[row, ent.end] + beta[row, ent.end]
                after[inside] = -numpy.inf
                score += numpy.logaddexp.reduce(after, axis=0)
            result[b].append(float(min(1.0, numpy.exp(score - log_z))))
    return result
