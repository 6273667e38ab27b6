"""Tests for `pos-ner convert` (pos_ner.io.conll) on small synthetic fixtures (plus real CoNLL-2003 when present)."""

import subprocess
import sys
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from pos_ner.cli import app
from pos_ner.io import conll as convert

ROOT = Path(__file__).parents[1]

CONLL_DIR = ROOT.parent / "shared" / "data" / "conll2003"

# (word, POS, chunk, IOB1 tag, IOB2 tag); documents -> sentences -> tokens.
DOCUMENTS = [
    [
        [
            ("Anna", "NNP", "I-NP", "I-PER", "B-PER"),
            ("Smith", "NNP", "I-NP", "I-PER", "I-PER"),
            ("visited", "VBD", "I-VP", "O", "O"),
            ("Berlin", "NNP", "I-NP", "I-LOC", "B-LOC"),
            (".", ".", "O", "O", "O"),
        ],
        [
            ("Rome", "NNP", "I-NP", "I-LOC", "B-LOC"),
            ("Paris", "NNP", "I-NP", "B-LOC", "B-LOC"),
            ("and", "CC", "O", "O", "O"),
            ("Oslo", "NNP", "I-NP", "I-LOC", "B-LOC"),
            (".", ".", "O", "O", "O"),
        ],
    ],
    [
        [
            ("Acme", "NNP", "I-NP", "I-ORG", "B-ORG"),
            ("Corp", "NNP", "I-NP", "I-ORG", "I-ORG"),
            ("opened", "VBD", "I-VP", "O", "O"),
            ("in", "IN", "I-PP", "O", "O"),
            ("Lima", "NNP", "I-NP", "I-LOC", "B-LOC"),
            (".", ".", "O", "O", "O"),
        ],
    ],
]
SENTENCE_TEXTS = [
    ["Anna Smith visited Berlin .", "Rome Paris and Oslo ."],
    ["Acme Corp opened in Lima ."],
]
ENTITIES = [
    [("Anna Smith", "PER"), ("Berlin", "LOC"), ("Rome", "LOC"), ("Paris", "LOC"), ("Oslo", "LOC")],
    [("Acme Corp", "ORG"), ("Lima", "LOC")],
]


def render(columns: str, scheme: str = "iob1", docstart: str = "-DOCSTART- -X- O O", sep=" "):
    """Render DOCUMENTS as `conll` (4 columns) or `columns` (word + tag) text."""
    out = []
    for document in DOCUMENTS:
        if docstart:
            out += [docstart, ""]
        for sentence in document:
            for word, pos, chunk, iob1, iob2 in sentence:
                tag = iob1 if scheme == "iob1" else iob2
                fields = [word, pos, chunk, tag] if columns == "conll" else [word, tag]
                out.append(sep.join(fields))
            out.append("")
    return "\n".join(out) + "\n"


def sentences_text(n: int) -> str:
    """Two-column text with n one-entity sentences `Anna_i left .` and no DOCSTART."""
    return "".join(f"Anna{i} B-PER\nleft O\n. O\n\n" for i in range(n))


def write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def convert_file(path: Path, **kwargs):
    return convert.make_docs(convert.read_documents(path, **kwargs))


def entities(doc):
    return [(ent.text, ent.label_) for ent in doc.ents]


def invoke(*args):
    return CliRunner().invoke(app, ["convert", *(str(arg) for arg in args)])


@pytest.mark.parametrize("columns", ["conll", "columns"])
@pytest.mark.parametrize("scheme", ["iob1", "iob2"])
def test_column_formats_both_schemes_give_same_entities(tmp_path, columns, scheme):
    path = write(tmp_path, "data.txt", render(columns, scheme))
    docs = convert_file(path)
    assert [[s.text for s in doc.sents] for doc in docs] == SENTENCE_TEXTS
    assert [entities(doc) for doc in docs] == ENTITIES


def test_pos_column_becomes_tag(tmp_path):
    docs = convert_file(write(tmp_path, "data.conll", render("conll")))
    assert [t.tag_ for t in docs[0]][:5] == ["NNP", "NNP", "VBD", "NNP", "."]
    assert [t.tag_ for t in docs[1]] == ["NNP", "NNP", "VBD", "IN", "NNP", "."]


def test_two_columns_tab_separated_have_no_tags(tmp_path):
    docs = convert_file(write(tmp_path, "data.tsv", render("columns", sep="\t")))
    assert [t.text for t in docs[1]] == ["Acme", "Corp", "opened", "in", "Lima", "."]
    assert all(t.tag_ == "" for doc in docs for t in doc)
    assert [entities(doc) for doc in docs] == ENTITIES


def test_doc_words_and_spaces(tmp_path):
    doc = convert_file(write(tmp_path, "data.txt", render("conll")))[0]
    assert doc.text == "Anna Smith visited Berlin . Rome Paris and Oslo ."
    assert doc[-1].whitespace_ == ""


def test_csv_format(tmp_path):
    content = (
        "Sentence #,Word,POS,Tag\n"
        "Sentence: 1,Anna,NNP,B-per\n"
        ",Smith,NNP,I-per\n"
        ",visited,VBD,O\n"
        ",Berlin,NNP,B-geo\n"
        ',",",",",O\n'
        "Sentence: 2,Rome,NNP,B-geo\n"
        ",wins,VBZ,O\n"
    )
    docs = convert_file(write(tmp_path, "ner_dataset.csv", content))
    assert len(docs) == 1
    assert [s.text for s in docs[0].sents] == ["Anna Smith visited Berlin ,", "Rome wins"]
    assert [t.tag_ for t in docs[0]] == ["NNP", "NNP", "VBD", "NNP", ",", "NNP", "VBZ"]
    assert entities(docs[0]) == [("Anna Smith", "per"), ("Berlin", "geo"), ("Rome", "geo")]


def test_csv_detected_from_header_without_extension(tmp_path):
    content = "Sentence #,Word,POS,Tag\nSentence: 1,Oslo,NNP,B-geo\n,rocks,VBZ,O\n"
    docs = convert_file(write(tmp_path, "data.txt", content))
    assert entities(docs[0]) == [("Oslo", "geo")]
    assert docs[0][0].tag_ == "NNP"


def test_bom_and_crlf_are_tolerated(tmp_path):
    content = b"\xef\xbb\xbfSentence #,Word,POS,Tag\r\nSentence: 1,Oslo,NNP,B-geo\r\n,rocks,VBZ,O\r\n"
    doc = convert_file(write(tmp_path, "data.txt", content))[0]
    assert [t.text for t in doc] == ["Oslo", "rocks"]
    assert entities(doc) == [("Oslo", "geo")]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.txt", "Anna NNP I-NP B-PER\n", "conll"),
        ("a.txt", "-DOCSTART- O\n\nAnna\tB-PER\n", "columns"),
        ("a.csv", "Sentence #,Word,POS,Tag\n", "csv"),
        ("a.txt", "\nSentence #,Word,POS,Tag\n", "csv"),
    ],
)
def test_detect_format(tmp_path, name, content, expected):
    path = write(tmp_path, name, content)
    assert convert.detect_format(path, convert.read_lines(path)) == expected


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], "iob2"),
        (["B-PER", "B-PER", "I-PER"], "iob2"),
        (["I-PER", "I-PER", "O"], "iob1"),
        (["O", "I-LOC"], "iob1"),
        (["B-PER", "I-LOC"], "iob1"),
    ],
)
def test_detect_scheme(tags, expected):
    sentence = convert.Sentence(tags=tags, lines=list(range(1, len(tags) + 1)))
    assert convert.detect_scheme([sentence]) == expected


def test_scheme_detection_on_files(tmp_path):
    for scheme in ("iob1", "iob2"):
        path = write(tmp_path, f"{scheme}.txt", render("conll", scheme))
        sentences = [s for doc in convert.read_documents(path) for s in doc]
        assert convert.detect_scheme(sentences) == scheme


def test_entities_do_not_cross_sentences(tmp_path):
    path = write(tmp_path, "data.txt", "Oslo I-LOC\n\nRome I-LOC\nis O\n")
    doc = convert_file(path)[0]
    assert entities(doc) == [("Oslo", "LOC"), ("Rome", "LOC")]


def test_iob2_accepts_iob2_file(tmp_path):
    path = write(tmp_path, "data.txt", render("conll", "iob2"))
    assert [entities(d) for d in convert_file(path, scheme="iob2")] == ENTITIES


def test_iob2_rejects_i_starting_entity_with_line(tmp_path):
    path = write(tmp_path, "data.txt", "Anna B-PER\nSmith I-PER\nvisited O\nBerlin I-LOC\n")
    with pytest.raises(convert.ConversionError, match=rf"^{path}:4: ") as excinfo:
        convert.read_documents(path, scheme="iob2")
    assert (excinfo.value.path, excinfo.value.line) == (path, 4)
    doc = convert_file(path, scheme="iob1")[0]
    assert entities(doc) == [("Anna Smith", "PER"), ("Berlin", "LOC")]


@pytest.mark.parametrize(
    "docstart",
    [
        "-DOCSTART- -X- O O",
        "-DOCSTART- -X- -X- O",
        "-DOCSTART- O",
        "-DOCSTART-",
        "-DOCSTART-\t-X-\tO\tO",
        "-DOCSTART-\t-X-\t-X-\tO",
        "-DOCSTART-\tO",
    ],
)
@pytest.mark.parametrize("columns", ["conll", "columns"])
def test_docstart_variants_split_documents(tmp_path, docstart, columns):
    path = write(tmp_path, "data.txt", render(columns, docstart=docstart))
    docs = convert_file(path)
    assert [[s.text for s in doc.sents] for doc in docs] == SENTENCE_TEXTS
    assert all(t.text != "-DOCSTART-" for doc in docs for t in doc)


def test_empty_documents_dropped_and_docstart_without_blank_lines(tmp_path):
    content = "-DOCSTART- -X- O O\n\n-DOCSTART- -X- -X- O\nAnna B-PER\nleft O\n-DOCSTART-\nOslo B-LOC\n\n-DOCSTART- O\n"
    docs = convert_file(write(tmp_path, "data.txt", content))
    assert [doc.text for doc in docs] == ["Anna left", "Oslo"]


def test_sentence_boundaries_survive_docbin_round_trip(tmp_path):
    docs = convert_file(write(tmp_path, "data.txt", render("conll")))
    data = convert.docs_to_docbin(docs).to_bytes()
    loaded = list(DocBin().from_bytes(data).get_docs(Vocab()))
    assert [[s.text for s in doc.sents] for doc in loaded] == SENTENCE_TEXTS
    assert [entities(doc) for doc in loaded] == ENTITIES
    assert loaded[1][0].tag_ == "NNP"


@pytest.mark.parametrize(("n_sents", "sizes"), [(None, [10, 10, 3]), (1, [1] * 23), (4, [4] * 5 + [3])])
def test_n_sents_groups_sentences_without_docstart(tmp_path, n_sents, sizes):
    path = write(tmp_path, "data.txt", sentences_text(23))
    docs = convert_file(path, n_sents=n_sents)
    assert [len(list(doc.sents)) for doc in docs] == sizes
    assert docs[0][0].text == "Anna0"
    assert sum(len(doc.ents) for doc in docs) == 23


@pytest.mark.parametrize(("n_sents", "sizes"), [(None, [2, 1]), (1, [1, 1, 1]), (10, [2, 1])])
def test_n_sents_with_docstart_only_splits_when_given(tmp_path, n_sents, sizes):
    docs = convert_file(write(tmp_path, "data.txt", render("conll")), n_sents=n_sents)
    assert [len(list(doc.sents)) for doc in docs] == sizes


def test_cli_writes_docbin_and_summary(tmp_path):
    path = write(tmp_path, "data.txt", render("conll"))
    output = tmp_path / "out" / "train.spacy"
    result = subprocess.run(
        [sys.executable, "-m", "pos_ner", "convert", str(path), str(output), "--format", "conll"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    counts = dict(line.split() for line in result.stdout.splitlines()[2:])
    assert counts == {
        "documents": "2",
        "sentences": "3",
        "tokens": "16",
        "entities": "7",
        "LOC": "5",
        "ORG": "1",
        "PER": "1",
    }
    assert "tag scheme: iob1" in result.stdout
    docs = list(DocBin().from_disk(output).get_docs(Vocab()))
    assert [entities(doc) for doc in docs] == ENTITIES
    assert sorted(p.name for p in output.parent.iterdir()) == ["train.spacy"]


def test_cli_error_via_subprocess(tmp_path):
    path = write(tmp_path, "data.txt", "Anna NNP I-NP B-PER\nleft VBD I-VP\n")
    output = tmp_path / "out.spacy"
    result = subprocess.run(
        [sys.executable, "-m", "pos_ner", "convert", str(path), str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"{path}:2: expected 4 columns, got 3; or pass --skip-bad-records to leave out such sentences "
        "and list them in a rejects file (project: --vars.skip_bad_records true)\n"
    )
    assert not output.exists()


BAD_INPUTS = [
    ("bad.txt", b"Anna B-PER\n\nM\xfcller B-PER\n", [], 3, "invalid UTF-8"),
    ("bad.txt", b"Anna NNP I-NP B-PER\nleft VBD I-VP O\n. . O\n", [], 3, "expected 4 columns"),
    ("bad.txt", b"Anna B-PER\nleft VBD O\n", [], 2, "expected 2 columns, got 3"),
    ("bad.txt", b"Anna B-PER\n", ["--format", "conll"], 1, "expected 4 columns, got 2"),
    ("bad.txt", b"\nAnna B-PER left\n", [], 2, "expected 2 or 4 columns, got 3"),
    ("bad.txt", b"Anna B-PER\n\nleft O\nBob X-PER\n", [], 4, "unknown tag 'X-PER'"),
    ("bad.txt", b"Anna B-\n", [], 1, "unknown tag 'B-'"),
    ("bad.txt", b"Anna O\nSmith I-\n", [], 2, "unknown tag 'I-'"),
    ("bad.txt", b"Anna NNP I-NP O\nleft VBD I-VP FOO\n", [], 2, "unknown tag 'FOO'"),
    ("bad.txt", b"", [], 1, "no tokens found"),
    ("bad.txt", b"-DOCSTART- -X- O O\n\n-DOCSTART- -X- O O\n", [], 3, "no tokens found"),
    ("bad.txt", b"Oslo B-LOC\nRome I-LOC\n\nParis I-LOC\n", ["--scheme", "iob2"], 4, "IOB2"),
    ("bad.csv", b"Sentence #,Word,POS\nSentence: 1,Oslo,NNP\n", [], 1, "missing CSV columns: Tag"),
    ("bad.csv", b"Sentence #,Word,POS,Tag\nSentence: 1,Oslo,NNP,B-geo\n,is,O\n", [], 3, "got 3"),
    ("bad.csv", b"Sentence #,Word,POS,Tag\nSentence: 1,Oslo,NNP,geo\n", [], 2, "tag 'geo'"),
    ("bad.csv", b"Sentence #,Word,POS,Tag\n", [], 1, "no tokens found"),
]


@pytest.mark.parametrize(("name", "content", "options", "line", "message"), BAD_INPUTS)
def test_bad_input_fails_with_location_and_no_output(tmp_path, name, content, options, line, message):
    path = write(tmp_path, name, content)
    output = tmp_path / "out.spacy"
    result = invoke(path, output, *options)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:{line}: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_missing_input_file(tmp_path):
    output = tmp_path / "out.spacy"
    result = invoke(tmp_path / "missing.txt", output)
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path / 'missing.txt'}: No such file or directory\n"
    assert not output.exists()


def test_failed_run_keeps_existing_output(tmp_path):
    path = write(tmp_path, "bad.txt", "Anna B-PER\nleft FOO\n")
    output = write(tmp_path, "out.spacy", b"previous")
    result = invoke(path, output)
    assert result.exit_code == 1
    assert output.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "out.spacy"]


def test_successful_run_replaces_existing_output(tmp_path):
    path = write(tmp_path, "data.txt", render("columns"))
    output = write(tmp_path, "out.spacy", b"previous")
    result = invoke(path, output, "--n-sents", "1")
    assert result.exit_code == 0, result.output
    assert len(DocBin().from_disk(output)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt", "out.spacy"]


@pytest.mark.skipif(not (CONLL_DIR / "eng.testb").exists(), reason="CoNLL-2003 data not available")
@pytest.mark.parametrize(
    ("name", "counts"),
    [("eng.testa", (216, 3250, 51362, 5942)), ("eng.testb", (231, 3453, 46435, 5648))],
)
def test_real_conll2003_counts(name, counts):
    docs = convert_file(CONLL_DIR / name)
    observed = (
        len(docs),
        sum(len(list(doc.sents)) for doc in docs),
        sum(len(doc) for doc in docs),
        sum(len(doc.ents) for doc in docs),
    )
    assert observed == counts
