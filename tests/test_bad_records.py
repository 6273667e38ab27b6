"""`--normalize` and `--skip-bad-records` of `pos-ner convert` and `pos-ner corpus`, on
synthetic files shaped like the real failures: a CoNLL token holding U+200B ZERO WIDTH
SPACE (as in WNUT-17), a two-column line with an empty token (as in the Broad Twitter
Corpus), and bad JSONL records. Refusing stays the default; each option says what it did."""

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from pos_ner.cli import app
from pos_ner.io.conll import BadDataOptions, ConversionError, ReadReport
from pos_ner.io.formats import read_docs

from test_convert import write

ROOT = Path(__file__).parents[1]
NORMALIZE_HINT = "; or pass --normalize to remove such characters (project: --vars.normalize true)"
SKIP_HINT = (
    "; or pass --skip-bad-records to leave out such {unit}s and list them in a rejects file "
    "(project: --vars.skip_bad_records true)"
)

# Line 7 holds `Os<U+200B>lo`; the third sentence (lines 9-11) is good.
CONLL = (
    "-DOCSTART- -X- -X- O\n"  # 1
    "\n"  # 2
    "Anna NNP B-NP B-PER\n"  # 3
    "left VBD B-VP O\n"  # 4
    "\n"  # 5
    "Flights NNS B-NP O\n"  # 6
    "Os\u200blo NNP B-NP B-LOC\n"  # 7
    "\n"  # 8
    "Rome NNP B-NP B-LOC\n"  # 9
    "and CC O O\n"  # 10
    "Lima NNP B-NP B-LOC\n"  # 11
)
# Line 6 has an empty token (a tab, then the tag): its sentence holds a LOC and an ORG.
COLUMNS = (
    "Anna\tB-PER\n"  # 1
    "left\tO\n"  # 2
    "\n"  # 3
    "Paris\tB-LOC\n"  # 4
    "and\tO\n"  # 5
    "\tO\n"  # 6
    "Acme\tB-ORG\n"  # 7
    "\n"  # 8
    "Lima\tB-LOC\n"  # 9
)
JSONL_RECORDS = [
    {"id": 1, "text": "Anna left Oslo.", "spans": [{"start": 0, "end": 4, "label": "PER"}]},
    # a zero-width space before the entity: --normalize moves its offsets
    {"id": 2, "text": "Vi\u200bsit Lima now.", "spans": [{"start": 7, "end": 11, "label": "LOC", "text": "Lima"}]},
    None,  # line 3: invalid JSON
    {"id": 4, "text": "New York", "spans": [{"start": 0, "end": 6, "label": "LOC"}]},  # off the token boundaries
    {"id": 5, "text": "Tom met Mia.", "spans": [{"start": 0, "end": 3, "label": "PER"}]},
]
BAD_JSON_LINE = '{"id": 3, "text": "Acme Corp", "spans": [{"start": 0, "end": 4, "label": "ORG"}\n'


def jsonl_text() -> str:
    return "".join(BAD_JSON_LINE if r is None else json.dumps(r, ensure_ascii=False) + "\n" for r in JSONL_RECORDS)


def invoke(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def docs_entities(path: Path):
    return [[(ent.text, ent.label_) for ent in doc.ents] for doc in DocBin().from_disk(path).get_docs(Vocab())]


def sentence_entities(path: Path):
    """The entities of each sentence of each doc in a DocBin."""
    return [
        [(ent.text, ent.label_) for ent in sent.ents]
        for doc in DocBin().from_disk(path).get_docs(Vocab())
        for sent in doc.sents
    ]


# -- the invisible character in a CoNLL token -------------------------------------------


def test_default_refuses_the_invisible_character_with_its_line_and_the_option(tmp_path):
    path = write(tmp_path, "train.conll", CONLL)
    result = invoke("convert", path, tmp_path / "out.spacy")
    assert result.exit_code == 1
    assert result.stderr == (
        f"{path}:7: U+200B ZERO WIDTH SPACE at column 3; remove it or replace it by a space{NORMALIZE_HINT}\n"
    )
    assert not (tmp_path / "out.spacy").exists()


def test_normalize_removes_it_and_says_what_where(tmp_path):
    path = write(tmp_path, "train.conll", CONLL)
    output = tmp_path / "out.spacy"
    result = subprocess.run(
        [sys.executable, "-m", "pos_ner", "convert", str(path), str(output), "--normalize"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "--normalize: changed 1 character on 1 line (7): removed 1 U+200B ZERO WIDTH SPACE" in result.stdout
    assert sentence_entities(output) == [[("Anna", "PER")], [("Oslo", "LOC")], [("Rome", "LOC"), ("Lima", "LOC")]]
    assert not (tmp_path / "out.rejects.txt").exists()


def test_normalize_counts_each_kind_and_names_the_first_lines(tmp_path):
    lines = [f"w{i}\u200b O" for i in range(1, 8)] + ["x\u00ad\u00ady O", "Oslo\u2028B-LOC"]
    path = write(tmp_path, "a.txt", "\n".join(lines) + "\n")
    result = invoke("convert", path, tmp_path / "out.spacy", "--normalize")
    assert result.exit_code == 0, result.stderr
    assert (
        "--normalize: changed 10 characters on 9 lines (1, 2, 3, 4, 5 and 4 more): "
        "removed 7 U+200B ZERO WIDTH SPACE, 2 U+00AD SOFT HYPHEN; replaced 1 U+2028 LINE SEPARATOR by a space"
    ) in result.stdout
    assert sentence_entities(tmp_path / "out.spacy") == [[("Oslo", "LOC")]]
    words = [t.text for doc in DocBin().from_disk(tmp_path / "out.spacy").get_docs(Vocab()) for t in doc]
    assert words == [f"w{i}" for i in range(1, 8)] + ["xy", "Oslo"]


def test_skip_bad_records_alone_rejects_the_sentence_of_the_character(tmp_path):
    path = write(tmp_path, "train.conll", CONLL)
    output = tmp_path / "out.spacy"
    result = invoke("convert", path, output, "--skip-bad-records")
    assert result.exit_code == 0, result.stderr
    rejects = tmp_path / "out.rejects.txt"
    assert rejects.read_text("utf-8") == (
        f"{path}:7: U+200B ZERO WIDTH SPACE at column 3; remove it or replace it by a space\n"
    )
    assert "--skip-bad-records: 3 sentences read, 2 kept, 1 rejected, holding 1 entity (1 LOC)" in result.stdout
    assert f"Wrote 1 rejected sentence to {rejects}" in result.stdout
    assert sentence_entities(output) == [[("Anna", "PER")], [("Rome", "LOC"), ("Lima", "LOC")]]


def test_a_token_that_normalizing_empties_is_a_bad_record(tmp_path):
    path = write(tmp_path, "a.txt", "Anna B-PER\n\u200b O\n\nLima B-LOC\n")
    result = invoke("convert", path, tmp_path / "out.spacy", "--normalize")
    assert result.exit_code == 1
    assert result.stderr == (
        f"{path}:2: expected 2 columns, got 1 (--normalize removed 1 U+200B ZERO WIDTH SPACE on this line)"
        f"{SKIP_HINT.format(unit='sentence')}\n"
    )
    result = invoke("convert", path, tmp_path / "out.spacy", "--normalize", "--skip-bad-records")
    assert result.exit_code == 0, result.stderr
    assert "1 rejected, holding 1 entity (1 PER)" in result.stdout
    assert sentence_entities(tmp_path / "out.spacy") == [[("Lima", "LOC")]]


# -- the empty token of a two-column file ------------------------------------------------


def test_default_and_normalize_refuse_the_empty_token_and_name_skip_bad_records(tmp_path):
    path = write(tmp_path, "btc.txt", COLUMNS)
    for options in ([], ["--normalize"]):
        result = invoke("convert", path, tmp_path / "out.spacy", *options)
        assert result.exit_code == 1
        assert result.stderr == f"{path}:6: expected 2 columns, got 1{SKIP_HINT.format(unit='sentence')}\n"
        assert not (tmp_path / "out.spacy").exists()


def test_skip_bad_records_writes_the_rejects_and_counts_the_lost_entities(tmp_path):
    path = write(tmp_path, "btc.txt", COLUMNS)
    output = tmp_path / "out.spacy"
    rejects = tmp_path / "lost" / "btc-rejects.txt"
    result = subprocess.run(
        [sys.executable, "-m", "pos_ner", "convert", str(path), str(output), "--skip-bad-records"]
        + ["--rejects", str(rejects)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert rejects.read_text("utf-8") == f"{path}:6: expected 2 columns, got 1\n"
    assert (
        "--skip-bad-records: 3 sentences read, 2 kept, 1 rejected, holding 2 entities (1 LOC, 1 ORG)" in result.stdout
    )
    assert sentence_entities(output) == [[("Anna", "PER")], [("Lima", "LOC")]]
    assert not (tmp_path / "out.rejects.txt").exists()


def test_everything_rejected_fails(tmp_path):
    path = write(tmp_path, "a.txt", "\tO\nAnna B-PER\n\nleft VBD O\n")
    result = invoke("convert", path, tmp_path / "out.spacy", "--skip-bad-records")
    assert result.exit_code == 1
    assert result.stderr == (
        f"{path}:1: --skip-bad-records rejected every sentence (2 of 2), so nothing is left to convert; "
        "the first: expected 2 columns, got 1\n"
    )
    assert not (tmp_path / "out.spacy").exists() and not (tmp_path / "out.rejects.txt").exists()


def test_csv_rejects_the_sentence_of_a_bad_row(tmp_path):
    content = (
        "Sentence #,Word,POS,Tag\n"
        "Sentence: 1,Anna,NNP,B-per\n"
        ",left,VBD,O\n"
        "Sentence: 2,Oslo,NNP,B-geo\n"
        ",is,VBZ\n"  # line 5: a column short
        "Sentence: 3,Lima,NNP,B-geo\n"
    )
    path = write(tmp_path, "a.csv", content)
    result = invoke("convert", path, tmp_path / "out.spacy", "--skip-bad-records")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out.rejects.txt").read_text("utf-8") == f"{path}:5: expected 4 columns, got 3\n"
    assert "3 sentences read, 2 kept, 1 rejected, holding 1 entity (1 geo)" in result.stdout
    assert sentence_entities(tmp_path / "out.spacy") == [[("Anna", "per")], [("Lima", "geo")]]


# -- JSONL and Label Studio records --------------------------------------------------------


def test_jsonl_default_refuses_the_character_then_normalize_the_invalid_json(tmp_path):
    path = write(tmp_path, "data.jsonl", jsonl_text())
    result = invoke("convert", path, tmp_path / "out.spacy")
    assert result.exit_code == 1
    assert result.stderr == (
        f"{path}:2: record id=2: the text holds U+200B ZERO WIDTH SPACE at character 2{NORMALIZE_HINT}\n"
    )
    result = invoke("convert", path, tmp_path / "out.spacy", "--normalize")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:3: invalid JSON (Expecting ',' delimiter")
    assert result.stderr.endswith(f"{SKIP_HINT.format(unit='record')}\n")


def test_jsonl_both_options_normalize_first_then_skip(tmp_path):
    path = write(tmp_path, "data.jsonl", jsonl_text())
    output = tmp_path / "out.spacy"
    result = invoke("convert", path, output, "--normalize", "--skip-bad-records")
    assert result.exit_code == 0, result.stderr
    assert "--normalize: changed 1 character on 1 line (2): removed 1 U+200B ZERO WIDTH SPACE" in result.stdout
    assert (
        "--skip-bad-records: 5 records read, 3 kept, 2 rejected, holding 1 entity (1 LOC) "
        "(and those of 1 unreadable record, not counted)"
    ) in result.stdout
    lines = (tmp_path / "out.rejects.txt").read_text("utf-8").splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{path}:3", f"{path}:4"]
    assert lines[1].startswith(f"{path}:4: record id=4: span 0-6 'New Yo' (LOC) does not fall on token boundaries")
    assert docs_entities(output) == [[("Anna", "PER")], [("Lima", "LOC")], [("Tom", "PER")]]
    assert [doc.text for doc in DocBin().from_disk(output).get_docs(Vocab())][1] == "Visit Lima now."


def test_jsonl_entity_of_only_invisible_characters_is_a_bad_record(tmp_path):
    record = {"text": "Oslo \u200b", "spans": [{"start": 5, "end": 6, "label": "LOC"}]}
    path = write(tmp_path, "data.jsonl", json.dumps(record) + "\n" + json.dumps(JSONL_RECORDS[0]) + "\n")
    result = invoke("convert", path, tmp_path / "out.spacy", "--normalize", "--skip-bad-records")
    assert result.exit_code == 0, result.stderr
    [reject] = (tmp_path / "out.rejects.txt").read_text("utf-8").splitlines()
    assert reject.startswith(f"{path}:1: record: span 5-5 (LOC) lies outside the text (length 5) or is empty")
    assert reject.endswith("(--normalize removed 1 U+200B ZERO WIDTH SPACE on this line)")
    assert docs_entities(tmp_path / "out.spacy") == [[("Anna", "PER")]]


def test_labelstudio_task_is_rejected_alone(tmp_path):
    def task(ident, text, start, end, label):
        value = {"start": start, "end": end, "text": text[start:end], "labels": [label]}
        return {"id": ident, "data": {"text": text}, "annotations": [{"result": [{"type": "labels", "value": value}]}]}

    tasks = [task(1, "Anna left", 0, 4, "PER"), task(2, "Oslo", 0, 3, "LOC"), task(3, "Lima", 0, 4, "LOC")]
    path = write(tmp_path, "export.json", json.dumps(tasks, indent=1))
    result = invoke("convert", path, tmp_path / "out.spacy", "--skip-bad-records")
    assert result.exit_code == 0, result.stderr
    [reject] = (tmp_path / "out.rejects.txt").read_text("utf-8").splitlines()
    assert reject.startswith(f"{path}:") and ": task id=2: span 0-3 'Osl' (LOC) does not fall" in reject
    assert "3 tasks read, 2 kept, 1 rejected, holding 1 entity (1 LOC)" in result.stdout
    assert docs_entities(tmp_path / "out.spacy") == [[("Anna", "PER")], [("Lima", "LOC")]]


# -- options ---------------------------------------------------------------------------------


def test_flags_take_true_or_false_for_project_variables(tmp_path):
    path = write(tmp_path, "train.conll", CONLL)
    result = invoke("convert", path, tmp_path / "out.spacy", "--normalize=false", "--skip-bad-records=true")
    assert result.exit_code == 0, result.stderr
    assert "--normalize" not in result.stdout and "1 rejected" in result.stdout
    result = invoke("convert", path, tmp_path / "out.spacy", "--normalize=maybe")
    assert result.exit_code == 2
    result = invoke("convert", path, tmp_path / "out.spacy", "--rejects", tmp_path / "r.txt")
    assert result.exit_code == 1
    assert "--rejects names the rejects file of --skip-bad-records" in result.stderr


def test_rejects_may_not_overwrite_the_input(tmp_path):
    path = write(tmp_path, "train.conll", CONLL)
    result = invoke("convert", path, tmp_path / "out.spacy", "--skip-bad-records", "--rejects", path)
    assert result.exit_code == 1
    assert "the output is also an input" in result.stderr
    assert path.read_text("utf-8") == CONLL


def test_corpus_applies_both_options_to_every_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write(data, "train.conll", CONLL)
    write(data, "dev.txt", COLUMNS)
    write(data, "test.jsonl", jsonl_text())
    args = ["corpus", data, tmp_path / "corpus", "--train", "train.conll", "--dev", "dev.txt", "--test", "test.jsonl"]
    result = invoke(*args)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{data / 'train.conll'}:7: U+200B") and result.stderr.endswith(
        f"{NORMALIZE_HINT}\n"
    )
    result = invoke(*args, "--normalize", "--skip-bad-records")
    assert result.exit_code == 0, result.stderr
    rejects = (tmp_path / "corpus" / "rejects.txt").read_text("utf-8").splitlines()
    assert [line.split(": ")[0] for line in rejects] == [
        f"{data / 'dev.txt'}:6",
        f"{data}/test.jsonl:3",
        f"{data}/test.jsonl:4",
    ]
    assert "--skip-bad-records: 3 sentences read, 3 kept, 0 rejected" in result.stdout
    assert (
        "--skip-bad-records: 3 sentences read, 2 kept, 1 rejected, holding 2 entities (1 LOC, 1 ORG)" in result.stdout
    )
    assert "--skip-bad-records: 5 records read, 3 kept, 2 rejected" in result.stdout
    assert "Wrote 3 rejected records and sentences to" in result.stdout
    assert sentence_entities(tmp_path / "corpus" / "train.spacy") == [
        [("Anna", "PER")],
        [("Oslo", "LOC")],
        [("Rome", "LOC"), ("Lima", "LOC")],
    ]
    assert sentence_entities(tmp_path / "corpus" / "dev.spacy") == [[("Anna", "PER")], [("Lima", "LOC")]]
    assert docs_entities(tmp_path / "corpus" / "test.spacy") == [[("Anna", "PER")], [("Lima", "LOC")], [("Tom", "PER")]]


def test_the_project_convert_step_passes_the_variables(tmp_path):
    """project.yml's `convert` script, with both variables set, runs and lets the bad data through."""
    from weasel.util.config import load_project_config

    data = tmp_path / "data"
    data.mkdir()
    write(data, "train.conll", CONLL)
    write(data, "dev.txt", COLUMNS)
    write(data, "test.txt", COLUMNS)
    overrides = {
        "vars.data_dir": str(data),
        "vars.train": "train.conll",
        "vars.dev": "dev.txt",
        "vars.test": "test.txt",
    }
    default = load_project_config(ROOT, overrides=overrides)
    [script] = next(c for c in default["commands"] if c["name"] == "convert")["script"]
    assert "--normalize=false --skip-bad-records=false" in script
    overrides.update({"vars.normalize": True, "vars.skip_bad_records": True})
    config = load_project_config(ROOT, overrides=overrides)
    [script] = next(c for c in config["commands"] if c["name"] == "convert")["script"]
    assert "--normalize=true --skip-bad-records=true" in script
    result = subprocess.run(shlex.split(script), cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--normalize: changed 1 character on 1 line (7)" in result.stdout
    rejects = (tmp_path / "corpus" / "rejects.txt").read_text("utf-8").splitlines()
    assert rejects == [f"{data}/dev.txt:6: expected 2 columns, got 1", f"{data}/test.txt:6: expected 2 columns, got 1"]


# -- any input -------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)
# Good lines of a two-column file and of a CSV file, and pieces of bad ones (as in test_convert_fuzz.py).
GOOD = {
    "a.txt": st.sampled_from(["Anna B-PER", "Oslo\tI-LOC", "left O", "Lima B-LOC", "", "", "-DOCSTART- O"]),
    "a.csv": st.sampled_from(["Sentence: 1,Anna,NNP,B-per", ",left,VBD,O", "Sentence: 2,Oslo,NNP,B-geo", ""]),
}
PIECES = st.sampled_from(
    ["Anna", "B-PER", "I-LOC", "O", "B-", "-DOCSTART-", "NNP", ",", '"', "",
     "\u200b", "\ufeff", "\x00", "\u00a0", "\u00ad", "\r", "\x0b", "\u200d", "\u2028", "é"]
)  # fmt: skip
BAD = st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=5).flatmap(
    lambda parts: st.sampled_from([" ", "\t", ","]).map(lambda sep: sep.join(parts))
)


def any_file(name: str):
    lines = st.lists(st.one_of(GOOD[name], GOOD[name], BAD), min_size=1, max_size=14)
    header = ["Sentence #,Word,POS,Tag"] if name == "a.csv" else []
    return lines.map(lambda lines: header + lines)


@FUZZ
@given(
    data=st.sampled_from(["a.txt", "a.csv"]).flatmap(lambda name: st.tuples(st.just(name), any_file(name))),
    normalize=st.booleans(),
)
def test_fuzz_skip_bad_records_accounts_for_every_sentence(data, normalize):
    """With --skip-bad-records, any column or CSV input gives Docs or a located error;
    every sentence read is kept or rejected, and each rejection is `path:line: reason`."""
    name, lines = data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text("\n".join(lines), encoding="utf-8")
        report = ReadReport(BadDataOptions(normalize=normalize, skip_bad_records=True))
        try:
            docs, _ = read_docs(path, report=report)
        except ConversionError as error:
            assert str(error).startswith(f"{path}:") and "\n" not in str(error)
            return
        n_sentences = sum(len(list(doc.sents)) for doc in docs)
        assert n_sentences == report.read - len(report.rejections) > 0
        for line in report.rejection_lines():
            assert line.startswith(f"{path}:") and line.split(":")[1].isdigit() and "\n" not in line
