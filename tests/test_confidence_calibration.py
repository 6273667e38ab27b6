"""Calibrated confidences and thresholds: `Calibration` in the decoder, its fit
(`fit_calibration`, `pos-ner calibrate`), the component's cfg and
`min_confidence`, the ONNX export, and `pos_ner.thresholds`."""

import json
import shutil

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span
from typer.testing import CliRunner

from pos_ner import LOW_CONFIDENCE_KEY, Calibration, Thresholds, apply_thresholds, install_extensions
from pos_ner.cli import app
from pos_ner.decoding import decode_batch, entity_confidences, span_probabilities, tempered
from pos_ner.evaluation.calibration import TEMPERATURES, fit_calibration
from pos_ner.onnx.runtime import onnx_pipeline

from conftest import make_docs, write_docbin

NAMES = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def random_batch(seed, lengths=(4, 0, 11, 1, 7)):
    rng = numpy.random.default_rng(seed)
    probs = [rng.dirichlet(numpy.ones(len(NAMES)) * 0.4, size=n) for n in lengths]
    starts = [[i == 0 or bool(rng.random() < 0.2) for i in range(n)] for n in lengths]
    return probs, starts


def spans(entities):
    return [[(e.start, e.end, e.label) for e in doc] for doc in entities]


# --- the decoder -------------------------------------------------------------------------------------


def test_calibration_is_read_back_and_bad_values_are_refused():
    assert Calibration.from_dict(None) == Calibration() and Calibration().is_identity
    assert Calibration.from_dict({"confidence": "span", "temperature": 2}) == Calibration("span", 2.0)
    assert Calibration.from_dict(Calibration("span", 1.5).to_dict()) == Calibration("span", 1.5)
    for bad in ({"confidence": "mean"}, {"temperature": 0}, {"temperature": -1.0}, {"temperature": True}):
        with pytest.raises(ValueError, match="calibration"):
            Calibration.from_dict(bad)


def test_tempering_flattens_and_keeps_each_tokens_ranking():
    probs, _ = random_batch(1, lengths=(6,))
    hot = tempered(probs[0], 2.0)
    assert hot.sum(axis=1) == pytest.approx(numpy.ones(6))
    assert (hot.argmax(axis=1) == probs[0].argmax(axis=1)).all()
    assert (hot.max(axis=1) < probs[0].max(axis=1)).all()
    # p ** (1/T), renormalised, by hand for one row
    row = probs[0][2] ** 0.5
    assert hot[2] == pytest.approx(row / row.sum())
    assert tempered(probs[0], 1.0) is probs[0]


@pytest.mark.parametrize("transitions", [None, "random"])
def test_calibration_changes_confidences_never_entities(transitions):
    probs, starts = random_batch(2)
    steps = numpy.random.default_rng(5).normal(size=(5, 5)) if transitions else None
    plain = decode_batch(probs, NAMES, starts, steps)
    assert sum(len(doc) for doc in plain) >= 4
    for calibration in (Calibration("min", 1.7), Calibration("span", 1.0), Calibration("span", 0.6)):
        calibrated = decode_batch(probs, NAMES, starts, steps, calibration)
        assert spans(calibrated) == spans(plain)
        expected = entity_confidences(probs, NAMES, starts, plain, steps, calibration)
        assert [[e.confidence for e in doc] for doc in calibrated] == expected
    # min at T = 1 is what decode always gave; span at T is the lattice marginal of the tempered probabilities
    same = entity_confidences(probs, NAMES, starts, plain, steps, Calibration("min", 1.0))
    assert same == [[e.confidence for e in doc] for doc in plain]
    scaled = [tempered(p, 1.7) for p in probs]
    scaled_steps = None if steps is None else steps / 1.7
    got = entity_confidences(probs, NAMES, starts, plain, steps, Calibration("span", 1.7))
    expected = span_probabilities(scaled, NAMES, starts, plain, scaled_steps)
    assert [c for doc in got for c in doc] == pytest.approx([c for doc in expected for c in doc])


def test_fit_recovers_the_temperature_of_an_overconfident_model():
    """One-token docs whose entity is right with probability q while the model
    says q**2 / (q**2 + (1 - q)**2): the model is tempered by T = 1/2, so the
    fit must find T close to 2 (both methods give the same confidence here)."""
    rng = numpy.random.default_rng(0)
    names = NAMES[:3]
    probs, starts, gold = [], [], []
    for _ in range(6000):
        q = rng.uniform(0.5, 1.0)
        p = q**2 / (q**2 + (1 - q) ** 2)
        probs.append(numpy.array([[(1 - p) * 0.999, p * 0.999, 0.001]]))
        starts.append([True])
        gold.append([(0, 1, "LOC")] if rng.random() < q else [])
    calibration, rows = fit_calibration(probs, starts, gold, names)
    assert len(rows) == 2 * len(TEMPERATURES)
    assert 1.8 <= calibration.temperature <= 2.2
    chosen = next(r for r in rows if (r["confidence"], r["temperature"]) == tuple(calibration))
    uncalibrated = next(r for r in rows if (r["confidence"], r["temperature"]) == ("min", 1.0))
    assert chosen["ece"] < 0.02 < uncalibrated["ece"]
    assert chosen["n_entities"] == 6000


def test_fit_picks_the_lowest_brier_score_and_needs_entities():
    probs, starts = random_batch(3, lengths=(30,) * 40)
    entities = decode_batch(probs, NAMES, starts)
    rng = numpy.random.default_rng(1)
    gold = [[(e.start, e.end, e.label) for e in doc if rng.random() < 0.7] for doc in entities]
    calibration, rows = fit_calibration(probs, starts, gold, NAMES)
    best = min(rows, key=lambda r: r["brier"])
    assert tuple(calibration) == (best["confidence"], best["temperature"])
    assert all(r["brier"] >= best["brier"] for r in rows)
    nothing = [numpy.tile([[1.0, 0, 0, 0, 0]], (3, 1))]
    with pytest.raises(ValueError, match="no entities"):
        fit_calibration(nothing, [[True, False, False]], [[]], NAMES)


# --- thresholds --------------------------------------------------------------------------------------


def test_thresholds_from_values_and_command_lines():
    assert not Thresholds().is_active and not Thresholds.from_value(0.0).is_active
    assert Thresholds.from_value(0.5) == Thresholds(0.5)
    mixed = Thresholds.from_value({"*": 0.5, "PER": 0.9, "LOC": 0})
    assert (mixed.of("PER"), mixed.of("LOC"), mixed.of("ORG")) == (0.9, 0.0, 0.5)
    assert Thresholds.parse(["0.5", "PER=0.9", "LOC=0"]) == mixed
    assert Thresholds.from_value(mixed.to_value()) == mixed and Thresholds(0.3).to_value() == 0.3
    assert Thresholds.from_value({"PER": 0.2}).is_active
    for bad in (1.5, -0.1, "0.5", True, {"PER": "high"}, {"": 0.5}):
        with pytest.raises(ValueError, match="min_confidence"):
            Thresholds.from_value(bad)
    for bad in (["high"], ["=0.5"], ["PER=2"]):
        with pytest.raises(ValueError, match="--min-confidence"):
            Thresholds.parse(bad)


def doc_with_confidences(confidences):
    install_extensions()
    doc = Doc(spacy.blank("en").vocab, words=["w"] * (2 * len(confidences)))
    doc.ents = [Span(doc, 2 * i, 2 * i + 1, label=label) for i, (label, _) in enumerate(confidences)]
    for span, (_, confidence) in zip(doc.ents, confidences):
        span._.confidence = confidence
    return doc


def test_apply_thresholds_moves_entities_and_can_move_them_back():
    doc = doc_with_confidences([("PER", 0.95), ("PER", 0.5), ("LOC", 0.6), ("LOC", None), ("ORG", 0.1)])
    apply_thresholds(doc, Thresholds.parse(["0.55", "PER=0.9"]))
    assert [(e.start, e.label_) for e in doc.ents] == [(0, "PER"), (4, "LOC"), (6, "LOC")]
    assert [(e.start, e.label_) for e in doc.spans[LOW_CONFIDENCE_KEY]] == [(2, "PER"), (8, "ORG")]
    assert [e._.confidence for e in doc.spans[LOW_CONFIDENCE_KEY]] == [0.5, 0.1]
    apply_thresholds(doc, Thresholds(0.2))  # a lower threshold brings them back
    assert [e.start for e in doc.ents] == [0, 2, 4, 6] and [e.start for e in doc.spans[LOW_CONFIDENCE_KEY]] == [8]
    apply_thresholds(doc, Thresholds())
    assert len(doc.ents) == 5 and len(doc.spans[LOW_CONFIDENCE_KEY]) == 0
    empty = apply_thresholds(Doc(doc.vocab, words=[]), Thresholds(0.9))
    assert len(empty.ents) == 0 and len(empty.spans[LOW_CONFIDENCE_KEY]) == 0


# --- the component -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def texts():
    return [doc.text for doc in make_docs(8, seed=31)] + [""]


def entity_table(docs):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]


def confidences(docs):
    return [e._.confidence for doc in docs for e in doc.ents]


def test_component_calibration_is_saved_with_it(tiny_pipeline_dir, texts, tmp_path):
    nlp = spacy.load(tiny_pipeline_dir)
    ner = nlp.get_pipe("ner")
    assert ner.calibration == Calibration()
    plain = list(nlp.pipe(texts))
    ner.calibration = Calibration("span", 1.8)
    calibrated = list(nlp.pipe(texts))
    assert entity_table(calibrated) == entity_table(plain) and sum(map(len, entity_table(plain))) > 0
    assert confidences(calibrated) != pytest.approx(confidences(plain))
    assert len(calibrated[-1]) == 0 and len(calibrated[-1].ents) == 0
    nlp.to_disk(tmp_path / "model")
    from_disk = spacy.load(tmp_path / "model")
    from_bytes = spacy.load(tiny_pipeline_dir).from_bytes(nlp.to_bytes())
    for loaded in (from_disk, from_bytes):
        assert loaded.get_pipe("ner").calibration == Calibration("span", 1.8)
        again = list(loaded.pipe(texts))
        assert entity_table(again) == entity_table(plain)
        assert confidences(again) == pytest.approx(confidences(calibrated), abs=1e-6)


def with_min_confidence(source, target, value):
    """A copy of the pipeline at `source` whose config.cfg sets components.ner.min_confidence
    (a table of labels is a config section, which a config override cannot turn a number into)."""
    from thinc.api import Config

    shutil.copytree(source, target)
    config = Config().from_disk(target / "config.cfg", interpolate=False)
    config["components"]["ner"]["min_confidence"] = value
    config.to_disk(target / "config.cfg")
    return target


def test_component_min_confidence_keeps_what_it_drops_in_a_span_group(tiny_pipeline_dir, texts, tmp_path):
    plain = list(spacy.load(tiny_pipeline_dir).pipe(texts))
    values = sorted(confidences(plain))
    threshold = values[len(values) // 2]
    nlp = spacy.load(tiny_pipeline_dir, config={"components": {"ner": {"min_confidence": threshold}}})
    nlp.to_disk(tmp_path / "model")
    for pipeline in (nlp, spacy.load(tmp_path / "model")):
        docs = list(pipeline.pipe(texts))
        kept = [e._.confidence for doc in docs for e in doc.ents]
        low = [e._.confidence for doc in docs for e in doc.spans[LOW_CONFIDENCE_KEY]]
        assert kept and low and min(kept) >= threshold > max(low)
        for doc, ref in zip(docs, plain):
            together = sorted((e.start, e.end, e.label_) for e in [*doc.ents, *doc.spans[LOW_CONFIDENCE_KEY]])
            assert together == [(e.start, e.end, e.label_) for e in ref.ents]
    assert LOW_CONFIDENCE_KEY not in plain[0].spans  # without a threshold, no group
    with pytest.raises(ValueError, match="components.ner.min_confidence"):
        spacy.load(tiny_pipeline_dir, config={"components": {"ner": {"min_confidence": 1.5}}})
    per_label = spacy.load(with_min_confidence(tiny_pipeline_dir, tmp_path / "per_label", {"*": 0, "PER": 1}))
    assert "[components.ner.min_confidence]" in (tmp_path / "per_label" / "config.cfg").read_text()
    for doc in per_label.pipe(texts):
        assert all(e.label_ != "PER" for e in doc.ents)
        assert all(e.label_ == "PER" for e in doc.spans[LOW_CONFIDENCE_KEY])


# --- pos-ner calibrate and the ONNX export -----------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated_dir(tiny_pipeline_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibrated")
    dev = write_docbin(folder / "dev.spacy", make_docs(30, seed=41))
    model = folder / "model"
    shutil.copytree(tiny_pipeline_dir, model)
    result = CliRunner().invoke(app, ["calibrate", str(model), str(dev), "--report", str(folder / "calibration.json")])
    assert result.exit_code == 0, result.output
    return model, dev, folder / "calibration.json", result.output


def test_calibrate_stores_the_dev_pick_in_the_pipeline(calibrated_dir, tiny_pipeline_dir, texts):
    model, _, report_path, output = calibrated_dir
    report = json.loads(report_path.read_text())
    picked = Calibration.from_dict(report["picked"])
    assert spacy.load(model).get_pipe("ner").calibration == picked
    rows = report["candidates"]
    assert len(rows) == 2 * len(TEMPERATURES)
    best = min(rows, key=lambda r: r["brier"])
    assert tuple(picked) == (best["confidence"], best["temperature"])
    assert f"confidence {picked.confidence}, temperature {picked.temperature:g}" in output
    assert "(picked)" in output
    # the entities are those of the uncalibrated pipeline
    assert entity_table(spacy.load(model).pipe(texts)) == entity_table(spacy.load(tiny_pipeline_dir).pipe(texts))


def test_calibrate_refuses_what_it_cannot_write_and_leaves_the_model(calibrated_dir, tmp_path):
    model, dev, _, _ = calibrated_dir
    before = sorted((p.relative_to(model), p.stat().st_mtime_ns) for p in model.rglob("*"))
    runner = CliRunner()
    missing = runner.invoke(app, ["calibrate", str(model), str(tmp_path / "nope.spacy")])
    assert missing.exit_code != 0 and "nope.spacy" in missing.output
    not_a_folder = runner.invoke(app, ["calibrate", "en_core_web_sm", str(dev)])
    assert not_a_folder.exit_code == 1 and "not a pipeline directory" in not_a_folder.output
    nothing = write_docbin(tmp_path / "empty.spacy", [Doc(spacy.blank("en").vocab, words=[])])
    report = tmp_path / "report.json"
    empty = runner.invoke(app, ["calibrate", str(model), str(nothing), "--report", str(report)])
    assert empty.exit_code == 0 and "nothing to calibrate on" in empty.output and "left as it was" in empty.output
    assert json.loads(report.read_text())["picked"] is None
    assert sorted((p.relative_to(model), p.stat().st_mtime_ns) for p in model.rglob("*")) == before


def test_onnx_export_carries_the_calibration_and_threshold(calibrated_dir, texts, tmp_path):
    model, _, _, _ = calibrated_dir
    nlp = spacy.load(with_min_confidence(model, tmp_path / "source", {"*": 0.0, "LOC": 0.5}))
    result = CliRunner().invoke(app, ["export-onnx", str(tmp_path / "source"), str(tmp_path / "onnx")])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "onnx" / "onnx_meta.json").read_text())
    assert not nlp.get_pipe("ner").calibration.is_identity
    assert meta["calibration"] == nlp.get_pipe("ner").calibration.to_dict()
    assert meta["min_confidence"] == {"*": 0.0, "LOC": 0.5}
    reference, exported = list(nlp.pipe(texts)), list(onnx_pipeline(tmp_path / "onnx").pipe(texts))
    assert sum(len(doc.ents) + len(doc.spans[LOW_CONFIDENCE_KEY]) for doc in reference) > 0
    for ref, doc in zip(reference, exported):
        for group in (lambda d: d.ents, lambda d: d.spans[LOW_CONFIDENCE_KEY]):
            assert [(e.start, e.end, e.label_) for e in group(doc)] == [(e.start, e.end, e.label_) for e in group(ref)]
            assert [e._.confidence for e in group(doc)] == pytest.approx([e._.confidence for e in group(ref)], abs=1e-4)
