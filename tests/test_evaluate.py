"""`pos-ner evaluate` (pos_ner.evaluation) with its report (report.md, confusion.png, reliability.png,
training.png)."""

import json
import subprocess
import sys

import pytest
import spacy
from matplotlib.image import imread
from spacy.tokens import Doc
from spacy.vocab import Vocab
from typer.testing import CliRunner

from pos_ner.cli import app
from pos_ner.evaluation import plots as report
from pos_ner.evaluation import scores as evaluate

from conftest import ROOT, make_docs, write_docbin


def run_cli(*args):
    return CliRunner().invoke(app, ["evaluate", *(str(arg) for arg in args)])


@pytest.fixture(scope="module")
def test_docs(tmp_path_factory):
    docs = make_docs(8, seed=6)
    return docs, write_docbin(tmp_path_factory.mktemp("test_data") / "test.spacy", docs)


@pytest.fixture(scope="module")
def training_log(tmp_path_factory, tiny_bert, toy_corpus):
    """The JSONL log of a real 4-step training run (`pos-ner train`, evaluating every 2 steps)."""
    output = tmp_path_factory.mktemp("trained")
    train, dev = toy_corpus
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pos_ner",
            "train",
            str(ROOT / "configs" / "pos_ner.cfg"),
            "--output",
            str(output),
            "--gpu",
            "-1",
            "--paths.train",
            str(train),
            "--paths.dev",
            str(dev),
            "--paths.log",
            str(output / "log.jsonl"),
            "--components.transformer.model.name",
            str(tiny_bert),
            "--training.max_steps",
            "4",
            "--training.eval_frequency",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    return output / "log.jsonl"


@pytest.fixture(scope="module")
def ruler_model(tmp_path_factory):
    """A rule-based pipeline with known mistakes on the toy data: "Paris" is an ORG
    (wrong type), "New" a LOC (boundary of "New York"), "weather" a PER (spurious);
    every other entity is missed."""
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(
        [
            {"label": "ORG", "pattern": "Paris"},
            {"label": "LOC", "pattern": "New"},
            {"label": "PER", "pattern": "weather"},
        ]
    )
    path = tmp_path_factory.mktemp("ruler") / "model"
    nlp.to_disk(path)
    return path


def test_confusion_rows_are_gold_columns_predicted():
    confusion = evaluate.confusion([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-ORG"]])
    assert confusion["labels"] == ["O", "B-LOC", "B-ORG", "B-PER", "I-PER"]
    cell = {
        (g, p): n
        for g, row in zip(confusion["labels"], confusion["matrix"])
        for p, n in zip(confusion["labels"], row)
        if n
    }
    assert cell == {("B-PER", "B-PER"): 1, ("I-PER", "O"): 1, ("O", "O"): 1, ("B-LOC", "B-ORG"): 1}


def test_entity_errors_by_kind():
    words = "Anna Berg met Tom Reed in New York at Acme Corp and Lima today .".split()
    vocab = Vocab()
    gold = Doc(
        vocab,
        words=words,
        ents=[
            "B-PER",
            "I-PER",
            "O",
            "B-PER",
            "I-PER",
            "O",
            "B-LOC",
            "I-LOC",
            "O",
            "B-ORG",
            "I-ORG",
            "O",
            "B-LOC",
            "O",
            "O",
        ],
    )
    pred = Doc(
        vocab,
        words=words,
        ents=["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O", "B-LOC", "O", "O", "O", "B-LOC", "O", "O", "B-MISC", "O"],
    )
    errors = [(kind, g and g.text, p and p.text) for kind, g, p in evaluate.entity_errors(gold, pred)]
    assert errors == [
        ("wrong_type", "Tom Reed", "Tom Reed"),
        ("boundary", "New York", "New"),
        ("boundary_and_type", "Acme Corp", "Corp"),
        ("missed", "Lima", None),
        ("spurious", None, "today"),
    ]


def test_report_lists_errors_with_examples(ruler_model, test_docs, tmp_path):
    docs, data = test_docs
    result = run_cli(ruler_model, data, "--output", tmp_path / "test.json", "--report-dir", tmp_path)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "test.json").read_text())
    gold_ents = [ent for doc in docs for ent in doc.ents]
    n_paris = sum(ent.text == "Paris" for ent in gold_ents)
    n_new_york = sum(ent.text == "New York" for ent in gold_ents)
    n_weather = sum(token.text == "weather" for doc in docs for token in doc)
    assert n_paris and n_new_york and n_weather
    assert metrics["entity_errors"] == {
        "wrong_type": n_paris,
        "boundary": n_new_york,
        "boundary_and_type": 0,
        "missed": len(gold_ents) - n_paris - n_new_york,
        "spurious": n_weather,
    }
    labels, matrix = metrics["confusion"]["labels"], metrics["confusion"]["matrix"]
    assert matrix[labels.index("B-LOC")][labels.index("B-ORG")] == n_paris
    assert matrix[labels.index("I-LOC")][labels.index("O")] == n_new_york

    text = (tmp_path / "report.md").read_text()
    assert f"| wrong type | {n_paris} |" in text and f"| spurious | {n_weather} |" in text
    assert f"### wrong type: LOC → ORG ({n_paris})" in text
    assert f"### boundary: LOC → LOC ({n_new_york})" in text
    assert f"| B-LOC | B-ORG | {n_paris} |" in text
    assert "'Paris' LOC → 'Paris' ORG" in text
    assert "  gold: " in text and "[Paris]LOC" in text and "[Paris]ORG" in text
    assert "[New York]LOC" in text and "[New]LOC York" in text and "[weather]PER" in text
    assert "![Confusion matrices](confusion.png)" in text and "training.png" not in text
    assert (tmp_path / "confusion.png").exists() and not (tmp_path / "training.png").exists()
    # the entity ruler sets no confidences: nothing to calibrate, but the figure is drawn all the same
    calibration = metrics["calibration"]
    n_predicted = n_paris + n_new_york + n_weather
    assert calibration["n_entities"] == 0 and calibration["n_without_confidence"] == n_predicted
    assert calibration["ece"] is None and calibration["coverage_curve"] == []
    assert "## Confidence calibration" in text and "(reliability.png)" in text
    assert (tmp_path / "reliability.png").exists()


@pytest.mark.slow
def test_report_folder_for_a_trained_pipeline(tiny_pipeline_dir, test_docs, training_log, tmp_path):
    docs, data = test_docs
    folder = tmp_path / "metrics"
    result = run_cli(
        tiny_pipeline_dir,
        data,
        "--output",
        folder / "test.json",
        "--report-dir",
        folder,
        "--training-log",
        training_log,
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion.png",
        "reliability.png",
        "report.md",
        "test.json",
        "training.png",
    ]
    metrics = json.loads((folder / "test.json").read_text())
    assert metrics["n_docs"] == len(docs) and metrics["tag_acc"] is not None and metrics["words_per_second"] > 0
    labels, matrix = metrics["confusion"]["labels"], metrics["confusion"]["matrix"]
    assert labels[0] == "O" and {"B-PER", "I-PER", "B-LOC", "B-ORG"} <= set(labels)
    assert len(matrix) == len(labels) and all(len(row) == len(labels) for row in matrix)
    assert sum(map(sum, matrix)) == metrics["n_words"]
    # Gold entities without an error are exactly seqeval's true positives.
    micro = metrics["entities"]["micro"]
    errors = metrics["entity_errors"]
    n_exact = micro["support"] - sum(errors[k] for k in ("wrong_type", "boundary", "boundary_and_type", "missed"))
    assert n_exact == round(micro["recall"] * micro["support"])
    assert "![Training curves](training.png)" in (folder / "report.md").read_text()
    for name in ("confusion.png", "reliability.png", "training.png"):
        height, width, _ = imread(folder / name).shape
        assert width > 1.5 * height > 500, name  # two panels side by side


def test_calibration_of_the_tiny_model(tiny_pipeline_dir, test_docs, tmp_path):
    """The calibration block of the data and of each case variant, its line in
    the table, its section in the report and reliability.png."""
    docs, data = test_docs
    result = run_cli(tiny_pipeline_dir, data, "--output", tmp_path / "test.json", "--report-dir", tmp_path / "report")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "test.json").read_text())
    calibration = metrics["calibration"]
    assert calibration["n_without_confidence"] == 0  # pos_ner gives every entity a confidence
    n = calibration["n_entities"]
    assert n > 0 and sum(b["n"] for b in calibration["bins"]) == n and len(calibration["bins"]) == 10
    # every predicted entity is scored: the share correct is seqeval's micro precision
    assert calibration["precision"] == pytest.approx(metrics["entities"]["micro"]["precision"])
    assert 0 <= calibration["ece"] <= 1 and 0 <= calibration["brier"] <= 1
    assert calibration["coverage_curve"][-1]["coverage"] == pytest.approx(1.0)
    assert [entry["target_precision"] for entry in calibration["thresholds"]] == [0.9, 0.95, 0.98]
    for name in ("lowercase", "uppercase"):
        variant = metrics["case_variants"][name]["calibration"]
        assert variant["n_entities"] == sum(b["n"] for b in variant["bins"])
        assert f"{name} ECE " in result.output
    assert f"confidence calibration: ECE {calibration['ece']:.3f}  Brier {calibration['brier']:.3f}  n {n}" in (
        result.output
    )
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Confidence calibration" in text and "| [0.90, 1.00] |" in text and "| 95 % |" in text
    assert "- The same text lowercased: ECE " in text
    assert "![Reliability diagram and precision against coverage](reliability.png)" in text
    height, width, _ = imread(tmp_path / "report" / "reliability.png").shape
    assert width > 1.5 * height > 500  # two panels side by side


def test_old_metrics_print_no_calibration_line(tiny_pipeline, test_docs):
    nlp, _ = tiny_pipeline
    metrics, _ = evaluate.evaluate(nlp, test_docs[0], case_variants=True)
    assert "confidence calibration: ECE" in evaluate.format_table(metrics)
    del metrics["calibration"]
    assert "calibration" not in evaluate.format_table(metrics)
    assert "Confidence calibration" not in evaluate.error_report(metrics, test_docs[0], test_docs[0])


def test_reliability_figure_of_no_entities(tmp_path):
    from pos_ner.evaluation.calibration import calibration_report

    report.plot_reliability(calibration_report([], []), tmp_path / "reliability.png")
    assert imread(tmp_path / "reliability.png").shape[1] > 500


@pytest.mark.slow
def test_training_log_records(training_log):
    records = report.read_training_log(training_log)
    assert [record["step"] for record in records] == [0, 2, 4]
    assert all(set(record["losses"]) == {"transformer", "tagger", "ner"} for record in records)
    assert all(0 <= record["scores"]["ents_f"] <= 100 for record in records)


@pytest.mark.slow
def test_training_log_needs_a_report_dir(ruler_model, test_docs, training_log, tmp_path):
    result = run_cli(ruler_model, test_docs[1], "--output", tmp_path / "test.json", "--training-log", training_log)
    assert result.exit_code != 0 and "--report-dir" in result.output
    assert not (tmp_path / "test.json").exists()


def test_gold_tags_are_fed_to_the_pipeline_and_kept(tiny_pipeline, test_docs):
    """The upper bound of the POS signal: with gold_tags the tagger (overwrite =
    false) keeps the corpus' tags and pos_ner reads those; without, it predicts."""
    nlp, _ = tiny_pipeline
    docs, _ = test_docs
    gold = [[t.tag_ for t in doc] for doc in docs]
    metrics, predicted = evaluate.evaluate(nlp, docs, gold_tags=True)
    assert [[t.tag_ for t in doc] for doc in predicted] == gold and metrics["tag_acc"] == 1.0
    assert metrics["gold_tags"] is True
    metrics, predicted = evaluate.evaluate(nlp, docs)
    assert metrics["gold_tags"] is False and all(doc.has_annotation("TAG") for doc in predicted)
    nlp.get_pipe("tagger").cfg["overwrite"] = True
    try:
        with pytest.raises(ValueError, match="'tagger' has overwrite = true"):
            evaluate.evaluate(nlp, docs, gold_tags=True)
    finally:
        nlp.get_pipe("tagger").cfg["overwrite"] = False
