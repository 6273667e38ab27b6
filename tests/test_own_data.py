"""Train on your own data, end to end: a span-JSONL corpus with other labels
(PRODUCT, DATE), no dev file and no POS tags, through the project's commands
as the README gives them, on the tiny encoder."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example

from conftest import ROOT, make_docs, make_tiny_bert
from test_project import TOY_VARS, copy_project, run

PRODUCTS = ["Widget Pro", "Acme Phone", "Gizmo", "Cloud Suite"]
DATES = ["March 2021", "last year", "1 May", "2019"]
TEMPLATES = [
    "Sales of {PRODUCT} grew in {DATE} .",
    "The {PRODUCT} launched in {DATE} and sold well .",
    "Nobody expected {PRODUCT} to fail .",
    "Results for {DATE} were flat .",
]


def make_record(rng: random.Random, n_sents: int, record_id: int) -> dict:
    text, spans = "", []
    for _ in range(n_sents):
        for part in rng.choice(TEMPLATES).split():
            if text:
                text += " "
            if part.startswith("{"):
                label = part[1:-1]
                value = rng.choice(PRODUCTS if label == "PRODUCT" else DATES)
                spans.append({"start": len(text), "end": len(text) + len(value), "label": label})
                text += value
            else:
                text += part
    return {"id": record_id, "text": text, "spans": spans}


def write_jsonl(path: Path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf8")


def make_pos_tagger(path: Path) -> Path:
    """A small CNN tagger pipeline standing in for en_core_web_sm (offline)."""
    nlp = spacy.blank("en")
    nlp.add_pipe("tagger")
    docs = make_docs(20, seed=5, vocab=nlp.vocab)
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def own_project(tmp_path_factory):
    base = tmp_path_factory.mktemp("own")
    data = base / "my_data"
    data.mkdir()
    rng = random.Random(7)
    # One record of ~100 sentences (~800 tokens): training cuts it, evaluation would not.
    train_records = [make_record(rng, rng.randint(1, 4), i) for i in range(39)] + [make_record(rng, 100, 39)]
    write_jsonl(data / "train.jsonl", train_records)
    write_jsonl(data / "test.jsonl", [make_record(rng, 3, 100 + i) for i in range(8)])
    tagger = make_pos_tagger(base / "tagger")
    project_dir = copy_project(base / "project")
    encoder = make_tiny_bert(base / "encoder")
    # The README's command for span JSONL without a dev file (encoder and device for the test).
    command = [
        sys.executable, "-m", "spacy", "project", "run", "all", str(project_dir),
        "--vars.data_dir", str(data), "--vars.train", "train.jsonl", "--vars.dev", "", "--vars.test", "test.jsonl",
        "--vars.pos_model", str(tagger), "--vars.transformer", str(encoder), "--vars.gpu", "-1", *TOY_VARS,
    ]  # fmt: skip
    output = run(command)
    return project_dir, data, tagger, train_records, output


@pytest.mark.slow
def test_own_corpus_trains_evaluates_and_packages(own_project):
    project, _, _, train_records, output = own_project
    vocab = spacy.blank("en").vocab
    train = list(DocBin().from_disk(project / "corpus/train.spacy").get_docs(vocab))
    dev = list(DocBin().from_disk(project / "corpus/dev.spacy").get_docs(vocab))
    # About 10 % of the training tokens held out as whole documents, none in both, none lost; the
    # long record (half the tokens) stays in training.
    n_dev, n_all = sum(map(len, dev)), sum(map(len, train + dev))
    assert 0.08 <= n_dev / n_all <= 0.12 and len(train) + len(dev) == 40
    assert sorted(doc.text for doc in train + dev) == sorted(record["text"] for record in train_records)
    assert not {doc.text for doc in train} & {doc.text for doc in dev}
    assert all(doc.has_annotation("TAG") for doc in train + dev), "POS tags from --pos-model"
    assert f"held out: {len(dev)} whole of 40 training documents;" in output
    assert f"{n_dev} of {n_all} tokens" in output
    # The long record is a training document (seed 0), cut for training only.
    assert any(doc.text == train_records[39]["text"] and len(doc) > 500 for doc in train)
    assert f"cut 1 of {len(train)} documents" in " ".join(output.split())
    metrics = json.loads((project / "metrics/pos_ner/test.json").read_text())
    assert set(metrics["entities"]["per_type"]) == {"DATE", "PRODUCT"}
    assert metrics["n_docs"] == 8
    wheels = list((project / "packages").glob("*/dist/*.whl"))
    assert len(wheels) == 1
    nlp = spacy.load(project / "training/pos_ner/model-best")
    assert set(nlp.get_pipe("ner").labels) == {"DATE", "PRODUCT"}


@pytest.mark.slow
def test_the_same_seed_gives_the_same_split(own_project, tmp_path):
    _, data, _, _, _ = own_project

    def split(seed: int, folder: Path):
        command = [sys.executable, "-m", "pos_ner", "corpus", str(data), str(folder)]
        command += ["--train", "train.jsonl", "--dev", "", "--test", "test.jsonl", "--dev-seed", str(seed)]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        assert "no POS tags" in result.stderr  # no --pos-model: the warning says what to do
        return sorted(d.text for d in DocBin().from_disk(folder / "dev.spacy").get_docs(spacy.blank("en").vocab))

    assert split(0, tmp_path / "a") == split(0, tmp_path / "b") != split(1, tmp_path / "c")


def test_corpus_refuses_to_write_over_its_inputs(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "train.spacy", [make_record(random.Random(1), 2, i) for i in range(5)])
    before = (data / "train.spacy").read_bytes()
    command = [sys.executable, "-m", "pos_ner", "corpus", str(data), str(data), "--train", "train.spacy"]
    result = subprocess.run([*command, "--test", "train.spacy", "--format", "jsonl"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "is also an input" in result.stderr
    assert (data / "train.spacy").read_bytes() == before
