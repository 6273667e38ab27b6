"""The core package is only what a trained pipeline needs: loading spaCy or a
pipeline imports none of the extras (in a fresh interpreter, read from
`sys.modules`), and each command that needs an extra says which one when it is
missing. The same, for real, in a virtualenv with only the core:
tests/test_project.py::test_card_command_installs_the_model_in_a_bare_virtualenv."""

import importlib.util
import json
import subprocess
import sys

import pytest
import spacy
from typer.testing import CliRunner

from pos_ner.cli import _util, app

from conftest import make_docs, write_docbin

# The top-level modules of the extras' own libraries (setup.cfg) and of the project's own
# (optuna, for its grid search: requirements.txt), and the package's optional modules.
EXTRA_MODULES = {
    "seqeval",
    "matplotlib",
    "fastapi",
    "uvicorn",
    "starlette",
    "prometheus_client",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "ray",
    "optuna",
}
OPTIONAL_PARTS = {"pos_ner.onnx", "pos_ner.serving", "pos_ner.batch", "pos_ner.evaluation"}

IMPORTED = """
import json, sys
{setup}
print(json.dumps(sorted(sys.modules)))
"""


def imported_after(setup: str) -> set:
    """The modules a fresh interpreter holds after running `setup`."""
    code = IMPORTED.format(setup=setup)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout.splitlines()[-1]))


def optional(modules: set) -> list:
    """The extras' libraries and the package's optional parts among `modules`."""
    return sorted(
        name
        for name in modules
        if name.split(".")[0] in EXTRA_MODULES
        or any(name == part or name.startswith(part + ".") for part in OPTIONAL_PARTS)
    )


def test_every_extra_is_installed_here():
    """The checks below mean something only where every extra is installed (the project's setup)."""
    missing = [
        module for modules in _util.EXTRAS.values() for module in modules if not importlib.util.find_spec(module)
    ]
    assert not missing


def test_a_blank_pipeline_imports_no_extra():
    """spaCy imports every `spacy_factories` entry point when a Language is made:
    ours, `pos_ner_onnx` included, must not pull onnxruntime or any other extra."""
    modules = imported_after("import spacy; spacy.blank('en')")
    assert "pos_ner.onnx_component" in modules  # the entry point was loaded: the check is not vacuous
    assert optional(modules) == []


def test_loading_and_running_a_pipeline_imports_no_extra(tiny_pipeline_dir, tmp_path):
    """`spacy.load` + `nlp(text)` of our pipeline imports nothing beyond what the
    same pipeline without our component (spacy-transformers' transformer and
    spaCy's tagger) imports, except the core modules of pos_ner."""
    plain = tmp_path / "transformer_tagger"
    spacy.load(tiny_pipeline_dir, exclude=["ner"]).to_disk(plain)
    assert spacy.load(plain).pipe_names == ["transformer", "tagger"]
    run = "import spacy; nlp = spacy.load({path!r}); assert nlp('Anna Berg lives in Paris .').has_annotation('TAG')"
    ours = imported_after(run.format(path=str(tiny_pipeline_dir)))
    baseline = imported_after(run.format(path=str(plain)))
    assert "pos_ner.pipeline_component" in ours
    assert optional(ours) == []
    added = sorted(name for name in ours - baseline if not name.startswith("pos_ner"))
    assert added == [], added


COMMANDS = [  # arguments after `pos-ner`, the files to create, the extra it must name
    (["serve", "MODEL"], "serve"),
    (["export-onnx", "MODEL", "export"], "onnx"),
    (["onnx-parity", "MODEL", "export", "dev.spacy", "--output", "parity.json"], "onnx"),
    (["annotate", "MODEL", "in.jsonl", "out.jsonl"], "batch"),
    (["evaluate", "MODEL", "dev.spacy", "--output", "test.json"], "evaluate"),
    (["predict", "export", "in.jsonl", "out.jsonl", "--backend", "onnx"], "onnx"),
]


@pytest.mark.parametrize("args,extra", COMMANDS, ids=[args[0] for args, _ in COMMANDS])
def test_a_missing_extra_is_one_line(args, extra, tiny_pipeline_dir, tmp_path, monkeypatch):
    """With the extra's modules hidden from the look-up, the command names the
    extra and its install command, exits 1, and writes nothing."""
    hidden = set(_util.EXTRAS[extra])
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        _util.importlib.util, "find_spec", lambda name, *a: None if name in hidden else find_spec(name, *a)
    )
    write_docbin(tmp_path / "dev.spacy", make_docs(2))
    (tmp_path / "in.jsonl").write_text('{"text": "Anna Berg lives in Paris ."}\n')
    (tmp_path / "export").mkdir()
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [str(tiny_pipeline_dir) if a == "MODEL" else a.replace("MODEL", str(tiny_pipeline_dir)) for a in args]
    result = CliRunner().invoke(app, args)
    command = "pos-ner: --backend onnx" if "--backend" in args else f"pos-ner {args[0]}"
    expected = f'{command}: needs the {extra!r} extra: pip install "spacy-pos-ner[{extra}]"\n'
    assert (result.exit_code, result.output) == (1, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
