"""End to end: `spacy project run all` on synthetic CoNLL files with a tiny
random BERT, then the packaged wheel installed in a fresh virtual environment
must give the same entities as the trained pipeline directory."""
import json
import random
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import spacy
from spacy.util import load_config

from conftest import ROOT, make_sentence, make_tiny_bert

PACKAGE = "en_ner_pos_conll"
TEXTS = ["Anna Berg lives in New York .", "Globex opened an office in Lima .", "", "Tom Reed met Mia Cole ."]
PREDICT = """
import inspect, json, sys, spacy
nlp = spacy.load("{package}")
docs = list(nlp.pipe(json.loads(sys.argv[1])))
print(json.dumps({{
    "ents": [[[e.start, e.end, e.label_, round(e._.confidence, 4)] for e in d.ents] for d in docs],
    "component_file": inspect.getfile(type(nlp.get_pipe("ner"))),
    "pipeline": nlp.pipe_names,
    "performance": nlp.meta.get("performance", {{}}),
}}))
"""


def write_conll(path: Path, n_docs: int, seed: int, docstart: str) -> None:
    """Synthetic CoNLL-2003-style file (word POS chunk NER, IOB1)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_docs):
        lines += [docstart, ""]
        for _ in range(3):
            words, tags, iob2 = make_sentence(rng)
            for i, (word, tag, label) in enumerate(zip(words, tags, iob2)):
                # IOB1: an entity starts with I- unless it follows one of the same type.
                if label.startswith("B-") and not (i and iob2[i - 1][2:] == label[2:]):
                    label = "I-" + label[2:]
                lines.append(f"{word} {tag} I-NP {label}")
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf8")


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    data = base / "data"
    data.mkdir()
    write_conll(data / "eng.train", 30, seed=1, docstart="-DOCSTART- -X- O O")
    write_conll(data / "eng.testa", 6, seed=2, docstart="-DOCSTART- -X- O O")
    write_conll(data / "eng.testb", 6, seed=3, docstart="-DOCSTART- -X- -X- O")
    project_dir = base / "project"
    project_dir.mkdir()
    for name in ["project.yml", "configs", "scripts", "components"]:
        source = ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, project_dir / name)
    # Same pipeline, a training schedule sized for a toy corpus.
    config = load_config(project_dir / "configs" / "pos_ner.cfg")
    config["training"].update({"max_steps": 40, "eval_frequency": 20})
    config["training"]["batcher"]["size"] = 150
    config["training"]["optimizer"]["learn_rate"].update({"warmup_steps": 5, "initial_rate": 0.003})
    config.to_disk(project_dir / "configs" / "pos_ner.cfg")
    encoder = make_tiny_bert(base / "encoder")
    run(
        [sys.executable, "-m", "spacy", "project", "run", "all", str(project_dir),
         "--vars.data_dir", str(data), "--vars.transformer", str(encoder),
         "--vars.gpu", "-1"],
    )
    # The trained pipeline must not depend on the encoder's original folder.
    shutil.rmtree(encoder)
    return project_dir


def test_project_outputs(project):
    for name in ["train", "dev", "test"]:
        assert (project / "corpus" / f"{name}.spacy").exists()
    log = [json.loads(line) for line in (project / "training/pos_ner/log.jsonl").read_text().splitlines()]
    assert any("score" in record for record in log)
    metrics = json.loads((project / "metrics/pos_ner/test.json").read_text())
    assert metrics["n_docs"] == 6
    assert set(metrics["entities"]["per_type"]) == {"LOC", "ORG", "PER"}
    assert 0.0 <= metrics["entities"]["micro"]["f1-score"] <= 1.0
    assert metrics["tag_acc"] is not None and metrics["words_per_second"] > 0
    meta = json.loads((project / "training/pos_ner/model-best/meta.json").read_text())
    assert "ents_f" in meta["performance"]


def test_wheel_installs_and_loads_offline(project, tmp_path):
    wheels = list((project / "packages").glob(f"{PACKAGE}-*/dist/{PACKAGE}-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = tmp_path / "venv"
    # spaCy, torch & co. come from this interpreter's site-packages (a .pth file, so this also
    # works from inside a virtualenv); the model and its code come from the wheel alone.
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env_site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    Path(env_site, "host_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", str(wheels[0])])
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": str(env_dir / "bin")}
    script = PREDICT.format(package=PACKAGE)
    out = json.loads(run([str(python), "-c", script, json.dumps(TEXTS)], cwd=tmp_path, env=offline))
    assert out["pipeline"] == ["transformer", "tagger", "ner"]
    assert "ents_f" in out["performance"] and "tag_acc" in out["performance"]
    assert str(env_dir) in out["component_file"], "the component code must come from the wheel"

    trained = spacy.load(project / "training/pos_ner/model-best")
    expected = [[[e.start, e.end, e.label_, round(e._.confidence, 4)] for e in d.ents] for d in trained.pipe(TEXTS)]
    assert out["ents"] == expected
    assert any(expected), "the trained toy pipeline should find some entities"


def test_readme_documents_the_current_project():
    """The section `spacy project document` writes must match project.yml."""
    generated = run([sys.executable, "-m", "spacy", "project", "document", str(ROOT)])
    start = generated.index("<!-- WEASEL: AUTO-GENERATED DOCS START")
    assert generated[start:].strip() in (ROOT / "README.md").read_text(encoding="utf8")


COMPARE = """
epochs: 2
seeds: [0]
systems:
  pos_ner:
    config: configs/pos_ner.cfg
  sentences:
    config: configs/pos_ner.cfg
    corpus: sentences
  hf_trainer:
    script: benchmarks/hf_token_classification.py
    args:
      batch_size: 8
"""


def test_compare_workflow(tmp_path):
    """`spacy project run compare` with a 3-system definition: the sentence corpus is
    made, every system is trained and scored, and the table is written."""
    data = tmp_path / "data"
    data.mkdir()
    for name, n_docs, seed in [("eng.train", 8, 1), ("eng.testa", 3, 2), ("eng.testb", 3, 3)]:
        write_conll(data / name, n_docs, seed=seed, docstart="-DOCSTART- -X- -X- O")
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    for name in ["project.yml", "configs", "scripts", "components", "benchmarks"]:
        source = ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, project_dir / name)
    (project_dir / "configs" / "compare.yml").write_text(COMPARE, encoding="utf8")
    shutil.rmtree(project_dir / "benchmarks" / "results")
    encoder = make_tiny_bert(tmp_path / "encoder")
    run([sys.executable, "-m", "spacy", "project", "run", "compare", str(project_dir),
         "--vars.data_dir", str(data), "--vars.transformer", str(encoder), "--vars.gpu", "-1"])
    sentences = list(spacy.tokens.DocBin().from_disk(project_dir / "corpus/sentences/test.spacy").get_docs(
        spacy.blank("en").vocab))
    assert len(sentences) == 3 * 3 and all(len(list(doc.sents)) == 1 for doc in sentences)
    report = json.loads((project_dir / "benchmarks/results/compare.json").read_text())
    assert [run["system"] for run in report["runs"]] == ["pos_ner", "sentences", "hf_trainer"]
    assert report["epochs"] == 2 and report["transformer"] == str(encoder)
    table = (project_dir / "benchmarks/results/compare.md").read_text()
    assert all(f"| {name} | 0 |" in table for name in ["pos_ner", "sentences", "hf_trainer"])
