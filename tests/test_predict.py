"""`pos-ner predict` (pos_ner.io.records) on the tiny trained pipeline: formats, streaming, bad records."""

import json

import pytest
import spacy
from spacy.tokens import Doc, Span
from typer.testing import CliRunner

from pos_ner.cli import app
from pos_ner.io import records as predict
from pos_ner.pipeline_component import install_extensions

TEXTS = ["Anna Berg lives in Paris .", "", "Globex opened an office in Lima .", "Tom Reed met Mia Cole ."]


@pytest.fixture(scope="module")
def nlp(tiny_pipeline_dir):
    return spacy.load(tiny_pipeline_dir)


def run(model_dir, *args, stdin=None):
    result = CliRunner().invoke(app, ["predict", str(model_dir), *map(str, args)], input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def test_doc_to_entities():
    install_extensions()
    doc = Doc(spacy.blank("en").vocab, words=["Anna", "Berg", "lives", "in", "Oslo"])
    doc.ents = [Span(doc, 0, 2, "PER"), Span(doc, 4, 5, "LOC")]
    doc.ents[0]._.confidence = 0.25
    assert predict.doc_to_entities(doc) == [
        {"start_char": 0, "end_char": 9, "text": "Anna Berg", "label": "PER", "confidence": 0.25},
        {"start_char": 19, "end_char": 23, "text": "Oslo", "label": "LOC", "confidence": None},
    ]
    assert [(e["start"], e["end"]) for e in predict.doc_to_entities(doc, with_tokens=True)] == [(0, 2), (4, 5)]


def test_text_input_keeps_line_alignment(nlp, tiny_pipeline_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf8")
    output = tmp_path / "sub" / "out.jsonl"
    result = run(tiny_pipeline_dir, source, output, "--batch-size", 3)
    assert result.exit_code == 0, result.output
    records = read_jsonl(output)
    assert [r["text"] for r in records] == TEXTS
    assert [r["line"] for r in records] == [1, 2, 3, 4]
    expected = [predict.doc_to_entities(doc) for doc in nlp.pipe(TEXTS)]
    assert [r["entities"] for r in records] == expected
    assert records[1]["entities"] == [] and any(expected)
    for record in records:
        for ent in record["entities"]:
            assert record["text"][ent["start_char"] : ent["end_char"]] == ent["text"]
            assert 0.0 <= ent["confidence"] <= 1.0
    assert result.stderr.splitlines()[-1] == "4 read, 4 written, 0 rejected"
    assert [p.name for p in output.parent.iterdir()] == ["out.jsonl"]


def test_jsonl_keeps_fields(nlp, tiny_pipeline_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": i, "text": text, "meta": {"n": i}}) for i, text in enumerate(TEXTS)]
    source.write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n", encoding="utf8")
    output = tmp_path / "out.jsonl"
    assert run(tiny_pipeline_dir, source, output).exit_code == 0
    records = read_jsonl(output)
    assert [(r["id"], r["text"], r["meta"]) for r in records] == [(i, t, {"n": i}) for i, t in enumerate(TEXTS)]
    # The blank third line is no record; the records after it keep their own line numbers.
    assert [r["line"] for r in records] == [1, 2, 4, 5]
    assert [r["entities"] for r in records] == [predict.doc_to_entities(doc) for doc in nlp.pipe(TEXTS)]


def test_tokens_input(tiny_pipeline_dir, tmp_path):
    tokens = [["Omar", "Haddad", "lives", "in", "New", "York", "."], ["Mia", "Cole", "works", "for", "Initech", "."]]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"tokens": t}) + "\n" for t in tokens), encoding="utf8")
    output = tmp_path / "out.jsonl"
    assert run(tiny_pipeline_dir, source, output).exit_code == 0
    records = read_jsonl(output)
    assert [r["tokens"] for r in records] == tokens
    assert any(r["entities"] for r in records)
    for record in records:
        for ent in record["entities"]:
            assert ent["text"] == " ".join(record["tokens"][ent["start"] : ent["end"]])
            assert " ".join(record["tokens"])[ent["start_char"] : ent["end_char"]] == ent["text"]


def test_detect_format(tmp_path):
    cases = {
        "a.txt": '{"tokens": ["a"]}\n',
        "b.jsonl": '\n{"tokens": ["a"], "id": 1}\n',
        "c.json": '{"text": "a"}\n',
        "d.jsonl": "not json\n",
    }
    for name, content in cases.items():
        (tmp_path / name).write_text(content, encoding="utf8")
    detected = {name: predict.detect_format(tmp_path / name).value for name in cases}
    assert detected == {"a.txt": "text", "b.jsonl": "tokens", "c.json": "jsonl", "d.jsonl": "jsonl"}


BAD_LINES = [
    (b'{"id": 1, "text": "Anna Berg lives in Oslo ."}', None),
    (b'{"text": 5}', "'text' must be a string, got number"),
    (b"not json", "invalid JSON"),
    (b'["a"]', "expected a JSON object, got array"),
    (b'{"id": 2}', "missing field 'text'"),
    (b'{"text": "\\ud800"}', "unpaired surrogate"),
    (b'{"text": "caf\xe9"}', "invalid UTF-8"),
    (b"[" * 5000, "invalid JSON"),
    (b'{"id": 3, "text": "Tom Reed works for Acme Corp ."}', None),
]


def test_bad_records_are_reported_and_skipped(tiny_pipeline_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(line for line, _ in BAD_LINES) + b"\n")
    output = tmp_path / "out.jsonl"
    result = run(tiny_pipeline_dir, source, output)
    assert result.exit_code == 0
    assert [r["id"] for r in read_jsonl(output)] == [1, 3]
    reports = [line for line in result.stderr.splitlines() if line.startswith(f"{source}:")]
    expected = [(n, reason) for n, (_, reason) in enumerate(BAD_LINES, 1) if reason]
    assert len(reports) == len(expected)
    for report, (line_no, reason) in zip(reports, expected):
        assert report.startswith(f"{source}:{line_no}: ") and reason in report
    assert result.stderr.splitlines()[-1] == f"9 read, 2 written, 7 rejected (see {tmp_path / 'out.rejects.jsonl'})"
    rejects = read_jsonl(tmp_path / "out.rejects.jsonl")
    assert [r["line"] for r in rejects] == [n for n, _ in expected]
    assert all(reason in r["reason"] for r, (_, reason) in zip(rejects, expected))


def test_bad_tokens(tiny_pipeline_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"tokens": ["Oslo"]}\n{"tokens": "Oslo"}\n{"tokens": ["a", ""]}\n{"tokens": [1]}\n{"text": "x"}\n'
    )
    output = tmp_path / "out.jsonl"
    result = run(tiny_pipeline_dir, source, output, "--format", "tokens")
    assert result.exit_code == 0
    assert [r["tokens"] for r in read_jsonl(output)] == [["Oslo"]]
    for line_no in (2, 3, 4):
        assert f"{source}:{line_no}: 'tokens' must be an array of non-empty strings" in result.stderr
    assert f"{source}:5: missing field 'tokens'" in result.stderr


def test_on_error_fail_leaves_no_output(tiny_pipeline_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(line for line, _ in BAD_LINES[:3]) + b"\n")
    output = tmp_path / "out" / "result.jsonl"
    result = run(tiny_pipeline_dir, source, output, "--on-error", "fail")
    assert result.exit_code == 1
    assert f"{source}:2: 'text' must be a string" in result.stderr
    assert f"{source}:3:" not in result.stderr
    assert list(output.parent.iterdir()) == []


def test_stdin_to_stdout(nlp, tiny_pipeline_dir):
    result = run(tiny_pipeline_dir, "-", "-", stdin="\n".join(TEXTS[:2]) + "\n")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records == [
        {"line": i, "text": t, "entities": predict.doc_to_entities(nlp(t))} for i, t in enumerate(TEXTS[:2], 1)
    ]
    assert result.stderr.splitlines()[-1] == "2 read, 2 written, 0 rejected"


def test_reading_is_lazy():
    def endless():
        while True:
            yield b'{"text": "Oslo"}\n'

    records = predict.read_records(endless(), predict.Format.jsonl, 1000, lambda *_: None)
    assert [next(records) for _ in range(3)] == [({"text": "Oslo"}, n, 17 * n) for n in (1, 2, 3)]


def test_missing_input(tiny_pipeline_dir, tmp_path):
    result = run(tiny_pipeline_dir, tmp_path / "nope.txt", tmp_path / "out.jsonl")
    assert result.exit_code == 2 and "no such file" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
