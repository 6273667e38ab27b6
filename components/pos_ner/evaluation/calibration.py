"""How well each predicted entity's `ent._.confidence` is calibrated: whether
entities given confidence p are correct a share p of the time.

An entity is correct when a gold entity has the same start, end and label
(predictions on the gold tokens, as `pos_ner.evaluation.scores.evaluate` makes
them). Numpy only; the figure is `pos_ner.evaluation.plots.plot_reliability`.

Everything returned is JSON-safe: plain floats and ints, None where a value is
undefined (no entities, an empty bin, a precision no threshold reaches).
"""

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from numpy.typing import ArrayLike
from spacy.tokens import Doc, Span

from ..decoding import CONFIDENCE_ATTR, CONFIDENCE_METHODS, Calibration, decode_batch, entity_confidences
from ..thresholds import LOW_CONFIDENCE_KEY

N_BINS = 10
TARGET_PRECISIONS = (0.90, 0.95, 0.98)
MAX_CURVE_POINTS = 101
# The temperatures `fit_calibration` tries: 0.5 to 3.0 in steps of 0.05.
TEMPERATURES = tuple(round(0.5 + 0.05 * i, 2) for i in range(51))
# float32 softmax outputs may stray this far outside [0, 1]; they are clipped.
TOLERANCE = 1e-6


def _outcomes(gold_docs: Iterable[Doc], predicted_docs: Iterable[Doc]) -> Tuple[numpy.ndarray, numpy.ndarray, int]:
    """(confidence, correct, number of predicted entities without a confidence)."""
    has_attr = Span.has_extension(CONFIDENCE_ATTR)
    confidence: List[float] = []
    correct: List[bool] = []
    missing = 0
    gold_docs, predicted_docs = list(gold_docs), list(predicted_docs)
    if len(gold_docs) != len(predicted_docs):
        raise ValueError(f"{len(gold_docs)} gold docs but {len(predicted_docs)} predicted docs")
    for gold, pred in zip(gold_docs, predicted_docs):
        gold_spans = {(e.start, e.end, e.label_) for e in gold.ents}
        # with a threshold set, the entities it took out of doc.ents are the model's too
        low = pred.spans[LOW_CONFIDENCE_KEY] if LOW_CONFIDENCE_KEY in pred.spans else []
        for ent in [*pred.ents, *low]:
            value = ent._.get(CONFIDENCE_ATTR) if has_attr else None
            if value is None:
                missing += 1
                continue
            confidence.append(float(value))
            correct.append((ent.start, ent.end, ent.label_) in gold_spans)
    return numpy.array(confidence, dtype=float), numpy.array(correct, dtype=bool), missing


def entity_outcomes(gold_docs: Iterable[Doc], predicted_docs: Iterable[Doc]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """(confidence, correct) over every predicted entity that has a confidence:
    `confidence[i]` is entity i's `ent._.confidence` (float), `correct[i]`
    (bool) whether a gold entity of the aligned gold doc has the same start,
    end and label. `gold_docs` and `predicted_docs` are aligned (same tokens).
    The entities a threshold moved to the low-confidence span group count too:
    calibration is about every entity the model found.
    Entities whose confidence is None (set by another component, or the
    extension not registered) are skipped; `entity_calibration` counts them
    as `n_without_confidence`."""
    confidence, correct, _ = _outcomes(gold_docs, predicted_docs)
    return confidence, correct


def _checked(confidence: ArrayLike, correct: ArrayLike) -> Tuple[numpy.ndarray, numpy.ndarray]:
    conf = numpy.asarray(confidence, dtype=float).reshape(-1)
    hit = numpy.asarray(correct, dtype=bool).reshape(-1)
    if conf.shape != hit.shape:
        raise ValueError(f"confidence ({conf.size}) and correct ({hit.size}) differ in length")
    if conf.size and (numpy.isnan(conf).any() or conf.min() < -TOLERANCE or conf.max() > 1 + TOLERANCE):
        raise ValueError("confidences must be numbers in [0, 1]")
    return numpy.clip(conf, 0.0, 1.0), hit


def bin_index(confidence: numpy.ndarray, n_bins: int = N_BINS) -> numpy.ndarray:
    """Each confidence's bin among `n_bins` equal-width bins [k/n, (k+1)/n);
    the last bin also holds 1.0. The edges are k/n exactly, so 0.3 is in [0.3, 0.4)."""
    edges = numpy.arange(n_bins + 1) / n_bins
    return numpy.clip(numpy.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)


def reliability_bins(confidence: numpy.ndarray, correct: numpy.ndarray, n_bins: int = N_BINS) -> List[Dict[str, Any]]:
    """Per bin: `lower`, `upper`, `n` (entities in it), `mean_confidence` and
    `precision` (share correct) of its entities, both None for an empty bin."""
    index = bin_index(confidence, n_bins)
    bins = []
    for k in range(n_bins):
        members = index == k
        n = int(members.sum())
        bins.append(
            {
                "lower": k / n_bins,
                "upper": (k + 1) / n_bins,
                "n": n,
                "mean_confidence": float(confidence[members].mean()) if n else None,
                "precision": float(correct[members].mean()) if n else None,
            }
        )
    return bins


def kept_by_threshold(confidence: numpy.ndarray, correct: numpy.ndarray) -> Tuple[numpy.ndarray, ...]:
    """For each distinct confidence t, highest first: (t, number of entities
    with confidence >= t, how many of those are correct). Entities of equal
    confidence are kept or dropped together."""
    order = numpy.argsort(-confidence, kind="stable")
    conf, hit = confidence[order], correct[order]
    kept = numpy.arange(1, conf.size + 1)
    n_correct = numpy.cumsum(hit)
    # the last entity of each run of equal confidences
    last = numpy.append(conf[1:] != conf[:-1], True) if conf.size else numpy.zeros(0, dtype=bool)
    return conf[last], kept[last], n_correct[last]


def coverage_curve(
    confidence: numpy.ndarray, correct: numpy.ndarray, max_points: int = MAX_CURVE_POINTS
) -> List[Dict[str, float]]:
    """The precision of the entities kept against the share kept (`coverage`)
    as the threshold falls: one point {threshold, coverage, precision} per
    distinct confidence t (keeping the entities with confidence >= t), from the
    highest threshold to the lowest (coverage 1). With more distinct
    confidences than `max_points`, the points kept are the first to reach each
    of `max_points - 1` evenly spaced coverages, plus both ends."""
    thresholds, kept, n_correct = kept_by_threshold(confidence, correct)
    if not thresholds.size:
        return []
    coverage = kept / confidence.size
    chosen = numpy.arange(thresholds.size)
    if thresholds.size > max_points:
        targets = numpy.linspace(0.0, 1.0, max_points)[1:]
        picks = numpy.searchsorted(coverage, targets - 1e-12, side="left")
        chosen = numpy.unique(numpy.concatenate([[0], numpy.minimum(picks, thresholds.size - 1)]))
    return [
        {
            "threshold": float(thresholds[i]),
            "coverage": float(coverage[i]),
            "precision": float(n_correct[i] / kept[i]),
        }
        for i in chosen
    ]


def precision_thresholds(
    confidence: numpy.ndarray, correct: numpy.ndarray, targets: Sequence[float] = TARGET_PRECISIONS
) -> List[Dict[str, Optional[float]]]:
    """Per target precision: the lowest threshold t (one of the confidences)
    such that the entities with confidence >= t have precision >= target, so
    the one that keeps the most entities, with `coverage` (the share it keeps),
    `n_kept` and `precision` there; all None when no threshold reaches the
    target (or there are no entities)."""
    thresholds, kept, n_correct = kept_by_threshold(confidence, correct)
    precision = n_correct / numpy.maximum(kept, 1)
    result = []
    for target in targets:
        # exact counts: precision >= target as n_correct >= target * kept, with a hair for float rounding
        reached = numpy.flatnonzero(n_correct >= target * kept - 1e-9)
        entry: Dict[str, Optional[float]] = {
            "target_precision": float(target),
            "threshold": None,
            "coverage": None,
            "n_kept": None,
            "precision": None,
        }
        if reached.size:
            i = reached[-1]  # thresholds fall along the array: the last one reached is the lowest
            entry.update(
                threshold=float(thresholds[i]),
                coverage=float(kept[i] / confidence.size),
                n_kept=int(kept[i]),
                precision=float(precision[i]),
            )
        result.append(entry)
    return result


def calibration_report(confidence: ArrayLike, correct: ArrayLike, n_bins: int = N_BINS) -> Dict[str, Any]:
    """The calibration of `confidence` (numbers in [0, 1]) against `correct`:

    - `n_entities`; `mean_confidence` and `precision` (share correct) over all;
    - `ece`: expected calibration error, sum over the `n_bins` equal-width bins
      [0, 0.1), ..., [0.9, 1.0] of (bin's share of entities) x |mean confidence
      - precision| in the bin; 0 is perfect, 1 the worst;
    - `brier`: mean of (confidence - correct)^2, the bin-free measure (it also
      rewards confidences that separate right from wrong);
    - `bins`: `reliability_bins` (empty bins: n 0, None values);
    - `coverage_curve`: `coverage_curve`, at most ~101 points;
    - `thresholds`: `precision_thresholds` for precisions 0.90, 0.95, 0.98.

    With no entities: n_entities 0, every value None, the curve empty."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, not {n_bins}")
    conf, hit = _checked(confidence, correct)
    bins = reliability_bins(conf, hit, n_bins)
    n = int(conf.size)
    index = bin_index(conf, n_bins)
    # sum over bins of n_b / n * |mean confidence - precision| = sum of |sum confidence - sum correct| / n
    gaps = numpy.bincount(index, weights=conf, minlength=n_bins) - numpy.bincount(index, weights=hit, minlength=n_bins)
    ece = float(numpy.abs(gaps).sum() / n) if n else None
    return {
        "n_entities": n,
        "mean_confidence": float(conf.mean()) if n else None,
        "precision": float(hit.mean()) if n else None,
        "ece": ece,
        "brier": float(numpy.mean((conf - hit) ** 2)) if n else None,
        "n_bins": n_bins,
        "bins": bins,
        "coverage_curve": coverage_curve(conf, hit),
        "thresholds": precision_thresholds(conf, hit),
    }


def entity_calibration(gold_docs: Iterable[Doc], predicted_docs: Iterable[Doc], n_bins: int = N_BINS) -> Dict:
    """`calibration_report` of the predicted entities' confidences
    (`entity_outcomes`), with `n_without_confidence`: the predicted entities
    skipped because their confidence is None."""
    confidence, correct, missing = _outcomes(gold_docs, predicted_docs)
    return {**calibration_report(confidence, correct, n_bins), "n_without_confidence": missing}


def number(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def threshold_text(value: float) -> str:
    """A threshold for people: rounded down (keeping confidence >= it keeps
    at least the entities the exact threshold keeps), with 4 decimals, or as
    many more as show three digits of 1 - value (up to 8), so that 0.99994 is
    not written as 1."""
    digits = 4
    if 0 < value < 1:
        digits = min(8, max(4, 2 - math.floor(math.log10(1 - value))))
    scale = 10**digits
    return f"{math.floor(value * scale + 1e-9) / scale:.{digits}f}"


def summary(report: Dict[str, Any]) -> str:
    """One line: ECE, Brier and the number of entities."""
    return f"ECE {number(report.get('ece'))}  Brier {number(report.get('brier'))}  n {report.get('n_entities', 0)}"


def threshold_rows(report: Dict[str, Any]) -> List[str]:
    """Markdown table: per target precision, the threshold and what it keeps."""
    rows = [
        "| precision at least | keep confidence ≥ | entities kept | share kept | precision there |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in report.get("thresholds") or []:
        target = f"{100 * entry['target_precision']:.0f} %"
        if entry["threshold"] is None:
            rows.append(f"| {target} | not reached | – | – | – |")
        else:
            rows.append(
                f"| {target} | {threshold_text(entry['threshold'])} | {entry['n_kept']} | "
                f"{100 * entry['coverage']:.1f} % | {100 * entry['precision']:.2f} % |"
            )
    return rows


def calibration_markdown(report: Dict[str, Any], variants: Optional[Dict[str, Dict[str, Any]]] = None) -> List[str]:
    """The report's calibration section: summary, bin table, thresholds, and a
    line per case variant (`variants`: name to its calibration report)."""
    lines = [
        "## Confidence calibration",
        "",
        f"How often an entity given confidence p (`ent._.{CONFIDENCE_ATTR}`) is correct (same span and label "
        f"as a gold entity), over {report['n_entities']} predicted entities"
        + (
            f" ({report['n_without_confidence']} without a confidence left out)"
            if report.get("n_without_confidence")
            else ""
        )
        + f": ECE {number(report['ece'])} ({report.get('n_bins', N_BINS)} equal-width bins), "
        f"Brier {number(report['brier'])}; mean confidence {number(report.get('mean_confidence'))}, "
        f"precision {number(report.get('precision'))}.",
        "",
        "| confidence | entities | mean confidence | precision | gap |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for b in report["bins"]:
        closing = "]" if b["upper"] >= 1 else ")"
        gap = None if b["n"] == 0 else b["mean_confidence"] - b["precision"]
        lines.append(
            f"| [{b['lower']:.2f}, {b['upper']:.2f}{closing} | {b['n']} | {number(b['mean_confidence'])} | "
            f"{number(b['precision'])} | {'' if gap is None else f'{gap:+.3f}'} |"
        )
    lines += [
        "",
        "The lowest threshold that gives each precision on this data (entities with a confidence at or above it kept):",
        "",
        *threshold_rows(report),
        "",
    ]
    for name, variant in (variants or {}).items():
        lines.append(f"- The same text {name}d: {summary(variant)}.")
    if variants:
        lines.append("")
    return lines


def fit_calibration(
    probs: Sequence[numpy.ndarray],
    sent_starts: Sequence[Sequence[bool]],
    gold: Sequence[Iterable[Tuple[int, int, str]]],
    names: Sequence[str],
    transitions: Optional[numpy.ndarray] = None,
    temperatures: Sequence[float] = TEMPERATURES,
) -> Tuple[Calibration, List[Dict[str, Any]]]:
    """The `Calibration` fitted on held-out docs: of every confidence method x
    temperature, the one with the lowest Brier score, and one row per candidate
    (`confidence`, `temperature`, `n_entities`, `ece`, `brier`,
    `coverage_at_95`: the share of entities the 95 %-precision threshold keeps).

    The Brier score is a proper scoring rule: it is lowest for confidences
    that are calibrated and, among those, that best separate right from wrong
    entities. ECE is not fitted directly: its minimum over the temperature is
    sharp and noisy (10 bins, most entities in the top one). Ties go to the
    candidate listed first: "min" before "span", temperatures in the order
    given. `probs` are the component's per-token probabilities for each doc,
    `gold` its gold (start, end, label) entities. The entities are decoded
    once, as the component does, so every candidate scores the same entities."""
    if not temperatures or any(not t > 0 for t in temperatures):
        raise ValueError("temperatures must be numbers > 0")
    entities = decode_batch(probs, names, sent_starts, transitions)
    gold_sets = [set(doc_gold) for doc_gold in gold]
    correct = [(e.start, e.end, e.label) in g for ents, g in zip(entities, gold_sets) for e in ents]
    rows: List[Dict[str, Any]] = []
    for method in CONFIDENCE_METHODS:
        for temperature in temperatures:
            candidate = Calibration(method, float(temperature))
            confidences = entity_confidences(probs, names, sent_starts, entities, transitions, candidate)
            report = calibration_report([c for doc in confidences for c in doc], correct)
            at_95 = next(t for t in report["thresholds"] if t["target_precision"] == 0.95)
            rows.append(
                {
                    **candidate.to_dict(),
                    "n_entities": report["n_entities"],
                    "ece": report["ece"],
                    "brier": report["brier"],
                    "coverage_at_95": at_95["coverage"],
                }
            )
    if not correct:
        raise ValueError("no entities predicted on these docs: nothing to calibrate on")
    best = min(rows, key=lambda row: row["brier"])
    return Calibration(best["confidence"], best["temperature"]), rows
