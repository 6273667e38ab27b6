"""The packaged model's card (`pos-ner model-card`, pos_ner.model_card) and the
case-variant scores of `pos-ner evaluate` it reports, on the tiny model."""

import json
import subprocess
import sys

import pytest
import spacy

from pos_ner.evaluation.calibration import calibration_report
from pos_ner.evaluation.scores import case_variant_scores, evaluate, recased
from pos_ner.model_card import model_card_meta

from conftest import make_docs, write_docbin

DATA = "Toy news (synthetic)"


@pytest.fixture(scope="module")
def nlp(tiny_pipeline_dir):
    return spacy.load(tiny_pipeline_dir)


@pytest.fixture(scope="module")
def evaluated(nlp, tiny_pipeline_dir, tmp_path_factory):
    """(test.spacy, test.json) written by `pos-ner evaluate` on 8 toy documents."""
    folder = tmp_path_factory.mktemp("card")
    data = write_docbin(folder / "test.spacy", make_docs(8, seed=5))
    metrics = folder / "test.json"
    command = [sys.executable, "-m", "pos_ner", "evaluate", str(tiny_pipeline_dir), str(data), "--output", str(metrics)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "micro F1 with the text's case changed: lowercase" in result.stdout
    return data, metrics


def test_recased_keeps_tokens_and_entities(nlp):
    gold = make_docs(2, seed=4, vocab=nlp.vocab)
    for doc, lower in zip(gold, recased(nlp.vocab, gold, str.lower)):
        assert [t.text.lower() for t in doc] == [t.text for t in lower]
        assert [(e.start, e.end, e.label_) for e in doc.ents] == [(e.start, e.end, e.label_) for e in lower.ents]
        assert lower.text == doc.text.lower()


def test_case_variants_score_the_recased_text(nlp):
    gold = make_docs(8, seed=5, vocab=nlp.vocab)
    variants = case_variant_scores(nlp, gold)
    metrics, _ = evaluate(nlp, [recased(nlp.vocab, [doc], str.upper)[0] for doc in gold])
    assert set(variants) == {"lowercase", "uppercase"}
    assert variants["uppercase"]["f1"] == pytest.approx(metrics["entities"]["micro"]["f1-score"])
    assert set(variants["lowercase"]["per_type"]) <= {"LOC", "ORG", "PER"}


def test_model_card_says_what_the_evaluation_measured(tiny_pipeline_dir, evaluated, tmp_path):
    _, metrics_path = evaluated
    metrics = json.loads(metrics_path.read_text())
    meta = model_card_meta(
        tiny_pipeline_dir,
        metrics,
        data_name=DATA,
        data_url="https://example.org/toy",
        data_license="made up for the tests",
        package_name="ner_toy",
        version="1.2.3",
        command="python -m spacy project run all",
        license="MIT",
        author="The toy team",
        url="https://example.org/ner_toy",
    )
    assert (meta["license"], meta["author"], meta["url"]) == ("MIT", "The toy team", "https://example.org/ner_toy")
    micro = metrics["entities"]["micro"]
    assert meta["name"] == "ner_toy" and meta["version"] == "1.2.3"
    assert meta["performance"]["ents_f"] == micro["f1-score"] and meta["performance"]["tag_acc"] == metrics["tag_acc"]
    assert set(meta["performance"]["ents_per_type"]) == set(metrics["entities"]["per_type"])
    assert meta["sources"][0] == {"name": DATA, "url": "https://example.org/toy"}
    # the encoder came from a local folder: named, but no path of this machine in the package
    assert meta["sources"][1]["name"].endswith("(encoder, from a local folder)")
    assert str(tiny_pipeline_dir.parent.parent) not in json.dumps(meta)
    notes = meta["notes"]
    for label, values in metrics["entities"]["per_type"].items():
        assert f"| {label} | {100 * values['precision']:.2f} | {100 * values['recall']:.2f} |" in notes
    assert f"**{100 * micro['f1-score']:.2f}**" in notes
    weakest = min(metrics["entities"]["per_type"].items(), key=lambda item: item[1]["f1-score"])
    assert f"The weakest types by F1: {weakest[0]} ({100 * weakest[1]['f1-score']:.2f})" in notes
    for name in ("lowercase", "uppercase"):
        assert f"The same text {name}d: micro F1 {100 * metrics['case_variants'][name]['f1']:.2f}" in notes
    if metrics["frequent_errors"]:
        top = metrics["frequent_errors"][0]
        assert f"{top['error']} ({top['count']})" in notes
    assert "lowest per-token softmax probability" in notes
    calibration = metrics["calibration"]
    assert "expected calibration error (ECE" in notes and f"is {calibration['ece']:.3f}, its Brier score" in notes
    lowercase = metrics["case_variants"]["lowercase"]["calibration"]
    if lowercase["ece"] is None:  # the tiny model may find no entity in lowercased text
        assert lowercase["n_entities"] == 0 and "lowercased the ECE" not in notes
    else:
        assert f"On the same text lowercased the ECE is {lowercase['ece']:.3f}." in notes
    assert "not measured" not in notes and "has not been measured" not in notes
    for entry in calibration["thresholds"]:
        target = f"| {100 * entry['target_precision']:.0f} % |"
        row = next(line for line in notes.splitlines() if line.startswith(target))
        assert ("not reached" in row) == (entry["threshold"] is None)
        if entry["threshold"] is not None:
            assert f"{100 * entry['coverage']:.1f} %" in row
    assert 'spacy.load("en_ner_toy")' in notes and "pip install --find-links packages/wheels en_ner_toy\n" in notes
    assert "Command: `python -m spacy project run all`" in notes
    assert "seed 0" in notes and "Token attributes embedded next to the encoder's vectors: TAG, SHAPE" in notes


def test_spacy_package_writes_the_card_into_the_packages_readme(tiny_pipeline_dir, evaluated, tmp_path):
    """The project's `package` step: `pos-ner model-card`, then `spacy package --meta-path`."""
    _, metrics_path = evaluated
    meta_path = tmp_path / "meta.json"
    before = sorted(p.name for p in tiny_pipeline_dir.iterdir())
    card = [sys.executable, "-m", "pos_ner", "model-card", str(tiny_pipeline_dir), str(metrics_path)]
    card += ["--output", str(meta_path), "--data-name", DATA, "--name", "ner_toy", "--version", "1.2.3"]
    assert subprocess.run(card, capture_output=True, text=True).returncode == 0
    assert sorted(p.name for p in tiny_pipeline_dir.iterdir()) == before  # the model folder is not touched
    (tmp_path / "packages").mkdir()
    package = [sys.executable, "-m", "spacy", "package", str(tiny_pipeline_dir), str(tmp_path / "packages")]
    package += ["--meta-path", str(meta_path), "--build", "none"]
    result = subprocess.run(package, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "packages" / "en_ner_toy-1.2.3"
    readme = (folder / "README.md").read_text()
    packaged_meta = json.loads((folder / "meta.json").read_text())
    assert packaged_meta["notes"] == json.loads(meta_path.read_text())["notes"]
    assert readme.startswith(packaged_meta["description"])
    for heading in ("### Scores", "### Known weaknesses", "### Confidence", "### Use", "### Training"):
        assert heading in readme
    # spaCy's own tables: the label scheme and the accuracy, from `performance`
    assert "### Label Scheme" in readme and "| `ENTS_F` |" in readme
    # the README inside the model folder of the package says the same
    assert (folder / "en_ner_toy" / "en_ner_toy-1.2.3" / "README.md").read_text() == readme


def test_model_card_refuses_bad_inputs_with_one_line(tiny_pipeline_dir, tmp_path):
    not_metrics = tmp_path / "metrics.json"
    not_metrics.write_text('{"entities": {}}')
    base = [sys.executable, "-m", "pos_ner", "model-card", str(tiny_pipeline_dir)]
    cases = [
        ([str(not_metrics), "--output", str(tmp_path / "m.json")], f"{not_metrics}: not the metrics"),
        ([str(tmp_path / "missing.json"), "--output", str(tmp_path / "m.json")], "missing.json"),
        # writing into the model folder would change the model being packaged
        ([str(not_metrics), "--output", str(tiny_pipeline_dir / "meta.json")], "meta.json"),
    ]
    for args, message in cases:
        result = subprocess.run([*base, *args, "--data-name", DATA], capture_output=True, text=True)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "m.json").exists()


def test_card_of_a_pipeline_without_a_transformer(tmp_path):
    """A pipeline whose config names no encoder (the CNN preset, spaCy's ner) gets a card too."""
    nlp = spacy.blank("en")
    nlp.add_pipe("ner").add_label("PER")
    nlp.initialize()
    nlp.to_disk(tmp_path / "model")
    metrics = {
        "entities": {
            "per_type": {"PER": {"precision": 0.5, "recall": 0.5, "f1-score": 0.5, "support": 2}},
            "micro": {"precision": 0.5, "recall": 0.5, "f1-score": 0.5, "support": 2},
        },
        "n_docs": 1,
        "n_words": 4,
        "tag_acc": None,
        "words_per_second": 100.0,
        "data": "test.spacy",
    }
    meta = model_card_meta(tmp_path / "model", metrics, data_name=DATA)
    assert meta["sources"] == [{"name": DATA}]
    assert "Tagger accuracy" not in meta["notes"] and "| **micro** | 50.00 | 50.00 | **50.00** | 2 |" in meta["notes"]
    assert "Token attributes" not in meta["notes"]
    # metrics from before calibration was measured
    assert "how well it is calibrated was not measured" in meta["notes"] and "ECE" not in meta["notes"]


def test_card_states_the_calibration_and_thresholds(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("ner").add_label("PER")
    nlp.initialize()
    nlp.to_disk(tmp_path / "model")
    entities = {"precision": 0.9, "recall": 0.9, "f1-score": 0.9, "support": 10}
    # 20 entities: the top 10 right, then 9 right of the next 10
    confidence = [1 - i / 100 for i in range(20)]
    correct = [True] * 10 + [True] * 4 + [False] + [True] * 5
    calibration = calibration_report(confidence, correct)
    metrics = {
        "entities": {"per_type": {"PER": entities}, "micro": entities},
        "n_docs": 1,
        "n_words": 40,
        "tag_acc": None,
        "words_per_second": 100.0,
        "data": "test.spacy",
        "calibration": {**calibration, "n_without_confidence": 0},
        "case_variants": {"lowercase": {"f1": 0.5, "per_type": {}, "calibration": calibration_report([0.5], [True])}},
    }
    notes = model_card_meta(tmp_path / "model", metrics, data_name=DATA)["notes"]
    assert (
        f"is {calibration['ece']:.3f}, its Brier score {calibration['brier']:.3f}, over 20 predicted entities" in notes
    )
    assert "On the same text lowercased the ECE is 0.500." in notes
    # 90 % and 95 %: all 20 (19 right); 98 %: the top 14, confidence down to 0.87
    assert "| 90 % | 0.8100 | 100.0 % | 95.00 |" in notes and "| 95 % | 0.8100 | 100.0 % | 95.00 |" in notes
    assert "| 98 % | 0.8700 | 70.0 % | 100.00 |" in notes
    assert "not measured" not in notes
