"""The calibration of the entities' confidences (pos_ner.evaluation.calibration),
on hand-made arrays whose answers are worked out by hand, and on hand-built Docs."""

import json

import numpy
import pytest
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from pos_ner.evaluation.calibration import (
    bin_index,
    calibration_markdown,
    calibration_report,
    coverage_curve,
    entity_calibration,
    entity_outcomes,
    precision_thresholds,
    threshold_text,
)
from pos_ner.pipeline_component import install_extensions


def thresholds_by_target(report):
    return {entry["target_precision"]: entry for entry in report["thresholds"]}


def test_all_confident_but_half_wrong():
    report = calibration_report([1.0] * 10, [True, False] * 5)
    assert report["n_entities"] == 10
    assert report["ece"] == pytest.approx(0.5)
    assert report["brier"] == pytest.approx(0.5)  # (1 - 1)^2 five times, (1 - 0)^2 five times
    assert [b["n"] for b in report["bins"]] == [0] * 9 + [10]  # 1.0 falls in the last bin, [0.9, 1.0]
    top = report["bins"][-1]
    assert (top["lower"], top["upper"], top["mean_confidence"], top["precision"]) == (0.9, 1.0, 1.0, 0.5)
    assert all(b["mean_confidence"] is None and b["precision"] is None for b in report["bins"][:-1])
    # one distinct confidence: one point, and no threshold gets above 50 %
    assert report["coverage_curve"] == [{"threshold": 1.0, "coverage": 1.0, "precision": 0.5}]
    assert all(entry["threshold"] is None and entry["coverage"] is None for entry in report["thresholds"])


def test_perfectly_calibrated_bins_have_no_gap():
    # in bin k (confidence (k + 0.5) / 10), exactly k + 0.5 of every 10 entities right: 20 entities per bin
    confidence, correct = [], []
    for k in range(10):
        p = (k + 0.5) / 10
        confidence += [p] * 20
        correct += [True] * int(20 * p) + [False] * (20 - int(20 * p))
    report = calibration_report(confidence, correct)
    assert report["ece"] == pytest.approx(0.0, abs=1e-12)
    assert [b["n"] for b in report["bins"]] == [20] * 10
    for k, b in enumerate(report["bins"]):
        assert b["lower"] == pytest.approx(k / 10) and b["upper"] == pytest.approx((k + 1) / 10)
        assert b["mean_confidence"] == pytest.approx(b["precision"])
    # Brier of a calibrated confidence p: p (1 - p), averaged over the bins
    expected = numpy.mean([(k + 0.5) / 10 * (1 - (k + 0.5) / 10) for k in range(10)])
    assert report["brier"] == pytest.approx(expected)


def test_random_calibrated_confidences_have_a_small_ece():
    rng = numpy.random.default_rng(0)
    confidence = rng.uniform(size=100_000)
    report = calibration_report(confidence, rng.uniform(size=confidence.size) < confidence)
    assert report["ece"] < 0.01
    assert report["brier"] == pytest.approx(1 / 6, abs=0.005)  # E[p (1 - p)] for p uniform


def test_ece_weights_the_bins_by_their_entities():
    # 0.25 (bin [0.2, 0.3)): 4 entities, 1 right, no gap; 0.85 (bin [0.8, 0.9)): 6 entities, 3 right, gap 0.35
    confidence = [0.25] * 4 + [0.85] * 6
    correct = [True, False, False, False] + [True, True, True, False, False, False]
    report = calibration_report(confidence, correct)
    assert report["ece"] == pytest.approx(0.6 * 0.35)
    assert report["brier"] == pytest.approx((0.75**2 + 3 * 0.25**2 + 3 * 0.15**2 + 3 * 0.85**2) / 10)
    assert report["mean_confidence"] == pytest.approx(0.61) and report["precision"] == pytest.approx(0.4)
    assert [b["n"] for b in report["bins"]] == [0, 0, 4, 0, 0, 0, 0, 0, 6, 0]
    assert report["bins"][2]["precision"] == 0.25 and report["bins"][8]["precision"] == 0.5


def test_bin_edges_are_exact():
    # each edge k/10 belongs to the bin it opens; 1.0 to the last
    values = [0.0, 0.1, 0.3, 0.7, 0.9, 0.999999, 1.0, 0.0999999]
    assert bin_index(numpy.array(values)).tolist() == [0, 1, 3, 7, 9, 9, 9, 0]
    assert [b["n"] for b in calibration_report([0.3], [True], n_bins=5)["bins"]] == [0, 1, 0, 0, 0]


def test_coverage_curve_keeps_ties_together():
    # confidences 0.9, 0.8, 0.8, 0.8, 0.5 with outcomes right, right, wrong, right, wrong
    confidence = numpy.array([0.8, 0.9, 0.8, 0.5, 0.8])
    correct = numpy.array([True, True, False, False, True])
    curve = coverage_curve(confidence, correct)
    assert curve == [
        {"threshold": 0.9, "coverage": 0.2, "precision": 1.0},
        {"threshold": 0.8, "coverage": 0.8, "precision": 0.75},  # the three 0.8s come in together
        {"threshold": 0.5, "coverage": 1.0, "precision": 0.6},
    ]
    by_target = thresholds_by_target(calibration_report(confidence, correct))
    # 90 %, 95 % and 98 %: only the top entity alone is precise enough
    for target in (0.9, 0.95, 0.98):
        entry = by_target[target]
        assert (entry["threshold"], entry["coverage"], entry["n_kept"], entry["precision"]) == (0.9, 0.2, 1, 1.0)


def test_threshold_is_the_lowest_that_reaches_the_target():
    # sorted by confidence: R R R R R R R R R W | R R R R R R R R R R W ... precision is not monotone
    confidence = numpy.linspace(1.0, 0.01, 100)
    correct = numpy.ones(100, dtype=bool)
    correct[[9, 20, 21, 50, 60, 70, 80, 90, 95, 99]] = False
    report = calibration_report(confidence, correct)
    by_target = thresholds_by_target(report)
    # 90 %: all 100 kept gives 90 right of 100
    assert by_target[0.9]["n_kept"] == 100 and by_target[0.9]["precision"] == pytest.approx(0.9)
    assert by_target[0.9]["threshold"] == pytest.approx(0.01) and by_target[0.9]["coverage"] == 1.0
    # 95 %: the top 60 have 4 wrong (56/60 = 0.933), the top 50: 3 wrong (47/50 = 0.94), top 20: 1 wrong (0.95)
    assert by_target[0.95]["n_kept"] == 20 and by_target[0.95]["precision"] == pytest.approx(0.95)
    # 98 %: only the top 9 have no error; top 10 is 0.9; top 20 is 0.95
    assert by_target[0.98]["n_kept"] == 9 and by_target[0.98]["precision"] == 1.0
    assert by_target[0.98]["threshold"] == pytest.approx(confidence[8])
    # every point of the curve agrees with counting by hand
    for point in report["coverage_curve"]:
        kept = confidence >= point["threshold"]
        assert point["coverage"] == pytest.approx(kept.mean())
        assert point["precision"] == pytest.approx(correct[kept].mean())


def test_unreachable_target_is_none():
    entries = precision_thresholds(numpy.array([0.9, 0.8, 0.7]), numpy.array([False, True, True]), (0.5, 0.9))
    assert entries[0]["threshold"] == 0.7 and entries[0]["n_kept"] == 3  # 2 of 3 right
    assert entries[1] == {
        "target_precision": 0.9,
        "threshold": None,
        "coverage": None,
        "n_kept": None,
        "precision": None,
    }


def test_long_curves_are_subsampled_with_both_ends():
    rng = numpy.random.default_rng(1)
    confidence = rng.uniform(size=5000)
    correct = rng.uniform(size=5000) < confidence
    curve = calibration_report(confidence, correct)["coverage_curve"]
    assert 90 <= len(curve) <= 101
    assert curve[0]["threshold"] == confidence.max() and curve[0]["coverage"] == 1 / 5000
    assert curve[-1] == {"threshold": confidence.min(), "coverage": 1.0, "precision": correct.mean()}
    coverages = [point["coverage"] for point in curve]
    assert coverages == sorted(coverages) and max(numpy.diff(coverages)) <= 0.0102


def test_no_entities():
    report = calibration_report([], [])
    assert report["n_entities"] == 0
    assert report["ece"] is None and report["brier"] is None and report["precision"] is None
    assert [b["n"] for b in report["bins"]] == [0] * 10 and report["coverage_curve"] == []
    assert all(entry["threshold"] is None for entry in report["thresholds"])
    json.dumps(report, allow_nan=False)
    assert "ECE n/a" in "\n".join(calibration_markdown({**report, "n_without_confidence": 0}))


def test_reports_are_json_safe():
    report = calibration_report(numpy.array([0.2, 0.95, 1.0], dtype=numpy.float32), numpy.array([0, 1, 1]))
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert all(type(b["n"]) is int for b in report["bins"])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ in length"):
        calibration_report([0.5, 0.5], [True])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        calibration_report([1.5], [True])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        calibration_report([float("nan")], [True])
    # float32 softmax a hair above 1 is clipped, not refused
    assert calibration_report([1 + 1e-7], [True])["brier"] == 0.0


def test_threshold_text_never_reads_as_one_below_one():
    assert threshold_text(0.5) == "0.5000" and threshold_text(1.0) == "1.0000" and threshold_text(0.3) == "0.3000"
    assert threshold_text(0.97189) == "0.9718"  # rounded down: keeps at least what the exact threshold keeps
    assert threshold_text(0.99996) == "0.9999600" and threshold_text(0.999983) == "0.9999830"
    assert float(threshold_text(0.9999996)) < 1


def test_entity_outcomes_on_docs():
    install_extensions()
    vocab = Vocab()
    words = "Anna Berg met Tom in New York today".split()
    gold = Doc(vocab, words=words, ents=["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "I-LOC", "O"])
    pred = Doc(vocab, words=words)
    spans = [
        (Span(pred, 0, 2, label="PER"), 0.99),  # right
        (Span(pred, 3, 4, label="ORG"), 0.6),  # wrong type
        (Span(pred, 5, 6, label="LOC"), 0.7),  # wrong boundary
        (Span(pred, 7, 8, label="LOC"), None),  # no confidence: skipped
    ]
    pred.ents = [span for span, _ in spans]
    for span, value in spans:
        span._.confidence = value
    assert [ent._.confidence for ent in pred.ents] == [0.99, 0.6, 0.7, None]
    confidence, correct = entity_outcomes([gold], [pred])
    assert confidence.tolist() == [0.99, 0.6, 0.7] and correct.tolist() == [True, False, False]
    assert confidence.dtype == float and correct.dtype == bool
    # a second document with one right entity
    gold2 = Doc(vocab, words=["Oslo", "."], ents=["B-LOC", "O"])
    pred2 = Doc(vocab, words=["Oslo", "."], ents=["B-LOC", "O"])
    pred2.ents[0]._.confidence = 0.8
    report = entity_calibration([gold, gold2], [pred, pred2])
    assert report["n_entities"] == 4 and report["n_without_confidence"] == 1
    assert report["precision"] == 0.5
    with pytest.raises(ValueError, match="1 gold docs but 2 predicted"):
        entity_outcomes([gold], [pred, pred2])
