"""Shared fixtures: a tiny randomly initialised BERT and a synthetic corpus.

Tests marked `slow` (training subprocesses, fresh virtualenvs, whole project
runs) run only with `--slow`, as in spaCy's own test suite."""

import os
import random
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest
from spacy.tokens import Doc, DocBin
from spacy.training import Example, biluo_tags_to_spans, iob_to_biluo
from spacy.util import load_config, load_model_from_config
from spacy.vocab import Vocab

ROOT = Path(__file__).resolve().parents[1]

ANNOTATING = ["transformer", "tagger"]


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the slow tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


PEOPLE = ["Anna Berg", "Tom Reed", "Lena", "Omar Haddad", "Mia Cole"]
PLACES = ["Paris", "Oslo", "New York", "Lima", "Cairo"]
ORGS = ["Acme Corp", "Globex", "United Bank", "Initech"]
TEMPLATES = [
    # (words with slots, POS tags for the non-slot words)
    ("{PER} lives in {LOC} .", {"lives": "VBZ", "in": "IN", ".": "."}),
    ("{PER} works for {ORG} .", {"works": "VBZ", "for": "IN", ".": "."}),
    ("{ORG} opened an office in {LOC} .", {"opened": "VBD", "an": "DT", "office": "NN", "in": "IN", ".": "."}),
    ("the weather was fine .", {"the": "DT", "weather": "NN", "was": "VBD", "fine": "JJ", ".": "."}),
    ("{PER} met {PER} .", {"met": "VBD", ".": "."}),
]
FILLERS = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}


def make_sentence(rng: random.Random):
    """(words, POS tags, IOB2 tags) for one synthetic sentence."""
    template, pos = rng.choice(TEMPLATES)
    words, tags, iob = [], [], []
    for item in template.split():
        if item.startswith("{"):
            label = item[1:-1]
            for i, word in enumerate(rng.choice(FILLERS[label]).split()):
                words.append(word)
                tags.append("NNP")
                iob.append(("B-" if i == 0 else "I-") + label)
        else:
            words.append(item)
            tags.append(pos[item])
            iob.append("O")
    return words, tags, iob


def make_doc(vocab: Vocab, rng: random.Random, n_sents: int = 3) -> Doc:
    words, tags, iob, starts = [], [], [], []
    for _ in range(n_sents):
        w, t, b = make_sentence(rng)
        starts += [True] + [False] * (len(w) - 1)
        words += w
        tags += t
        iob += b
    doc = Doc(vocab, words=words, tags=tags, sent_starts=starts)
    doc.ents = biluo_tags_to_spans(doc, iob_to_biluo(iob))
    return doc


def make_docs(n_docs: int, seed: int = 0, vocab: Vocab = None):
    rng = random.Random(seed)
    vocab = vocab or Vocab()
    return [make_doc(vocab, rng) for _ in range(n_docs)]


def write_docbin(path: Path, docs) -> Path:
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    return path


def leftovers(folder: Path):
    """Temporary files and folders the atomic writes leave when something goes wrong."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


def snapshot(folder: Path):
    """Every file under `folder` with its bytes, to prove nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def corpus_words():
    words = set()
    for _, pos in TEMPLATES:
        words.update(pos)
    for names in FILLERS.values():
        for name in names:
            words.update(name.split())
    return words


def make_tiny_bert(path: Path) -> Path:
    """A 2-layer, 32-wide BERT with random weights and a WordPiece vocab."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted(set("".join(corpus_words())) | set("abcdefghijklmnopqrstuvwxyz0123456789.,"))
    pieces = specials + sorted(w.lower() for w in corpus_words()) + chars + [f"##{c}" for c in chars]
    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(pieces)) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(tokenizer.get_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    import torch

    # Fixed weights: thresholds on the tiny model's outputs (e.g. int8 against fp32 in
    # test_onnx.py) then hold or fail every time, not with one session's draw in a few.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(config).save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory):
    """train.spacy and dev.spacy with synthetic PER/LOC/ORG documents."""
    folder = tmp_path_factory.mktemp("corpus")
    train = write_docbin(folder / "train.spacy", make_docs(40, seed=1))
    dev = write_docbin(folder / "dev.spacy", make_docs(10, seed=2))
    return train, dev


def build_nlp(tiny_bert, **model_overrides):
    """The default pipeline config with the tiny encoder and `pos_ner` model overrides."""
    config = load_config(ROOT / "configs" / "pos_ner.cfg", interpolate=True)
    config["components"]["transformer"]["model"]["name"] = str(tiny_bert)
    config["components"]["ner"]["model"].update(model_overrides)
    return load_model_from_config(config, auto_fill=True, validate=True)


def make_examples(nlp, n_docs=12, seed=3):
    return [Example(nlp.make_doc(doc.text), doc) for doc in make_docs(n_docs, seed=seed, vocab=nlp.vocab)]


def train(nlp, examples, steps, annotates=ANNOTATING):
    """Initialize, then update `steps` times on all examples; returns the ner losses."""
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.003
    history = []
    for _ in range(steps):
        losses = nlp.update(examples, sgd=optimizer, annotates=annotates)
        history.append(losses["ner"])
    return history


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_bert):
    """(nlp, loss history): transformer → tagger → pos_ner trained on the toy data."""
    nlp = build_nlp(tiny_bert)
    history = train(nlp, make_examples(nlp), steps=25)
    return nlp, history


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tiny_pipeline, tmp_path_factory) -> Path:
    """The trained toy pipeline saved to disk, for tests of tools that load a model."""
    path = tmp_path_factory.mktemp("tiny_pipeline") / "model"
    tiny_pipeline[0].to_disk(path)
    return path


@pytest.fixture(scope="session")
def tiny_onnx_dir(tiny_pipeline_dir, tmp_path_factory) -> Path:
    """The toy pipeline exported to ONNX, fp32 and int8 (`pos-ner export-onnx --quantize`)."""
    from typer.testing import CliRunner

    from pos_ner.cli import app

    output = tmp_path_factory.mktemp("onnx") / "model"
    result = CliRunner().invoke(app, ["export-onnx", str(tiny_pipeline_dir), str(output), "--quantize"])
    assert result.exit_code == 0, result.output
    return output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_process(model: Path, log_path: Path, env: Optional[Dict[str, str]] = None) -> Iterator[str]:
    """`pos-ner serve MODEL` in a subprocess on a free loopback port (NER_* settings
    from `env`), output to `log_path`; its base URL once /health answers."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "pos_ner", "serve", str(model)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, env={**os.environ, **(env or {}), "NER_PORT": str(port)}, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            try:
                httpx.get(f"{url}/health", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
