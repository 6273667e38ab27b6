"""The component is a package: spaCy finds it through entry points (no --code,
no import), its tools are one CLI, and nothing reaches code through sys.path."""

import json
import shutil
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from conftest import ROOT

FROM_ANYWHERE = """
import json, spacy, sys
from spacy.util import registry
nlp = spacy.blank("en")
ner = nlp.add_pipe("pos_ner")  # no import of pos_ner: spaCy's entry points find it
architecture = registry.architectures.get("pos_ner.PosNerModel.v1")
import pos_ner
from pos_ner.onnx import OnnxNer
from pos_ner.serving import create_app
print(json.dumps({
    "class": type(ner).__module__ + "." + type(ner).__name__,
    "same_class": type(ner) is pos_ner.PosNer,
    "architecture": architecture is pos_ner.build_pos_ner_model,
    "package": pos_ner.__file__,
}))
"""


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_entry_points_register_the_factory_and_architecture_once():
    factories = [ep for ep in entry_points(group="spacy_factories") if ep.name == "pos_ner"]
    architectures = [ep for ep in entry_points(group="spacy_architectures") if ep.name == "pos_ner.PosNerModel.v1"]
    assert [ep.value for ep in factories] == ["pos_ner.pipeline_component:make_pos_ner"]
    assert [ep.value for ep in architectures] == ["pos_ner.architectures:build_pos_ner_model"]


def test_spacy_finds_the_component_from_any_directory(tmp_path):
    out = json.loads(run([sys.executable, "-c", FROM_ANYWHERE], cwd=tmp_path).strip().splitlines()[-1])
    assert out == {
        "class": "pos_ner.pipeline_component.PosNer",
        "same_class": True,
        "architecture": True,
        "package": str(ROOT / "components" / "pos_ner" / "__init__.py"),
    }


def test_one_cli_with_every_command(tmp_path):
    expected = [
        "annotate",
        "calibrate",
        "check-data",
        "convert",
        "evaluate",
        "export-onnx",
        "onnx-parity",
        "predict",
        "select",
        "serve",
        "train",
    ]
    for command in ([sys.executable, "-m", "pos_ner", "--help"], [shutil.which("pos-ner"), "--help"]):
        assert command[0], "the pos-ner console script is installed"
        output = run(command, cwd=tmp_path)
        assert all(name in output for name in expected), output
    # the project's experiments are the project's own tools, run from the checkout's root
    from pos_ner.cli import app

    assert not {"compare", "grid"} & {info.name for info in app.registered_commands}
    output = run([sys.executable, "-m", "scripts.experiments", "--help"], cwd=ROOT)
    assert all(name in output for name in ("compare", "grid")), output


def test_no_code_reaches_the_package_through_sys_path_or_code_files():
    """What the package replaced must not come back: the component-package
    issue's own `git grep` (path edits, code-file imports, code-file options)
    finds nothing in the repository."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout")
    pattern = r"sys.path\|import_file\|--code"
    found = subprocess.run(
        ["git", "grep", "-n", pattern, "--", ".", ":!tests/test_package.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert found.returncode == 1 and not found.stdout, found.stdout


# The entry-point groups through which spaCy and thinc import the package's modules when a
# config names their factories, architectures, readers, span getters, callbacks, schedules, optimizers.
ENTRY_POINT_GROUPS = [
    "spacy_factories",
    "spacy_architectures",
    "spacy_span_getters",
    "spacy_readers",
    "spacy_augmenters",
    "spacy_callbacks",
    "thinc_schedules",
    "thinc_optimizers",
]
PACKAGE = ROOT / "components" / "pos_ner"


def package_module(parts):
    """The file of module pos_ner.<parts> (a package: its __init__.py), or None."""
    base = PACKAGE.joinpath(*parts)
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


# The project's own code outside the package, run from the checkout's root (`python -m benchmarks.X`).
PROJECT_PACKAGES = ("benchmarks", "scripts")


def project_module(parts):
    """The file of the project module <parts> (benchmarks.speed, scripts.experiments.grid), or None."""
    base = ROOT.joinpath(*parts)
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


def imported_modules(path):
    """The files of the pos_ner modules (and, for a benchmark script, the sibling scripts)
    that `path` imports: relative and absolute `pos_ner` imports, inside functions too, the
    submodules `from X import name` names, except under `if TYPE_CHECKING:`."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf8"))
    unrun = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            unrun.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    in_package = path.is_relative_to(PACKAGE)
    package = list(path.relative_to(PACKAGE).parts[:-1]) if in_package else []
    found = set()
    for node in ast.walk(tree):
        if id(node) in unrun:
            continue
        if isinstance(node, ast.Import):
            imports = [(alias.name.split("."), []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            assert in_package and node.level - 1 <= len(package), f"{path}: {ast.unparse(node)}"
            base = package[: len(package) - node.level + 1]
            imports = [(["pos_ner", *base, *(node.module.split(".") if node.module else [])], node.names)]
        elif isinstance(node, ast.ImportFrom):
            imports = [(node.module.split("."), node.names)]
        else:
            continue
        for module, names in imports:
            if module[0] == "pos_ner":
                files = [package_module(module[1:])] + [package_module([*module[1:], a.name]) for a in names]
                assert files[0], f"{path}: {ast.unparse(node)}: no such module"
                found.update(file for file in files if file)
            elif module[0] in PROJECT_PACKAGES:
                files = [project_module(module)] + [project_module([*module, a.name]) for a in names]
                assert files[0], f"{path}: {ast.unparse(node)}: no such module"
                found.update(file for file in files if file)
            elif not in_package and len(module) == 1 and (path.parent / f"{module[0]}.py").is_file():
                found.add(path.parent / f"{module[0]}.py")  # a script's folder is on its sys.path
    return found


def import_closure(roots):
    """{file: the file that first imported it} for roots and everything they import, transitively."""
    importer = {root: None for root in roots}
    todo = list(roots)
    while todo:
        path = todo.pop()
        for module in sorted(imported_modules(path) - importer.keys()):
            importer[module] = path
            todo.append(module)
    return importer


def entry_point_modules():
    """The files of the modules setup.cfg registers in ENTRY_POINT_GROUPS."""
    import configparser

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg", encoding="utf8")
    entry_points = setup["options.entry_points"]
    modules = set()
    for group in ENTRY_POINT_GROUPS:
        for line in entry_points.get(group, "").strip().splitlines():
            module = line.split("=", 1)[1].strip().split(":")[0].split(".")
            assert module[0] == "pos_ner" and package_module(module[1:]), f"setup.cfg: {group}: {line}"
            modules.add(package_module(module[1:]))
    return modules


def project_commands():
    """project.yml's commands with the default variables substituted."""
    import srsly
    from weasel.util.config import substitute_project_variables

    return substitute_project_variables(srsly.read_yaml(ROOT / "project.yml"))["commands"]


def command_code(command):
    """{module file: its importer} that a command runs: for each `python -m pos_ner X` cli/X.py,
    for each `python benchmarks/Y.py` that script, for each `python -m scripts.X` (or benchmarks.X)
    that module (a package: its __main__.py), for `scripts.experiments compare DEFINITION` the
    modules DEFINITION's `script` systems run, each with what it imports; and for a command that
    loads or trains a pipeline (its deps name a model-best or a configs/*.cfg, or it trains) the
    modules of setup.cfg's entry points, with what they import."""
    import re

    import srsly

    script = " ".join(command["script"])
    roots = set()
    for name in re.findall(r"python -m pos_ner (\S+)", script):
        roots.add(PACKAGE / "cli" / f"{name.replace('-', '_')}.py")
    for name in re.findall(r"python ((?:benchmarks|scripts)/\S+\.py)", script):
        roots.add(ROOT / name)
    for name in re.findall(r"python -m ((?:benchmarks|scripts)(?:\.\w+)+)", script):
        module = project_module(name.split("."))
        assert module, f"{command['name']}: python -m {name}: no such module"
        roots.add(module.parent / "__main__.py" if module.name == "__init__.py" else module)
    for definition in re.findall(r"python -m scripts\.experiments compare (\S+\.yml)", script):
        for system in srsly.read_yaml(ROOT / definition)["systems"].values():
            if "script" in system:  # a module that `python -m` runs from the checkout's root
                module = project_module(system["script"].split("."))
                assert module, f"{command['name']}: {definition}: script {system['script']}: no such module"
                roots.add(module)
    for root in roots:
        assert root.is_file(), f"{command['name']}: {root.relative_to(ROOT)} does not exist"
    if loads_a_pipeline(command):
        roots |= entry_point_modules()
    return import_closure(roots)


def loads_a_pipeline(command):
    """Whether a command loads or trains a pipeline: it trains, or its deps name a model-best or a
    configs/*.cfg (whose factories and architectures spaCy finds through setup.cfg's entry points)."""
    import re

    script = " ".join(command["script"])
    trains = re.search(r"python -m (pos_ner (train|grid|compare)|scripts\.experiments (grid|compare))\b", script)
    return bool(trains) or any(
        "model-best" in dep or re.fullmatch(r"configs/.+\.cfg", dep) for dep in command.get("deps", [])
    )


def test_project_commands_list_the_code_they_run():
    """So that a changed component re-runs the steps it affects: each module a
    command runs (command_code, derived from the imports) is a dep of the command
    or lies in a folder that is (weasel hashes a folder's files), a command that
    loads or trains a pipeline depends on setup.cfg (its entry points), and every
    dep under components/ or benchmarks/ exists."""
    from pathlib import PurePosixPath

    missing, checked, entry_points = [], {}, entry_point_modules()
    for command in project_commands():
        deps = [PurePosixPath(dep) for dep in command.get("deps", [])]
        code = command_code(command)
        checked[command["name"]] = {path.relative_to(ROOT).as_posix() for path in code}
        for module, importer in sorted(code.items()):
            path = PurePosixPath(module.relative_to(ROOT).as_posix())
            if not any(dep == path or dep in path.parents for dep in deps):
                via = f" (imported by {importer.relative_to(ROOT).as_posix()})" if importer else ""
                via = " (an entry point in setup.cfg)" if not importer and module in entry_points else via
                missing.append(f"{command['name']}: {path}{via}")
        if loads_a_pipeline(command) and PurePosixPath("setup.cfg") not in deps:
            missing.append(f"{command['name']}: setup.cfg (the entry points of the pipeline it loads)")
        for dep in deps:
            if dep.parts[0] in ("components", *PROJECT_PACKAGES) and not (ROOT / dep).exists():
                missing.append(f"{command['name']}: lists {dep}, which does not exist")
    assert not missing, "project.yml: code that commands run and their deps miss:\n" + "\n".join(missing)
    # the derivation itself: what the CNN preset turns on, the optimizer, the service, the HF baseline
    pkg = "components/pos_ner/"
    assert {f"{pkg}{module}" for module in ("layers/transitions.py", "layers/length_groups.py", "optimizers.py")} <= (
        checked["train"]
    )
    assert {f"{pkg}serving/app.py", f"{pkg}cli/serve.py"} <= checked["serve"]
    assert {"scripts/experiments/runner.py", "scripts/hf_baseline.py"} <= checked["compare-systems"]
    assert {"scripts/experiments/grid.py", f"{pkg}cli/_util.py"} <= checked["grid"]
    assert "scripts/static_vectors.py" in checked["cnn-screen"]
    assert {"benchmarks/speed.py", "benchmarks/profile_split.py"} <= checked["inference-windows"]
    assert f"{pkg}io/conll.py" in checked["convert"] and f"{pkg}evaluation/plots.py" in checked["evaluate"]


def test_project_states_each_code_dep_once():
    """No command lists a dep twice or a file (or folder) that another of its
    deps, a folder, already covers: the package's code is one dep, not a list."""
    from pathlib import PurePosixPath

    repeated = []
    for command in project_commands():
        deps = [PurePosixPath(dep) for dep in command.get("deps", [])]
        for i, dep in enumerate(deps):
            if dep in deps[:i] or any(other in dep.parents for other in deps):
                repeated.append(f"{command['name']}: {dep}")
    assert not repeated, "project.yml: deps already covered:\n" + "\n".join(repeated)


# The package's floors, top to bottom; a module may import its own floor or lower ones only.
FLOORS = [
    ["cli"],
    ["serving", "onnx", "onnx_component", "batch", "model_card", "backends"],
    ["pipeline_component", "architectures", "span_getters", "corpus"],
    ["io", "evaluation", "decoding", "thresholds", "selection", "layers"],
    ["windows", "schedules", "optimizers", "cpu_ops"],
]


def test_no_module_imports_a_higher_floor():
    import ast

    package = ROOT / "components" / "pos_ner"
    floor_of = {name: len(FLOORS) - i for i, names in enumerate(FLOORS) for name in names}
    checked = 0
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts in (("__init__",), ("__main__",)):
            continue  # the package's public names and `python -m pos_ner`
        own = floor_of[parts[0]]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(parts[: len(parts) - node.level])
                target = (base + (node.module.split(".") if node.module else []))[:1]
                if target:  # `from . import X` at the package's top names X itself
                    names = target
                else:
                    names = [alias.name for alias in node.names]
                for name in names:
                    if name in floor_of:
                        assert floor_of[name] <= own, f"{path.relative_to(ROOT)} imports {name}, a higher floor"
                        checked += 1
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pos_ner"):
                raise AssertionError(f"{path.relative_to(ROOT)}: use a relative import inside the package")
    assert checked > 20
