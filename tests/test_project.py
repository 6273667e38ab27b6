"""End to end: `spacy project run all` on synthetic CoNLL files with a tiny
random BERT, then the packaged wheel installed in a fresh virtual environment
must give the same entities as the trained pipeline directory."""

import json
import os
import random
import shutil
import site
import subprocess
import sys
import venv
import zipfile
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


# The same pipeline config, with a training schedule sized for a toy corpus: config overrides, passed
# the way spaCy's CLI reads them from the environment, not a rewritten config.
TOY_SCHEDULE = (
    "--training.max_steps 40 --training.eval_frequency 20 --training.batcher.size 150 "
    "--training.optimizer.learn_rate.warmup_steps 5 --training.optimizer.learn_rate.initial_rate 0.003"
)


def copy_project(destination: Path) -> Path:
    """What a user's checkout of the project holds besides the installed package."""
    destination.mkdir()
    for name in ["project.yml", "configs", "components", "benchmarks"]:
        source = ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(
            source, destination / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if source.is_dir() else {})
        )
    return destination


def build_component_wheel(destination: Path) -> Path:
    """The wheel of this repository's component package (spacy-pos-ner)."""
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(destination), str(ROOT)])
    wheels = list(destination.glob("spacy_pos_ner-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def fresh_venv(env_dir: Path) -> Path:
    """A virtualenv whose third-party packages (spaCy, torch & co.) come from this
    interpreter's site-packages (a .pth file, so this also works from inside a
    virtualenv); our own code must come from the wheels installed into it."""
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env_site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    Path(env_site, "host_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    data = base / "data"
    data.mkdir()
    write_conll(data / "eng.train", 30, seed=1, docstart="-DOCSTART- -X- O O")
    write_conll(data / "eng.testa", 6, seed=2, docstart="-DOCSTART- -X- O O")
    write_conll(data / "eng.testb", 6, seed=3, docstart="-DOCSTART- -X- -X- O")
    project_dir = copy_project(base / "project")
    encoder = make_tiny_bert(base / "encoder")
    run(
        [
            sys.executable,
            "-m",
            "spacy",
            "project",
            "run",
            "all",
            str(project_dir),
            "--vars.data_dir",
            str(data),
            "--vars.transformer",
            str(encoder),
            "--vars.gpu",
            "-1",
        ],
        env={**os.environ, "SPACY_CONFIG_OVERRIDES": TOY_SCHEDULE},
    )
    # The trained pipeline must not depend on the encoder's original folder.
    shutil.rmtree(encoder)
    return project_dir


@pytest.mark.slow
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
    config = load_config(project / "training/pos_ner/model-best/config.cfg")
    assert config["training"]["max_steps"] == 40 and config["training"]["batcher"]["size"] == 150
    # the package step's model card: the evaluation's scores and weaknesses, in the wheel's README too
    readme = next((project / "packages").glob(f"{PACKAGE}-*/README.md")).read_text()
    assert f"**{100 * metrics['entities']['micro']['f1-score']:.2f}**" in readme
    assert "### Known weaknesses" in readme and "The same text lowercased: micro F1" in readme
    assert "Data: CoNLL-2003 English (Reuters news, 1996-1997), text from the Reuters Corpus (RCV1)" in readme
    wheel = next((project / "packages").glob(f"{PACKAGE}-*/dist/{PACKAGE}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        assert "### Known weaknesses" in archive.read(metadata).decode()


@pytest.mark.slow
def test_cnn_preset_runs_through_the_project_with_one_variable(project):
    """`--vars.config pos_ner_cnn`: the same steps train, score and package the
    CNN preset beside the default, whose outputs stay as they were."""
    default_model = (project / "training/pos_ner/model-best/ner/model").read_bytes()
    command = [sys.executable, "-m", "spacy", "project", "run", "all", str(project)]
    command += ["--vars.data_dir", str(project.parent / "data"), "--vars.gpu", "-1"]
    command += ["--vars.config", "pos_ner_cnn", "--vars.name", "ner_pos_conll_cnn"]
    run(command, env={**os.environ, "SPACY_CONFIG_OVERRIDES": TOY_SCHEDULE})
    nlp = spacy.load(project / "training/pos_ner_cnn/model-best")
    assert nlp.pipe_names == ["tok2vec", "tagger", "ner"]
    metrics = json.loads((project / "metrics/pos_ner_cnn/test.json").read_text())
    assert metrics["n_docs"] == 6 and set(metrics["entities"]["per_type"]) <= {"LOC", "ORG", "PER"}
    wheels = list((project / "packages").glob("en_ner_pos_conll_cnn-*/dist/en_ner_pos_conll_cnn-*.whl"))
    assert len(wheels) == 1, wheels
    assert (project / "training/pos_ner/model-best/ner/model").read_bytes() == default_model


@pytest.mark.slow
def test_wheel_installs_and_loads_offline(project, tmp_path):
    """The model wheel holds no code: it requires spacy-pos-ner, whose own wheel
    is installed beside it (both --no-deps, nothing from the checkout)."""
    wheels = list((project / "packages").glob(f"{PACKAGE}-*/dist/{PACKAGE}-*.whl"))
    assert len(wheels) == 1, wheels
    meta = json.loads(next((project / "packages").glob(f"{PACKAGE}-*/meta.json")).read_text())
    assert any(req.startswith("spacy-pos-ner>=") for req in meta["requirements"]), meta["requirements"]
    python = fresh_venv(tmp_path / "venv")
    component = build_component_wheel(tmp_path / "wheels")
    run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", str(component), str(wheels[0])])
    script = PREDICT.format(package=PACKAGE)
    env = {**OFFLINE, "PATH": str(python.parent)}
    out = json.loads(run([str(python), "-c", script, json.dumps(TEXTS)], cwd=tmp_path, env=env))
    assert out["pipeline"] == ["transformer", "tagger", "ner"]
    assert "ents_f" in out["performance"] and "tag_acc" in out["performance"]
    assert str(tmp_path / "venv") in out["component_file"], "the component code must come from the wheel"
    assert not list((tmp_path / "venv").rglob(f"{PACKAGE}*/pos_ner*")), "the model wheel must not bundle the code"

    trained = spacy.load(project / "training/pos_ner/model-best")
    expected = [[[e.start, e.end, e.label_, round(e._.confidence, 4)] for e in d.ents] for d in trained.pipe(TEXTS)]
    assert out["ents"] == expected
    assert any(expected), "the trained toy pipeline should find some entities"


@pytest.mark.slow
def test_component_wheel_alone_trains_a_user_config_without_code(tmp_path, toy_corpus):
    """Someone else's project: only the component's wheel installed, a config of
    theirs that names `factory = "pos_ner"`, `spacy train` with no code file, run
    outside this checkout; the trained pipeline loads and finds entities."""
    python = fresh_venv(tmp_path / "venv")
    run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", str(build_component_wheel(tmp_path / "w"))])
    user = tmp_path / "their_project"
    user.mkdir()
    shutil.copy(ROOT / "configs" / "pos_ner.cfg", user / "ner.cfg")
    encoder = make_tiny_bert(tmp_path / "encoder")
    train, dev = toy_corpus
    env = {**OFFLINE, "PATH": str(python.parent)}
    run(
        [
            str(python),
            "-m",
            "spacy",
            "train",
            "ner.cfg",
            "--output",
            "out",
            "--paths.train",
            str(train),
            "--paths.dev",
            str(dev),
            "--components.transformer.model.name",
            str(encoder),
            *TOY_SCHEDULE.replace("max_steps 40", "max_steps 30").split(),
        ],
        cwd=user,
        env=env,
    )
    check = """
import inspect, sys, spacy
nlp = spacy.load("out/model-best")
print(inspect.getfile(type(nlp.get_pipe("ner"))))
print(sum(len(doc.ents) for doc in nlp.pipe(["Anna Berg lives in Paris .", "Tom Reed works for Globex ."])))
"""
    component_file, n_ents = run([str(python), "-c", check], cwd=user, env=env).split()
    assert component_file.startswith(str(tmp_path / "venv"))
    assert int(n_ents) > 0


def test_readme_documents_the_current_project():
    """The section `spacy project document` writes must match project.yml."""
    generated = run([sys.executable, "-m", "spacy", "project", "document", str(ROOT)])
    start = generated.index("<!-- WEASEL: AUTO-GENERATED DOCS START")
    assert generated[start:].strip() in (ROOT / "README.md").read_text(encoding="utf8")


@pytest.mark.parametrize("overrides", [{}, {"vars.dev": ""}, {"vars.train": "a.jsonl", "vars.test": "b.jsonl"}])
def test_project_paths_resolve_one_by_one(overrides):
    """weasel's substitution merges two adjacent `${a}/${b}` list items into one
    string; the data files must stay separate deps whatever the variables."""
    from weasel.util.config import load_project_config

    config = load_project_config(ROOT, overrides=overrides)
    for command in config["commands"]:
        for path in [*command.get("deps", []), *command.get("outputs", [])]:
            assert ", " not in path, (command["name"], path)
    convert = next(command for command in config["commands"] if command["name"] == "convert")
    variables = {**config["vars"], **{name.removeprefix("vars."): value for name, value in overrides.items()}}
    for split in ("train", "dev", "test"):
        assert f"{variables['data_dir']}/{variables[split]}" in convert["deps"]
