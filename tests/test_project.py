"""End to end: `spacy project run all` on synthetic CoNLL files with a tiny
random BERT, then the packaged wheel installed in a fresh virtual environment
must give the same entities as the trained pipeline directory."""

import json
import os
import random
import re
import shlex
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest
import spacy
from spacy.util import load_config

from pos_ner import Calibration

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


# The same pipeline config, with a training schedule sized for a toy corpus: config overrides, not a
# rewritten config. TOY_SCHEDULE as `spacy train` takes them, TOY_VARS as the project's variable does.
TOY_PAIRS = {
    "training.max_steps": 40,
    "training.eval_frequency": 20,
    "training.batcher.size": 150,
    "training.optimizer.learn_rate.warmup_steps": 5,
    "training.optimizer.learn_rate.initial_rate": 0.003,
}
TOY_SCHEDULE = " ".join(f"--{key} {value}" for key, value in TOY_PAIRS.items())
TOY_VARS = ["--vars.train_overrides", " ".join(f"{key}={value}" for key, value in TOY_PAIRS.items())]


def copy_project(destination: Path) -> Path:
    """What a user's checkout of the project holds besides the installed package."""
    destination.mkdir()
    for name in [
        "project.yml",
        "configs",
        "components",
        "benchmarks",
        "scripts",
        "setup.cfg",
        "pyproject.toml",
        "README.md",
    ]:
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
    command = [sys.executable, "-m", "spacy", "project", "run", "all", str(project_dir), "--vars.data_dir", str(data)]
    output = run([*command, "--vars.transformer", str(encoder), "--vars.gpu", "-1", *TOY_VARS])
    # The variable reached training, and no step warned about the way it got there.
    assert "training.max_steps 40: the learning-rate schedule ends there too" in output
    assert "deprecated" not in output
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
    # the train step calibrated the model it leaves (or said why not: no entity predicted on dev)
    calibration = json.loads((project / "training/pos_ner/calibration.json").read_text())
    ner = spacy.load(project / "training/pos_ner/model-best").get_pipe("ner")
    assert ner.calibration == Calibration.from_dict(calibration["picked"])
    assert calibration["candidates"] or calibration["reason"]
    # the package step's model card: the evaluation's scores and weaknesses, in the wheel's README too
    readme = next((project / "packages").glob(f"{PACKAGE}-*/README.md")).read_text()
    assert f"**{100 * metrics['entities']['micro']['f1-score']:.2f}**" in readme
    assert "### Known weaknesses" in readme and "The same text lowercased: micro F1" in readme
    assert "`ent._.confidence` is " in readme
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
    run([*command, *TOY_VARS])
    nlp = spacy.load(project / "training/pos_ner_cnn/model-best")
    assert nlp.pipe_names == ["tok2vec", "tagger", "ner"]
    metrics = json.loads((project / "metrics/pos_ner_cnn/test.json").read_text())
    assert metrics["n_docs"] == 6 and set(metrics["entities"]["per_type"]) <= {"LOC", "ORG", "PER"}
    wheels = list((project / "packages").glob("en_ner_pos_conll_cnn-*/dist/en_ner_pos_conll_cnn-*.whl"))
    assert len(wheels) == 1, wheels
    assert (project / "training/pos_ner/model-best/ner/model").read_bytes() == default_model


CLOSURE = """
import json, sys
from importlib.metadata import distributions, distribution
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

def closure(name, seen):
    key = canonicalize_name(name)
    if key not in seen:
        seen.add(key)
        for line in distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                closure(requirement.name, seen)
    return seen

installed = {canonicalize_name(d.metadata["Name"]) for d in distributions()} - {"pip"}
print(json.dumps({"installed": sorted(installed), "spacy_transformers": sorted(closure("spacy-transformers", set()))}))
"""
LOADED = """
import json, sys, spacy
nlp = spacy.load("{package}")
nlp("Anna Berg lives in Paris .")
print(json.dumps(sorted(sys.modules)))
"""
# Each command that needs an extra, with arguments it accepts, and the extra it must name.
NEEDS_AN_EXTRA = [
    (["serve", PACKAGE], "serve"),
    (["export-onnx", PACKAGE, "export"], "onnx"),
    (["onnx-parity", PACKAGE, "export", "test.spacy", "--output", "parity.json"], "onnx"),
    (["annotate", PACKAGE, "in.jsonl", "out.jsonl"], "batch"),
    (["evaluate", PACKAGE, "test.spacy", "--output", "test.json"], "evaluate"),
]


@pytest.mark.slow
def test_card_command_installs_the_model_in_a_bare_virtualenv(project, tmp_path):
    """What the model card's "Use" section says, run from the project folder in a
    virtualenv without system site-packages (torch installed first, as an
    application picks its own build; everything else from the package index): the
    install is spacy-transformers' closure plus the model and spacy-pos-ner, the
    model loads by name with the trained pipeline's entities, loading imports no
    extra, and each command that needs an extra names it and exits 1."""
    meta = json.loads(next((project / "packages").glob(f"{PACKAGE}-*/meta.json")).read_text())
    assert (meta["license"], meta["author"]) == ("MIT", "spacy-pos-ner contributors")
    command = re.search(r"```bash\n(pip install [^\n]+)\n```", meta["notes"]).group(1)
    assert command == f"pip install --find-links packages/wheels {PACKAGE}"
    # (the CNN preset's test may have packaged its model into the same folder)
    wheels = {p.name for p in (project / "packages" / "wheels").iterdir()}
    assert {f"{PACKAGE}-0.1.0-py3-none-any.whl", "spacy_pos_ner-0.1.0-py3-none-any.whl"} <= wheels
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", "torch==2.13.0"])
    run([python, "-m", *shlex.split(command)], cwd=project)

    packages = json.loads(run([python, "-c", CLOSURE]))
    assert set(packages["installed"]) - set(packages["spacy_transformers"]) == {"en-ner-pos-conll", "spacy-pos-ner"}

    env = {**os.environ, **OFFLINE}
    out = json.loads(run([python, "-c", PREDICT.format(package=PACKAGE), json.dumps(TEXTS)], cwd=tmp_path, env=env))
    assert out["pipeline"] == ["transformer", "tagger", "ner"]
    assert str(tmp_path / "venv") in out["component_file"], "the component code must come from its wheel"
    trained = spacy.load(project / "training/pos_ner/model-best")
    expected = [[[e.start, e.end, e.label_, round(e._.confidence, 4)] for e in d.ents] for d in trained.pipe(TEXTS)]
    assert out["ents"] == expected
    assert any(expected), "the trained toy pipeline should find some entities"
    modules = json.loads(run([python, "-c", LOADED.format(package=PACKAGE)], cwd=tmp_path, env=env))
    assert "pos_ner.pipeline_component" in modules
    assert not [name for name in modules if name.startswith(("pos_ner.onnx.", "pos_ner.serving", "pos_ner.batch"))]

    shutil.copy(project / "corpus" / "test.spacy", tmp_path / "test.spacy")
    (tmp_path / "in.jsonl").write_text('{"text": "Anna Berg lives in Paris ."}\n')
    (tmp_path / "export").mkdir()
    for args, extra in [*NEEDS_AN_EXTRA, (["predict", "export", "in.jsonl", "out.jsonl", "--backend", "onnx"], "onnx")]:
        result = subprocess.run([python, "-m", "pos_ner", *args], capture_output=True, text=True, cwd=tmp_path, env=env)
        who = "pos-ner: --backend onnx" if "--backend" in args else f"pos-ner {args[0]}"
        line = f'{who}: needs the {extra!r} extra: pip install "spacy-pos-ner[{extra}]"\n'
        assert (result.returncode, result.stderr) == (1, line), (args, result.stderr[-2000:])
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "test.json").exists()


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


# The README and the documentation pages under docs/: what they show must exist.
DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GENERATED_DOCS = re.compile(r"<!-- WEASEL: AUTO-GENERATED DOCS START.*?AUTO-GENERATED DOCS END[^>]*-->", re.S)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*")  # NAME, SYSTEM, ... stand for a value in the text
SHELL_SEPARATORS = re.compile(r"&&|\|\||;|(?<!\\)\|")


def test_docs_project_page_documents_the_current_project():
    """docs/project.md holds the section `spacy project document` writes from
    today's project.yml (generated here, so every change to project.yml counts)."""
    generated = run([sys.executable, "-m", "spacy", "project", "document", str(ROOT)])
    start = generated.index("<!-- WEASEL: AUTO-GENERATED DOCS START")
    assert generated[start:].strip() in (ROOT / "docs" / "project.md").read_text(encoding="utf8")


def shown_commands(page: Path) -> List[List[str]]:
    """The shell commands a page shows, as argument lists: each line of its fenced
    code blocks (backslash continuations joined) and each inline code span, cut at
    `&&`, `||`, `;`, `|` and comments; the generated project section left out."""
    text = GENERATED_DOCS.sub("", page.read_text(encoding="utf8"))
    snippets: List[str] = []
    for block in FENCE.findall(text):
        snippets += block.replace("\\\n", " ").splitlines()
    snippets += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", FENCE.sub("", text))]
    commands = []
    for snippet in snippets:
        for part in SHELL_SEPARATORS.split(re.sub(r"(^|\s)#\s.*", "", snippet)):
            try:
                commands.append(shlex.split(part))
            except ValueError:  # not shell (Python, JSON): its words still name commands
                commands.append(part.split())
    return commands


def sub_command_invocations(words: List[str], module: str, script: str = "") -> Iterator[Tuple[str, List[str]]]:
    """(sub-command, its options) for each `python -m MODULE SUB` (or `SCRIPT SUB`) in words."""
    for i, word in enumerate(words):
        if (script and word == script) or (word == module and i and words[i - 1] == "-m"):
            rest = words[i + 1 :]
            if rest and re.fullmatch(r"[a-z][a-z0-9-]*", rest[0]):
                end = next((j for j, w in enumerate(rest) if w in ("python", "pos-ner")), len(rest))
                yield rest[0], [w.split("=")[0] for w in rest[1:end] if w.startswith("--")]


def pos_ner_invocations(words: List[str]) -> Iterator[Tuple[str, List[str]]]:
    """(sub-command, its options) for each `pos-ner SUB` / `python -m pos_ner SUB` in words."""
    return sub_command_invocations(words, "pos_ner", "pos-ner")


def experiments_invocations(words: List[str]) -> Iterator[Tuple[str, List[str]]]:
    """(sub-command, its options) for each `python -m scripts.experiments SUB` in words."""
    return sub_command_invocations(words, "scripts.experiments")


def test_every_command_the_readme_and_docs_show_exists():
    """Every `pos-ner` and `python -m scripts.experiments` sub-command and option,
    `python -m scripts.X` module, `spacy project run` command or workflow,
    `--vars.*` variable and repository path that README.md or a page of docs/
    shows must exist today."""
    import srsly
    import typer

    from pos_ner.cli import app
    from scripts.experiments.cli import app as experiments_app

    clis = [
        ("pos-ner", typer.main.get_command(app), pos_ner_invocations),
        ("python -m scripts.experiments", typer.main.get_command(experiments_app), experiments_invocations),
    ]
    project = srsly.read_yaml(ROOT / "project.yml")
    runnable = {command["name"] for command in project["commands"]} | set(project["workflows"])
    problems, seen = [], {"pos-ner": 0, "python -m scripts.experiments": 0, "project run": 0}
    for page in DOC_PAGES:
        name = page.relative_to(ROOT)
        for words in shown_commands(page):
            for prog, cli, invocations in clis:
                for sub, options in invocations(words):
                    seen[prog] += 1
                    command = cli.commands.get(sub)
                    if command is None:
                        problems.append(f"{name}: {prog} {sub}: no such command")
                        continue
                    known = {"--help"} | {opt for param in command.params for opt in param.opts + param.secondary_opts}
                    extra_args = command.context_settings.get("allow_extra_args", False)
                    for option in options:
                        if option not in known and not ("." in option and extra_args):
                            problems.append(f"{name}: {prog} {sub} {option}: no such option")
            for i in range(1, len(words)):
                if words[i - 1] == "-m" and words[i].startswith("scripts."):
                    base = ROOT.joinpath(*words[i].split("."))
                    if not (base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()):
                        problems.append(f"{name}: python -m {words[i]}: no such module")
            for i in range(len(words) - 2):
                if words[i : i + 2] == ["project", "run"] and re.fullmatch(r"[a-z][a-z0-9-]*", words[i + 2]):
                    seen["project run"] += 1
                    if words[i + 2] not in runnable:
                        problems.append(f"{name}: spacy project run {words[i + 2]}: not in project.yml")
        text = GENERATED_DOCS.sub("", page.read_text(encoding="utf8"))
        for variable in re.findall(r"--vars\.([\w-]+)", text):
            if variable not in project["vars"] and not PLACEHOLDER.fullmatch(variable):
                problems.append(f"{name}: --vars.{variable}: not a project variable")
        for path in re.findall(
            r"(?<![\w/.-])((?:\.ci|benchmarks|components|configs|docs|scripts|tests)/[\w./-]*\w)", text
        ):
            if not (ROOT / path).exists():
                problems.append(f"{name}: {path}: no such file")
    assert not problems, "\n".join(problems)
    # the parsing still finds the commands
    assert seen["pos-ner"] > 20 and seen["python -m scripts.experiments"] >= 3 and seen["project run"] > 10, seen


def heading_anchors(page: Path) -> Set[str]:
    """The anchors GitHub gives the headings of a Markdown page (code blocks skipped)."""
    anchors: Set[str] = set()
    counts: Dict[str, int] = {}
    for heading in re.findall(r"^#+ +(.+?) *$", FENCE.sub("", page.read_text(encoding="utf8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(f"{slug}-{counts[slug]}" if slug in counts else slug)
        counts[slug] = counts.get(slug, 0) + 1
    return anchors


def test_readme_and_docs_links_resolve():
    """Every relative link and image of README.md and docs/*.md points to a file of
    the repository, and every #anchor to a heading of its page (RESULTS.md's
    sections, the docs pages' own)."""
    problems = []
    for page in DOC_PAGES:
        text = FENCE.sub("", GENERATED_DOCS.sub("", page.read_text(encoding="utf8")))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                problems.append(f"{page.relative_to(ROOT)}: {target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
                problems.append(f"{page.relative_to(ROOT)}: {target}: no such heading")
    assert not problems, "\n".join(problems)


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
