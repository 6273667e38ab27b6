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
        "check-data",
        "compare",
        "convert",
        "evaluate",
        "export-onnx",
        "grid",
        "onnx-parity",
        "predict",
        "serve",
        "train",
    ]
    for command in ([sys.executable, "-m", "pos_ner", "--help"], [shutil.which("pos-ner"), "--help"]):
        assert command[0], "the pos-ner console script is installed"
        output = run(command, cwd=tmp_path)
        assert all(name in output for name in expected), output


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


MODEL_CODE = [
    "architectures.py",
    "layers/concat_per_doc.py",
    "pipeline_component.py",
    "decoding.py",
    "span_getters.py",
    "windows.py",
]


def test_project_commands_list_the_code_they_run():
    """So that a changed component re-runs the steps it affects: each command
    that calls `python -m pos_ner X` depends on cli/X.py, each command that loads
    or trains a pipeline on the model's code, and every listed code file exists."""
    import re

    import srsly

    commands = srsly.read_yaml(ROOT / "project.yml")["commands"]
    for command in commands:
        deps = command.get("deps", [])
        for line in command["script"]:
            for name in re.findall(r"python -m pos_ner (\S+)", line):
                assert f"components/pos_ner/cli/{name.replace('-', '_')}.py" in deps, command["name"]
        if any(re.search(r"python -m pos_ner (train|grid|compare)", line) for line in command["script"]) or any(
            "model-best" in dep for dep in deps
        ):
            assert all(f"components/pos_ner/{code}" in deps for code in MODEL_CODE), command["name"]
        if any(re.search(r"python -m pos_ner (train|grid|compare)", line) for line in command["script"]):
            # the training corpus reader and the learning-rate schedule
            assert "components/pos_ner/corpus.py" in deps, command["name"]
            assert "components/pos_ner/schedules.py" in deps, command["name"]
        for dep in deps:
            if dep.startswith(("components/", "benchmarks/")):
                assert (ROOT / dep).is_file(), f"{command['name']}: {dep}"


# The package's floors, top to bottom; a module may import its own floor or lower ones only.
FLOORS = [
    ["cli"],
    ["serving", "experiments", "onnx", "onnx_component", "batch", "model_card", "backends"],
    ["pipeline_component", "architectures", "span_getters", "corpus"],
    ["io", "evaluation", "decoding", "layers", "windows", "schedules", "optimizers", "cpu_ops"],
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
