"""The file-writing commands other than predict (evaluate, export-onnx,
onnx-parity, and the project's grid and compare) and the CLI entry point's
safety net, through `python -m pos_ner` (and `python -m scripts.experiments`)
subprocesses: outputs that would destroy an input are refused before any work,
models and data that cannot be read are one line, a failed export leaves the
earlier one, and nothing ever prints a traceback unless POS_NER_DEBUG is set."""

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
import spacy

from conftest import ROOT, leftovers, make_docs, snapshot, write_docbin

TIMEOUT = 240


def cli(*args, env=None, python_args=None):
    """`python -m pos_ner ARGS` (or `python PYTHON_ARGS ARGS`), without POS_NER_DEBUG."""
    environment = {key: value for key, value in os.environ.items() if key != "POS_NER_DEBUG"}
    environment.update(env or {})
    command = [sys.executable, *(python_args or ["-m", "pos_ner"]), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=environment)


def experiments(*args, env=None):
    """`python -m scripts.experiments ARGS` from the checkout's root, without POS_NER_DEBUG."""
    environment = {key: value for key, value in os.environ.items() if key != "POS_NER_DEBUG"}
    environment.update(env or {})
    command = [sys.executable, "-m", "scripts.experiments", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=environment, cwd=ROOT)


def one_line_failure(result, code=1) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("cli_commands")


@pytest.fixture(scope="module")
def data(work):
    return write_docbin(work / "test.spacy", make_docs(4, seed=8))


@pytest.fixture(scope="module")
def truncated_model(tiny_pipeline_dir, work):
    copy = work / "truncated"
    shutil.copytree(tiny_pipeline_dir, copy)
    model_file = copy / "ner" / "model"
    model_file.write_bytes(model_file.read_bytes()[:1000])
    return copy


@pytest.fixture(scope="module")
def fake_export(work):
    """A folder that passes onnx-parity's completeness check (its files are empty)."""
    folder = work / "fake_onnx"
    folder.mkdir()
    meta = {"models": {"fp32": "model.onnx"}, "hf_tokenizer": "hf_tokenizer", "spacy_tokenizer": "spacy_tokenizer"}
    (folder / "onnx_meta.json").write_text(json.dumps(meta), encoding="utf8")
    (folder / "model.onnx").write_bytes(b"")
    (folder / "hf_tokenizer").mkdir()
    (folder / "spacy_tokenizer").write_bytes(b"")
    return folder


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "case",
    [
        "output-is-data",
        "report-dir-is-model",
        pytest.param("output-inside-model", marks=SLOW),
        pytest.param("report-is-output", marks=SLOW),
    ],
)
def test_evaluate_refuses_outputs_that_would_destroy_an_input(case, tiny_pipeline_dir, data, work):
    args = {
        "output-is-data": (["-o", data], "the output is also an input"),
        "output-inside-model": (["-o", tiny_pipeline_dir / "metrics.json"], "lies inside the input folder"),
        "report-is-output": (["-o", work / "r" / "report.md", "--report-dir", work / "r"], "also an input"),
        "report-dir-is-model": (["-o", work / "m.json", "--report-dir", tiny_pipeline_dir], "inside the input"),
    }
    extra, expected = args[case]
    before, model_before = data.read_bytes(), snapshot(tiny_pipeline_dir)
    assert expected in one_line_failure(cli("evaluate", tiny_pipeline_dir, data, *extra))
    assert data.read_bytes() == before and snapshot(tiny_pipeline_dir) == model_before


@pytest.mark.parametrize("case", ["truncated-model", pytest.param("not-a-docbin", marks=SLOW), "missing-data"])
def test_evaluate_bad_model_or_data_is_one_line_and_keeps_earlier_metrics(
    case, truncated_model, tiny_pipeline_dir, work
):
    metrics = work / f"earlier_metrics_{case}.json"
    metrics.write_text('{"earlier": true}', encoding="utf8")
    data = write_docbin(work / "dev.spacy", make_docs(2, seed=1))
    not_docbin = work / "notes.spacy"
    not_docbin.write_text("not a DocBin", encoding="utf8")
    model, data, expected = {
        "truncated-model": (
            truncated_model,
            data,
            f"{truncated_model}: cannot load the pipeline: ner/model is corrupt",
        ),
        "not-a-docbin": (tiny_pipeline_dir, not_docbin, f"{not_docbin}: cannot read the DocBin (.spacy) file: "),
        "missing-data": (tiny_pipeline_dir, work / "missing.spacy", f"{work / 'missing.spacy'}: no such DocBin"),
    }[case]
    assert one_line_failure(cli("evaluate", model, data, "-o", metrics)).startswith(expected)
    assert metrics.read_text(encoding="utf8") == '{"earlier": true}'
    assert leftovers(work) == []


def test_evaluate_writes_complete_files_with_the_usual_mode(tiny_pipeline_dir, data, work):
    folder = work / "evaluated"
    result = cli("evaluate", tiny_pipeline_dir, data, "-o", folder / "metrics.json", "--report-dir", folder)
    assert result.returncode == 0, result.stderr
    assert json.loads((folder / "metrics.json").read_text(encoding="utf8"))["data"] == str(data)
    assert sorted(p.name for p in folder.iterdir()) == ["confusion.png", "metrics.json", "reliability.png", "report.md"]
    umask = os.umask(0)
    os.umask(umask)
    # Atomic writes go through mkstemp (mode 0600); the files still get the mode a plain open() gives.
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o666 & ~umask}


@pytest.mark.parametrize(
    "case", ["is-model", "holds-model", pytest.param("inside-model", marks=SLOW), pytest.param("is-a-file", marks=SLOW)]
)
def test_export_onnx_refuses_outputs_that_would_destroy_the_model(case, tiny_pipeline_dir, data):
    output, expected = {
        "is-model": (tiny_pipeline_dir, "the output is also an input"),
        "inside-model": (tiny_pipeline_dir / "onnx", "lies inside the input folder"),
        "holds-model": (tiny_pipeline_dir.parent, "the output folder holds the input"),
        "is-a-file": (data, "is a file, expected a folder path"),
    }[case]
    before = snapshot(tiny_pipeline_dir)
    assert expected in one_line_failure(cli("export-onnx", tiny_pipeline_dir, output))
    assert snapshot(tiny_pipeline_dir) == before and leftovers(tiny_pipeline_dir.parent) == []


def test_failed_export_leaves_the_earlier_export(truncated_model, work):
    earlier = work / "onnx_earlier"
    earlier.mkdir()
    (earlier / "onnx_meta.json").write_text('{"earlier": true}', encoding="utf8")
    (earlier / "model.onnx").write_bytes(b"earlier model")
    before = snapshot(earlier)
    line = one_line_failure(cli("export-onnx", truncated_model, earlier))
    assert line.startswith(f"{truncated_model}: cannot load the pipeline: ner/model is corrupt")
    # A pipeline that loads but cannot be exported fails inside the temporary folder.
    no_transformer = work / "ruler_only"
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler")
    nlp.to_disk(no_transformer)
    line = one_line_failure(cli("export-onnx", no_transformer, earlier))
    assert line.startswith("cannot export to ONNX: the pipeline has no 'transformer' component")
    assert snapshot(earlier) == before
    assert leftovers(work) == []


def test_onnx_parity_without_an_export_says_run_export_onnx_first(tiny_pipeline_dir, data, work):
    missing = work / "never_exported"
    line = one_line_failure(cli("onnx-parity", tiny_pipeline_dir, missing, data, "-o", work / "p.json"))
    assert line == f"{missing}: no such folder; run `pos-ner export-onnx {tiny_pipeline_dir} {missing}` first"


@SLOW
def test_onnx_parity_refuses_output_is_data(tiny_pipeline_dir, data, fake_export):
    before = data.read_bytes()
    line = one_line_failure(cli("onnx-parity", tiny_pipeline_dir, fake_export, data, "-o", data))
    assert "the output is also an input" in line and data.read_bytes() == before


@SLOW
def test_onnx_parity_with_a_corrupt_model_is_one_line(truncated_model, data, fake_export):
    output = fake_export.parent / "parity.json"
    line = one_line_failure(cli("onnx-parity", truncated_model, fake_export, data, "-o", output))
    assert line.startswith(f"{truncated_model}: cannot load the pipeline: ")
    assert not output.exists()


def test_grid_refuses_a_db_that_is_its_config(work):
    config = work / "base.cfg"
    config.write_text("[paths]\ntrain = null\n", encoding="utf8")
    grid = work / "grid.yml"
    grid.write_text("grid:\n  training.dropout: [0.1, 0.2]\n", encoding="utf8")
    result = experiments("grid", config, grid, "--output", work / "grid", "--db", config, "--paths.dev", "dev.spacy")
    assert "the output is also an input" in one_line_failure(result)
    assert config.read_text(encoding="utf8") == "[paths]\ntrain = null\n"
    assert not (work / "grid").exists()


@pytest.mark.parametrize("case", ["md-output", pytest.param("output-is-definition", marks=SLOW)])
def test_compare_refuses_outputs_before_any_training(case, work):
    definition = work / "compare.yml"
    definition.write_text("epochs: 1\nseeds: [0]\nsystems: {}\n", encoding="utf8")
    output, expected = {
        "md-output": (work / "table.md", "--output must not end in .md"),
        "output-is-definition": (definition, "the output is also an input"),
    }[case]
    assert expected in one_line_failure(experiments("compare", definition, "--transformer", "x", "--output", output))
    assert definition.read_text(encoding="utf8") == "epochs: 1\nseeds: [0]\nsystems: {}\n"


UNEXPECTED = """
import sys
import pos_ner.cli.predict as predict
from pos_ner.cli import setup_cli

def boom(*args, **kwargs):
    raise RuntimeError("boom\\nsecond line")

predict.predict = boom
setup_cli(sys.argv[1:])
"""


@pytest.mark.parametrize("debugging", [False, pytest.param(True, marks=SLOW)], ids=["plain", "POS_NER_DEBUG"])
def test_unexpected_errors_are_one_line_unless_debugging(debugging, tiny_pipeline_dir, work):
    source = work / "in.txt"
    source.write_text("Anna Berg lives in Paris .\n", encoding="utf8")
    output = work / f"unexpected_{debugging}.jsonl"
    env = {"POS_NER_DEBUG": "1"} if debugging else None
    result = cli("predict", tiny_pipeline_dir, source, output, python_args=["-c", UNEXPECTED], env=env)
    if debugging:
        assert result.returncode == 1 and "Traceback" in result.stderr and "RuntimeError: boom" in result.stderr
    else:
        assert one_line_failure(result) == "pos-ner predict: error: RuntimeError: boom"
    assert not output.exists() and leftovers(work) == []


def test_usage_errors_are_one_line(tiny_pipeline_dir):
    usage = one_line_failure(cli("evaluate", tiny_pipeline_dir), code=2)
    assert usage.startswith("pos-ner evaluate: error: Missing argument") and "(see 'pos-ner evaluate --help')" in usage
    # the project's experiments, on the same safety net (pos_ner.cli._util.run_cli)
    prog = "python -m scripts.experiments"
    usage = one_line_failure(experiments("grid", "--gpu", "-1"), code=2)
    assert usage.startswith(f"{prog} grid: error: Missing argument") and f"(see '{prog} grid --help')" in usage
    usage = one_line_failure(experiments("train"), code=2)
    assert usage.startswith(f"{prog}: error: No such command") and f"(see '{prog} --help')" in usage


@pytest.mark.parametrize(
    "args,hidden,expected",
    [
        (["grid", "base.cfg", "grid.yml"], "optuna", "grid: needs optuna, one of the project's requirements"),
        (["compare", "compare.yml", "--transformer", "x"], "accelerate", "compare: needs accelerate, one of"),
        (["compare", "compare.yml", "--transformer", "x"], "seqeval", "compare: needs the 'evaluate' extra"),
    ],
    ids=["grid-optuna", "compare-accelerate", "compare-evaluate"],
)
def test_the_experiments_name_a_missing_requirement(args, hidden, expected, tmp_path, monkeypatch):
    """A project requirement that is not installed (requirements.txt) or a missing
    extra of the package: one line naming it, exit 1, nothing written."""
    import importlib.util

    from typer.testing import CliRunner

    from scripts.experiments.cli import app

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == hidden else find_spec(name, *a))
    for name in ("base.cfg", "grid.yml", "compare.yml"):
        (tmp_path / name).write_text("{}\n", encoding="utf8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and result.output.startswith(f"python -m scripts.experiments {expected}")
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.cfg", "compare.yml", "grid.yml"]
