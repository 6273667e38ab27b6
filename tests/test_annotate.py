"""`pos-ner annotate` on a local Ray with one CPU and the tiny pipeline: JSONL
in → Parquet out (through a subprocess, as users run it) and Parquet in →
JSONL out (in-process, on a Ray session the tests hold, with two actors):
the entities of `doc_to_entities`, ids kept or defaulted to the line/row,
input order; every bad record in the rejects file with its line/row, id and
reason, and N read = M written + K rejected; a bad model fails in one line
(before Ray where it can be told, from the actors otherwise, leaving an earlier
output as it was); OUTPUT may not be INPUT; a missing Ray names the extra."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ray = pytest.importorskip("ray")

import spacy  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from pos_ner import batch  # noqa: E402
from pos_ner.cli import app  # noqa: E402
from pos_ner.io.records import doc_to_entities  # noqa: E402

from conftest import leftovers  # noqa: E402

TIMEOUT = 300
TEXTS = [
    "Anna Berg lives in Paris .",
    "Tom Reed met Mia Cole .",
    "Globex opened an office in Lima .",
    "the weather was fine .",
    "Omar Haddad works for Acme Corp .",
    "",
]


def cli(*args, timeout=TIMEOUT):
    """`python -m pos_ner ARGS` (no POS_NER_DEBUG), its output captured."""
    environment = {key: value for key, value in os.environ.items() if key not in ("POS_NER_DEBUG", "RAY_ADDRESS")}
    command = [sys.executable, "-m", "pos_ner", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)


def counts_line(stderr: str) -> str:
    """The last line of stderr, which must be the counts."""
    return stderr.strip().splitlines()[-1]


def one_line_failure(code: int, stderr: str) -> str:
    assert code != 0, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def read_jsonl(path: Path):
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


@pytest.fixture(scope="module")
def nlp(tiny_pipeline_dir):
    return spacy.load(tiny_pipeline_dir)


def expected(nlp, text):
    return doc_to_entities(nlp(text))


def assert_same_entities(got, want):
    """Offsets, texts and labels exactly; confidences to float32 precision
    (the actors batch the texts differently)."""
    assert [{**e, "confidence": None} for e in got] == [{**e, "confidence": None} for e in want]
    assert [e["confidence"] for e in got] == pytest.approx([e["confidence"] for e in want], abs=1e-5)


def test_jsonl_to_parquet_through_the_cli(tmp_path, tiny_pipeline_dir, nlp):
    lines = [
        json.dumps({"id": "a", "text": TEXTS[0]}).encode(),
        json.dumps({"text": TEXTS[1], "other": 1}).encode(),  # no id: line 2
        b"",  # blank: not a record
        json.dumps({"id": "no-text"}).encode(),  # line 4
        json.dumps({"id": "number", "text": 5}).encode(),  # line 5
        b'{"id": "broken", "text": ',  # line 6: invalid JSON
        b'{"id": "latin-1", "text": "caf\xe9"}',  # line 7: not UTF-8
        json.dumps({"id": 8, "text": TEXTS[2]}).encode(),
        json.dumps({"id": None, "text": TEXTS[3]}).encode(),  # null id: line 9
        b'{"id": "nan", "text": "x", "score": NaN}',  # line 10: NaN is not JSON
        json.dumps({"id": "e", "text": TEXTS[5]}).encode(),
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    output = tmp_path / "out.parquet"
    result = cli("annotate", tiny_pipeline_dir, source, output, "--num-cpus", 1, "--batch-size", 2)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rejects_path = tmp_path / "out.rejects.jsonl"
    assert counts_line(result.stderr) == f"10 read, 5 written, 5 rejected (see {rejects_path})"

    table = pq.read_table(output)
    assert table.column_names == ["id", "entities"]
    assert pa.types.is_string(table.schema.field("id").type)  # string ids, so the defaults are strings too
    rows = table.to_pylist()
    assert [row["id"] for row in rows] == ["a", "2", "8", "9", "e"]
    for row, text in zip(rows, [TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[3], TEXTS[5]]):
        assert_same_entities(row["entities"], expected(nlp, text))
    assert any(row["entities"] for row in rows)

    rejects = read_jsonl(rejects_path)
    assert [(r["line"], r.get("id")) for r in rejects] == [
        (4, "no-text"),
        (5, "number"),
        (6, None),
        (7, None),
        (10, "nan"),
    ]
    reasons = [r["reason"] for r in rejects]
    assert reasons[0] == "missing field 'text'"
    assert reasons[1] == "'text' must be a string, got number"
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "invalid UTF-8 (byte {})".format(lines[6].index(b"\xe9"))
    assert reasons[4].startswith("invalid JSON: NaN")
    assert f"{source}:5: 'text' must be a string, got number" in result.stderr
    assert leftovers(tmp_path) == []


def test_bad_model_path_is_one_line_before_ray(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": TEXTS[0]}) + "\n", encoding="utf8")
    result = cli("annotate", tmp_path / "no_such_model", source, tmp_path / "out.parquet")
    line = one_line_failure(result.returncode, result.stderr)
    model = tmp_path / "no_such_model"
    assert line == f"{model}: cannot load the pipeline: no such folder, and no installed package of that name"
    assert not (tmp_path / "out.parquet").exists()


def test_output_may_not_be_the_input(tmp_path, tiny_pipeline_dir):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": TEXTS[0]}) + "\n", encoding="utf8")
    before = source.read_bytes()
    result = cli("annotate", tiny_pipeline_dir, source, source)
    assert "the output is also an input" in one_line_failure(result.returncode, result.stderr)
    assert source.read_bytes() == before


# ---------------------------------------------------------------- in-process, on one Ray session


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray with one CPU for the in-process runs (annotate uses a
    session it finds as is); shut down after the module."""
    if ray.is_initialized():
        pytest.skip("a Ray session is already running in this process")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def run(*args):
    result = CliRunner().invoke(app, ["annotate", *map(str, args)])
    return result.exit_code, result.stderr


def test_parquet_to_jsonl_with_two_actors(tmp_path, tiny_pipeline_dir, nlp, ray_session, recwarn):
    texts = [TEXTS[i % len(TEXTS)] for i in range(23)]
    ids = [100 + i if i % 3 else None for i in range(23)]  # None: the row index
    texts[7] = None
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": texts, "id": pa.array(ids, pa.int32()), "x": list(range(23))}), source)
    output = tmp_path / "out.jsonl"
    output.write_text("an earlier output\n", encoding="utf8")
    stale = tmp_path / "out.rejects.jsonl"
    code, stderr = run(
        tiny_pipeline_dir, source, output, "--actors", 2, "--cpus-per-actor", 0.5, "--batch-size", 3, "--no-gpu"
    )
    assert code == 0, stderr
    # Ray Data warns when there are fewer blocks than actors (one would get nothing to do).
    assert not [w for w in recwarn if "won't fully utilize" in str(w.message)]
    assert counts_line(stderr) == f"23 read, 22 written, 1 rejected (see {stale})"
    rows = read_jsonl(output)
    want_ids = [i if ids[i] is None else ids[i] for i in range(23) if i != 7]
    assert [row["id"] for row in rows] == want_ids  # input order, over two actors
    assert all(list(row) == ["id", "entities"] for row in rows)
    for row, i in zip(rows, [i for i in range(23) if i != 7]):
        assert_same_entities(row["entities"], expected(nlp, texts[i]))
    assert read_jsonl(stale) == [{"row": 7, "id": 107, "reason": "'text' is null"}]

    # Run again without bad rows: the earlier rejects file, paired with the replaced output, goes.
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": TEXTS[:2]}), good)
    code, stderr = run(tiny_pipeline_dir, good, output, "--no-gpu")
    assert code == 0, stderr
    assert counts_line(stderr) == "2 read, 2 written, 0 rejected"
    assert [row["id"] for row in read_jsonl(output)] == [0, 1]
    assert not stale.exists()
    assert leftovers(tmp_path) == []


def test_the_onnx_backend_in_the_actors(tmp_path, tiny_onnx_dir, nlp, ray_session):
    """--backend onnx: each actor loads the export; the rows equal the PyTorch pipeline's entities."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS), encoding="utf8")
    output = tmp_path / "out.jsonl"
    code, stderr = run(tiny_onnx_dir, source, output, "--backend", "onnx", "--batch-size", 4)
    assert code == 0, stderr
    assert counts_line(stderr) == f"{len(TEXTS)} read, {len(TEXTS)} written, 0 rejected"
    rows = read_jsonl(output)
    assert [row["id"] for row in rows] == list(range(1, len(TEXTS) + 1))
    for row, text in zip(rows, TEXTS):
        assert [{**e, "confidence": None} for e in row["entities"]] == [
            {**e, "confidence": None} for e in expected(nlp, text)
        ]
        assert [e["confidence"] for e in row["entities"]] == pytest.approx(
            [e["confidence"] for e in expected(nlp, text)], abs=1e-4
        )
    # the mismatches fail before Ray starts, in one line
    code, stderr = run(tiny_onnx_dir, source, output, "--backend", "onnx", "--gpu")
    assert code != 0 and "the ONNX backends run on the CPU" in stderr


def test_a_pipeline_that_does_not_load_in_the_actors_is_one_line(tmp_path, tiny_pipeline_dir, ray_session):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_pipeline_dir, broken)
    model_file = broken / "ner" / "model"
    model_file.write_bytes(model_file.read_bytes()[:100])
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": TEXTS[0]}) + "\n", encoding="utf8")
    output = tmp_path / "out.parquet"
    pq.write_table(pa.table({"id": [1]}), output)
    before = output.read_bytes()
    code, stderr = run(broken, source, output)
    line = one_line_failure(code, stderr)
    assert line.startswith(f"{broken}: cannot load the pipeline: ner/model is corrupt or truncated"), line
    assert line.endswith(f"; {output} not written")
    assert output.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_empty_input_needs_no_ray(tmp_path, tiny_pipeline_dir, monkeypatch):
    monkeypatch.setattr(batch, "ray_session", None)  # would fail if called
    source = tmp_path / "in.jsonl"
    source.write_text("\n\n", encoding="utf8")
    code, stderr = run(tiny_pipeline_dir, source, tmp_path / "out.parquet")
    assert code == 0, stderr
    assert counts_line(stderr) == "0 read, 0 written, 0 rejected"
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 0


def test_without_ray_the_error_names_the_extra(tmp_path, tiny_pipeline_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": TEXTS[0]}) + "\n", encoding="utf8")
    code, stderr = run(tiny_pipeline_dir, source, tmp_path / "out.parquet")
    assert 'pip install "spacy-pos-ner[batch]"' in one_line_failure(code, stderr)


# ---------------------------------------------------------------- reading, without Ray


def test_jsonl_records(tmp_path):
    lines = [
        b"\xef\xbb\xbf" + json.dumps({"doc": 1, "body": "first"}).encode(),  # a BOM on line 1
        b"   ",
        json.dumps({"doc": "x", "body": "\ud800"}).encode(),  # an escaped lone surrogate
        b"[1, 2]",
        json.dumps({"body": None}).encode(),
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines))
    with path.open("rb") as file:
        records = list(batch.read_jsonl(file, "body", "doc"))
    assert records[0] == batch.Good(1, 1, "first")
    assert [(r.position, r.reason) for r in records[1:]] == [
        (3, "unpaired surrogate escape (\\ud800-\\udfff), not valid Unicode"),
        (4, "expected a JSON object, got array"),
        (5, "'body' must be a string, got null"),
    ]
    assert records[1].record_id == "x"


def test_parquet_columns_that_hold_no_text_fail_at_once(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"body": [1, 2]}), path)
    with pytest.raises(batch.BatchError, match="no column 'text' \\(columns: body\\); see --text-field"):
        next(batch.read_parquet(path, "text", "id"))
    with pytest.raises(batch.BatchError, match="the text column 'body' has type int64"):
        next(batch.read_parquet(path, "body", "id"))
    pq.write_table(pa.table({"text": pa.array([b"ok", b"caf\xe9", None], pa.binary())}), path)
    records = list(batch.read_parquet(path, "text", "id"))
    assert records[0] == batch.Good(0, batch.NO_ID, "ok")
    assert [(r.position, r.reason) for r in records[1:]] == [(1, "invalid UTF-8 (byte 3)"), (2, "'text' is null")]
