"""`read_docs` (pos_ner.io.formats): format detection, the hardened CoNLL/CSV checks, and
`pos-ner convert` on every format through subprocesses."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from pos_ner.cli import app
from pos_ner.io.conll import ConversionError, summarize
from pos_ner.io.formats import InputFormat, detect_format, read_docs

from test_convert import write

ROOT = Path(__file__).parents[1]

CONLL = "-DOCSTART- -X- O O\n\nAnna NNP B-NP B-PER\nleft VBD B-VP O\n\nOslo NNP B-NP B-LOC\nwins VBZ B-VP O\n"
JSONL_RECORD = {"text": "Anna left Oslo.", "spans": [{"start": 0, "end": 4, "label": "PER"}]}
LS_TASKS = [{"id": 1, "data": {"text": "Anna left Oslo."}, "annotations": [{"result": []}]}]


def entities(doc):
    return [(ent.text, ent.label_) for ent in doc.ents]


def run_convert(*args):
    return subprocess.run(
        [sys.executable, "-m", "pos_ner", "convert", *(str(arg) for arg in args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def invoke(*args):
    """In-process `pos-ner convert` for the cheaper error cases (subprocesses cover the main ones)."""
    return CliRunner().invoke(app, ["convert", *(str(arg) for arg in args)])


def test_input_format_lists_every_reader():
    assert [f.value for f in InputFormat] == ["auto", "conll", "columns", "csv", "jsonl", "labelstudio"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.jsonl", json.dumps(JSONL_RECORD) + "\n", "jsonl"),
        ("a.ndjson", json.dumps(JSONL_RECORD) + "\n", "jsonl"),
        ("a.json", json.dumps(LS_TASKS, indent=2), "labelstudio"),
        ("a.json", json.dumps(JSONL_RECORD) + "\n" + json.dumps(JSONL_RECORD) + "\n", "jsonl"),
        ("a.txt", "\n" + json.dumps(JSONL_RECORD) + "\n", "jsonl"),
        ("a.txt", json.dumps(LS_TASKS), "labelstudio"),
        ("a.txt", "[\n" + json.dumps(LS_TASKS[0]) + "\n]", "labelstudio"),
        ("a.txt", "[ ( O O\n{ ( O O\n", "conll"),
        ("a.txt", "{ O\n", "columns"),
        ("a.txt", CONLL, "conll"),
        ("a.csv", "Sentence #,Word,POS,Tag\n", "csv"),
    ],
)
def test_detect_format(tmp_path, name, content, expected):
    path = write(tmp_path, name, content)
    assert detect_format(path, path.read_text("utf-8")) == expected


def test_conll_through_read_docs(tmp_path):
    docs, description = read_docs(write(tmp_path, "train.conll", CONLL))
    assert description == "format: conll, tag scheme: iob2"
    assert [entities(doc) for doc in docs] == [[("Anna", "PER"), ("Oslo", "LOC")]]
    assert all(doc.has_annotation("SENT_START") for doc in docs)
    assert [s.text for s in docs[0].sents] == ["Anna left", "Oslo wins"]
    report = summarize(docs, description).splitlines()
    assert report[0] == description
    assert dict(line.split() for line in report[1:]) == {
        "documents": "1",
        "sentences": "2",
        "tokens": "4",
        "entities": "2",
        "LOC": "1",
        "PER": "1",
    }


def test_docs_of_one_call_share_a_vocab(tmp_path):
    docs, _ = read_docs(write(tmp_path, "a.txt", "Anna B-PER\n\n" * 12))
    assert len(docs) == 2 and docs[0].vocab is docs[1].vocab


BAD_CONLL = [
    ("a.txt", "Anna B-PER\nOs\u200blo B-LOC\n", 2, "U+200B ZERO WIDTH SPACE at column 3"),
    ("a.txt", "Anna B-PER\nOslo\ufeff B-LOC\n", 2, "U+FEFF"),
    ("a.txt", "\ufeffAnna B-PER\n\ufeffOslo B-LOC\n", 2, "U+FEFF"),
    ("a.txt", "Anna B-PER\nOs\x00lo B-LOC\n", 2, "U+0000"),
    ("a.txt", "Anna B-PER\nOslo B-LOC\x0b\n", 2, "U+000B"),
    ("a.txt", "Anna B-PER\rOslo B-LOC\n", 1, "U+000D"),
    (
        "a.txt",
        "Anna B-PER\nOslo B-L\u200dOC\n",
        2,
        r"tag 'B-L\u200dOC': label 'L\u200dOC' holds U+200D ZERO WIDTH JOINER",
    ),
    ("a.txt", "Anna B-PER\n\u00a0 O\n", 2, "token made only of invisible characters (U+00A0 NO-BREAK SPACE)"),
    ("a.txt", "Anna B-PER\n\u3000 O\n", 2, "invisible characters"),
    ("a.txt", "Anna B-PER\nOslo\u00a0B-LOC\n", 2, "the line holds U+00A0 NO-BREAK SPACE"),
    ("a.txt", "Anna\u2028B-PER\n", 1, "U+2028"),
    ("a.txt", b"Anna B-PER\nM\xfcller B-PER\n", 2, "invalid UTF-8 (invalid start byte at byte column 2)"),
    ("a.txt", "Anna B-PER\n".encode("utf-16"), 1, "UTF-16"),
    ("a.csv", 'Sentence #,Word,POS,Tag\nSentence: 1,"New\nYork",NNP,B-geo\n,is,VBZ,O\n', 2, "spans lines 2-3"),
    ("a.csv", 'Sentence #,Word,POS,Tag\nSentence: 1,"Oslo"x,NNP,B-geo\n', 2, "bad CSV"),
    ("a.csv", 'Sentence #,Word,POS,Tag\nSentence: 1,Oslo,NNP,B-geo\n,"is,VBZ,O\n', 3, "bad CSV"),
    ("a.csv", "Sentence #,Word,POS,Tag\nSentence: 1,O\u200bslo,NNP,B-geo\n", 2, "U+200B"),
    ("a.csv", "Sentence #,Word,POS,Tag\nSentence: 1,\u00a0,NNP,O\n", 2, "invisible characters"),
    ("a.csv", "Sentence #,Word,POS,Tag\nSentence: 1,Oslo,NNP,B-g\u200beo\n", 2, "U+200B"),
]


@pytest.mark.parametrize(("name", "content", "line", "message"), BAD_CONLL)
def test_bad_conll_and_csv_name_the_line(tmp_path, name, content, line, message):
    path = write(tmp_path, name, content)
    with pytest.raises(ConversionError) as excinfo:
        read_docs(path)
    text = str(excinfo.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text
    assert "\n" not in text


def test_csv_cell_over_the_field_size_limit(tmp_path):
    big = "x" * (csv.field_size_limit() + 1)
    path = write(tmp_path, "a.csv", f"Sentence #,Word,POS,Tag\nSentence: 1,Oslo,NNP,B-geo\n,{big},NN,O\n")
    with pytest.raises(ConversionError, match=rf"^{path}:3: bad CSV \(field larger than field limit"):
        read_docs(path)


def test_visible_format_characters_inside_tokens_are_kept(tmp_path):
    # ZWNJ is part of Persian spelling; it must survive, not be refused or stripped.
    word = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    (doc,), _ = read_docs(write(tmp_path, "a.txt", f"{word} B-PER\n"))
    assert entities(doc) == [(word, "PER")]


def test_cli_converts_jsonl_and_reports_skips(tmp_path):
    records = [JSONL_RECORD, {"text": "x", "spans": [], "answer": "reject"}]
    path = write(tmp_path, "data.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    output = tmp_path / "out.spacy"
    result = run_convert(path, output)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "format: jsonl, 2 records: 1 read, skipped 1 answer=reject"
    docs = list(DocBin().from_disk(output).get_docs(Vocab()))
    assert [entities(doc) for doc in docs] == [[("Anna", "PER")]]
    assert docs[0].has_annotation("SENT_START")


def test_cli_converts_labelstudio_with_text_field(tmp_path):
    tasks = [{"id": 4, "data": {"a": "Oslo", "b": "x"}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 0, "end": 4, "text": "Oslo", "labels": ["LOC"]}}
    ]}]}]  # fmt: skip
    path = write(tmp_path, "export.json", json.dumps(tasks))
    output = tmp_path / "out.spacy"
    result = run_convert(path, output, "--text-field", "a")
    assert result.returncode == 0, result.stderr
    docs = list(DocBin().from_disk(output).get_docs(Vocab()))
    assert [entities(doc) for doc in docs] == [[("Oslo", "LOC")]]


def test_cli_span_error_via_subprocess(tmp_path):
    content = '{"text": "New York", "id": 3, "spans": [{"start": 0, "end": 6, "label": "LOC"}]}\n'
    path = write(tmp_path, "data.jsonl", content)
    output = tmp_path / "out.spacy"
    result = run_convert(path, output)
    assert result.returncode == 1
    assert result.stderr == (
        f"{path}:1: record id=3: span 0-6 'New Yo' (LOC) does not fall on token boundaries "
        "(tokens there: ['New', 'York']); fix the offsets or give the record 'tokens'; or pass --skip-bad-records "
        "to leave out such records and list them in a rejects file (project: --vars.skip_bad_records true)\n"
    )
    assert not output.exists()


@pytest.mark.parametrize(
    ("name", "content", "options", "expected"),
    [
        ("data.jsonl", '{"text": "a", "spans": [], "x": NaN}\n', [], "{path}:1: invalid JSON (NaN is not valid JSON)"),
        ("data.jsonl", json.dumps(JSONL_RECORD), ["--n-sents", "2"], "--scheme and --n-sents apply to CoNLL"),
        ("data.txt", CONLL, ["--text-field", "x"], "--text-field applies to JSONL and Label Studio"),
        ("data.txt", CONLL, ["--lang", "zz"], "--lang 'zz': spaCy has no such language code"),
        ("data.txt", "Anna B-PER\nOs\u200blo O\n", [], "{path}:2: U+200B ZERO WIDTH SPACE at column 3"),
    ],
)
def test_cli_failures_are_one_line(tmp_path, name, content, options, expected):
    path = write(tmp_path, name, content)
    output = tmp_path / "out.spacy"
    result = invoke(path, output, *options)
    assert result.exit_code == 1
    assert result.stderr.startswith(expected.format(path=path)), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not output.exists()


def test_cli_refuses_to_overwrite_its_input(tmp_path):
    path = write(tmp_path, "data.spacy", CONLL)
    result = run_convert(path, tmp_path / "." / "data.spacy")
    assert result.returncode == 1
    assert "the output is also an input" in result.stderr
    assert result.stderr.count("\n") == 1
    assert path.read_text("utf-8") == CONLL


def test_cli_output_that_is_a_folder(tmp_path):
    path = write(tmp_path, "data.txt", CONLL)
    (tmp_path / "out").mkdir()
    result = invoke(path, tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path / 'out'}: is a folder, expected a file path\n"
