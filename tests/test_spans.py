"""Span JSONL (Prodigy/spaCy) and Label Studio readers (pos_ner.io.spans through read_docs)."""

import json
from pathlib import Path

import pytest

from pos_ner.io.conll import ConversionError
from pos_ner.io.formats import OptionError, read_docs

TEXT = "Anna Smith visited New York. Acme Corp hired her."
SPANS = [
    {"start": 0, "end": 10, "label": "PER"},
    {"start": 19, "end": 27, "label": "LOC"},
    {"start": 29, "end": 38, "label": "ORG"},
]
ENTITIES = [("Anna Smith", "PER"), ("New York", "LOC"), ("Acme Corp", "ORG")]


def write_jsonl(tmp_path: Path, records, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" if not isinstance(r, str) else r + "\n" for r in records), "utf-8")
    return path


def write_json(tmp_path: Path, tasks, name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tasks, indent=2), "utf-8")
    return path


def entities(doc):
    return [(ent.text, ent.label_) for ent in doc.ents]


def tokens_of(text: str, words):
    """Prodigy-style tokens for `words` found in order in `text`."""
    tokens, position = [], 0
    for i, word in enumerate(words):
        start = text.index(word, position)
        position = start + len(word)
        tokens.append(
            {"text": word, "start": start, "end": position, "id": i, "ws": text[position : position + 1] == " "}
        )
    return tokens


def task(task_id, text, results, cancelled=False, data_field="text"):
    return {
        "id": task_id,
        "data": {data_field: text},
        "annotations": [{"id": 10 + task_id, "was_cancelled": cancelled, "result": results}],
    }


def ls_result(start, end, label, text=None, kind="labels"):
    value = {"start": start, "end": end, "labels": [label]}
    if text is not None:
        value["text"] = text
    return {"id": f"r{start}", "from_name": "label", "to_name": "text", "type": kind, "value": value}


def test_jsonl_entities_sentences_and_shared_vocab(tmp_path):
    path = write_jsonl(tmp_path, [{"text": TEXT, "spans": SPANS}, {"text": "Oslo rocks.", "spans": []}])
    docs, description = read_docs(path)
    assert [entities(doc) for doc in docs] == [ENTITIES, []]
    assert all(doc.has_annotation("SENT_START") for doc in docs)
    assert [s.text for s in docs[0].sents] == ["Anna Smith visited New York.", "Acme Corp hired her."]
    assert docs[0].vocab is docs[1].vocab
    assert docs[0].text == TEXT
    assert description == "format: jsonl, 2 records: 2 read"


def test_jsonl_prodigy_tokens_are_the_tokenization(tmp_path):
    text = "New York-based  firms"
    words = ["New York-based", "firms"]  # one token that spaCy would split in four
    record = {
        "text": text,
        "tokens": tokens_of(text, words),
        "spans": [{"start": 0, "end": 14, "label": "LOC", "token_start": 0, "token_end": 0}],
        "_input_hash": 123,
    }
    (doc,), _ = read_docs(write_jsonl(tmp_path, [record]))
    assert [t.text for t in doc] == ["New York-based", " ", "firms"]
    assert doc.text == text
    assert entities(doc) == [("New York-based", "LOC")]


def test_spacy_doc_to_json_is_read(tmp_path):
    import spacy

    nlp = spacy.blank("en")
    doc = nlp("Tom Reed left Lima.")
    doc.ents = [doc.char_span(0, 8, "PER"), doc.char_span(14, 18, "LOC")]
    (read,), _ = read_docs(write_jsonl(tmp_path, [doc.to_json()]))
    assert entities(read) == [("Tom Reed", "PER"), ("Lima", "LOC")]


def test_rejected_ignored_and_empty_records_are_counted(tmp_path):
    records = [
        {"text": TEXT, "spans": SPANS, "answer": "accept"},
        {"text": "No.", "spans": [], "answer": "reject"},
        {"text": "Skip.", "spans": [], "answer": "ignore"},
        {"text": "Skip too.", "spans": [], "answer": "reject"},
        {"text": "  ", "spans": []},
    ]
    docs, description = read_docs(write_jsonl(tmp_path, records))
    assert len(docs) == 1
    assert description == ("format: jsonl, 5 records: 1 read, skipped 1 answer=ignore, 2 answer=reject, 1 empty text")


def test_all_records_skipped_is_an_error(tmp_path):
    path = write_jsonl(tmp_path, [{"text": "No.", "spans": [], "answer": "reject"}])
    with pytest.raises(ConversionError, match=rf"^{path}:1: no annotated records found \(skipped 1 answer=reject\)"):
        read_docs(path)


def test_sentence_boundary_never_inside_an_entity(tmp_path):
    text = "Shares of Yahoo! Inc. fell."
    (doc,), _ = read_docs(write_jsonl(tmp_path, [{"text": text, "spans": [{"start": 10, "end": 21, "label": "ORG"}]}]))
    assert entities(doc) == [("Yahoo! Inc.", "ORG")]
    assert all(not token.is_sent_start for token in doc.ents[0][1:])
    assert [s.text for s in doc.sents] == [text]


JSONL_ERRORS = [
    ({"text": "New York", "spans": [{"start": 0, "end": 6, "label": "LOC"}]}, "does not fall on token boundaries"),
    ({"text": "Oslo", "spans": [{"start": 0, "end": 9, "label": "LOC"}]}, "lies outside the text"),
    ({"text": "Oslo", "spans": [{"start": 3, "end": 3, "label": "LOC"}]}, "lies outside the text"),
    ({"text": "Oslo", "spans": [{"start": -1, "end": 4, "label": "LOC"}]}, "lies outside the text"),
    (
        {"text": "New York", "spans": [{"start": 0, "end": 8, "label": "LOC"}, {"start": 4, "end": 8, "label": "X"}]},
        "overlaps span 0-8 'New York' (LOC)",
    ),
    ({"text": "Oslo", "spans": [{"start": 0, "end": 4, "label": ""}]}, "empty label"),
    ({"text": "Oslo", "spans": [{"start": 0, "end": 4, "label": "LOC "}]}, "holds U+0020 SPACE"),
    ({"text": "Oslo", "spans": [{"start": 0, "end": 4, "label": "L\u200bOC"}]}, "U+200B ZERO WIDTH SPACE"),
    ({"text": "Oslo", "spans": [{"start": 0, "end": 4, "label": "L\x07"}]}, "U+0007"),
    ({"text": "Oslo ", "spans": [{"start": 0, "end": 5, "label": "LOC"}]}, "starts or ends with whitespace"),
    ({"text": "Oslo", "spans": [{"start": 0.0, "end": 4, "label": "LOC"}]}, "'start' must be an integer"),
    ({"text": "Oslo", "spans": [{"start": True, "end": 4, "label": "LOC"}]}, "'start' must be an integer"),
    ({"text": "Oslo", "spans": [{"start": 0, "end": 4}]}, "span 0 has no 'label'"),
    ({"text": "Oslo", "spans": [{"start": 0, "end": 4, "label": "LOC", "text": "Lima"}]}, "covers 'Oslo'"),
    ({"text": "Oslo"}, "has no 'spans'"),
    ({"text": "Oslo", "spans": {"sc": []}}, "'spans' must be a list"),
    ({"spans": []}, "has no 'text' field"),
    ({"text": 5, "spans": []}, "'text' must be a string"),
    ({"text": "Os\u200blo", "spans": []}, "U+200B ZERO WIDTH SPACE at character 2"),
    ({"text": "Os\x00lo", "spans": []}, "U+0000"),
    ({"text": "\ud800", "spans": []}, "U+D800"),
    ({"text": "Oslo", "spans": [], "answer": "maybe"}, "unknown answer"),
    (
        {"text": "Oslo", "spans": [], "tokens": [{"text": "Osl", "start": 0, "end": 3}]},
        "characters 'o' after the last token belong to no token",
    ),
    ({"text": "Oslo", "spans": [], "tokens": [{"text": "Lima", "start": 0, "end": 4}]}, "its text is 'Lima'"),
    ({"text": "Oslo", "spans": [], "tokens": [{"text": "Oslo", "start": 0, "end": 4, "id": 3}]}, "has id 3"),
    ({"text": "Oslo", "spans": [], "tokens": [{"text": "Oslo", "start": 0, "end": 4, "ws": True}]}, "says ws=true"),
    (
        {
            "text": "Oslo now",
            "tokens": [{"start": 0, "end": 4}, {"start": 5, "end": 8}],
            "spans": [{"start": 0, "end": 4, "label": "LOC", "token_start": 1, "token_end": 1}],
        },
        "token_start/token_end 1-1 disagree",
    ),
]


@pytest.mark.parametrize(("record", "message"), JSONL_ERRORS)
def test_jsonl_errors_name_line_and_record(tmp_path, record, message):
    record = {"id": "r-7", **record}
    path = write_jsonl(tmp_path, [{"text": "fine", "spans": []}, "", record])
    with pytest.raises(ConversionError) as excinfo:
        read_docs(path)
    text = str(excinfo.value)
    assert text.startswith(f'{path}:3: record id="r-7": '), text
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "a", "spans": [], "x": NaN}', "NaN is not valid JSON"),
        ('{"text": "a", "spans": [{"start": Infinity}]}', "Infinity is not valid JSON"),
        ('{"text": "a", "spans": [], "text": "b"}', "duplicate key 'text'"),
        ('{"text": "a", "spans": []', "invalid JSON (Expecting ',' delimiter"),
        ('{"text": "a", "spans": []} {}', "extra data"),
        ("[" * 100_000, "nested too deeply"),
        ('{"text": "a", "spans": [], "n": 1' + "0" * 5000 + "}", "invalid JSON"),
        ("[1, 2]", "a record must be an object"),
        ("{", "spans several lines"),
    ],
)
def test_strict_json_errors_name_the_line(tmp_path, line, message):
    path = write_jsonl(tmp_path, [{"text": "fine", "spans": []}, line])
    with pytest.raises(ConversionError, match=rf"^{path}:2: ") as excinfo:
        read_docs(path)
    assert message in str(excinfo.value)


def test_jsonl_options_that_do_not_apply_are_refused(tmp_path):
    path = write_jsonl(tmp_path, [{"text": TEXT, "spans": SPANS}])
    with pytest.raises(OptionError, match="--n-sents"):
        read_docs(path, n_sents=1)
    with pytest.raises(OptionError, match="--scheme"):
        read_docs(path, scheme="iob2")
    with pytest.raises(OptionError, match="--lang 'zz'"):
        read_docs(path, lang="zz")


def test_jsonl_text_field_option(tmp_path):
    path = write_jsonl(tmp_path, [{"body": "Oslo", "spans": [{"start": 0, "end": 4, "label": "LOC"}]}])
    (doc,), _ = read_docs(path, text_field="body")
    assert entities(doc) == [("Oslo", "LOC")]


def test_labelstudio_export(tmp_path):
    tasks = [
        task(1, TEXT, [ls_result(s["start"], s["end"], s["label"], TEXT[s["start"] : s["end"]]) for s in SPANS]),
        {
            "id": 2,
            "data": {"text": "Lima"},
            "annotations": [
                {"was_cancelled": True, "result": [ls_result(0, 4, "ORG")]},
                {"was_cancelled": False, "result": [ls_result(0, 4, "LOC"), {"type": "relation", "from_id": "a"}]},
            ],
        },
        {"id": 3, "data": {"text": "Unlabelled"}, "annotations": []},
        task(4, "Cancelled", [], cancelled=True),
    ]
    docs, description = read_docs(write_json(tmp_path, tasks))
    assert [entities(doc) for doc in docs] == [ENTITIES, [("Lima", "LOC")]]
    assert all(doc.has_annotation("SENT_START") for doc in docs)
    assert docs[0].vocab is docs[1].vocab
    assert description == (
        "format: labelstudio, 4 tasks: 2 read, skipped 2 without a non-cancelled annotation, "
        "ignored non-entity results: 1 of type 'relation'"
    )


def test_labelstudio_text_field_detected_or_given(tmp_path):
    path = write_json(tmp_path, [task(1, "Oslo", [ls_result(0, 4, "LOC")], data_field="sentence")])
    (doc,), _ = read_docs(path)
    assert entities(doc) == [("Oslo", "LOC")]
    two_fields = [{"id": 1, "data": {"a": "Oslo", "b": "x"}, "annotations": [{"result": [ls_result(0, 4, "LOC")]}]}]
    path = write_json(tmp_path, two_fields, "two.json")
    with pytest.raises(ConversionError, match=rf"^{path}:2: task id=1: cannot tell which field.*--text-field"):
        read_docs(path)
    (doc,), _ = read_docs(path, text_field="a")
    assert entities(doc) == [("Oslo", "LOC")]


def test_labelstudio_errors_name_the_task_line_and_id(tmp_path):
    tasks = [task(1, "Oslo", [ls_result(0, 4, "LOC")]), task(2, "New York", [ls_result(0, 6, "LOC")])]
    path = write_json(tmp_path, tasks)
    second_line = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line == "  {" and i > 2)
    with pytest.raises(ConversionError) as excinfo:
        read_docs(path)
    assert str(excinfo.value).startswith(f"{path}:{second_line}: task id=2: span 0-6 'New Yo' (LOC) does not fall")


def test_labelstudio_utf16_offsets_get_a_hint(tmp_path):
    text = "\U0001f600 Oslo rocks"
    path = write_json(tmp_path, [task(1, text, [ls_result(3, 7, "LOC", "Oslo")])])
    with pytest.raises(ConversionError, match="UTF-16 code units"):
        read_docs(path)


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('[\n  {"id": 1, "data": {"text": "a"}, "annotations": []},\n  {"id": 2,\n "x": NaN}\n]', 3, "NaN"),
        ('[\n  {"id": 1, "data": {"text": "a"}, "annotations": []}\n  {"id": 2}\n]', 3, "expected ',' or ']'"),
        ('[\n  {"id": 1,\n   "data": {"text": "a"} "annotations": []}\n]', 3, "Expecting ',' delimiter"),
        ('[\n  {"id": 1, "data": {"text": "a"}, "annotations": []}\n]\n]', 4, "extra data after the array"),
        ('[\n  {"id": 1, "data": {"text": "a"}}\n]', 2, "task id=1: the task has no 'annotations'"),
        (
            '[\n  {"id": 1, "data": {"text": "a"}, "annotations": [{"result": [{"type": "labels", "value": '
            '{"start": 0, "end": 1, "labels": ["A", "B"]}}]}]}\n]',
            2,
            "has 2 labels",
        ),
        ('[\n  {"id": 1, "data": {"text": "a"}, "annotations": [{"was_cancelled": "no"}]}\n]', 2, "true or false"),
        (
            '[\n  {"id": 1, "data": {"text": "a"}, "annotations": [{"result": [{"type": "labels", "value": '
            '{"start": 0, "labels": ["A"]}}]}]}\n]',
            2,
            "'value' has no 'end'",
        ),
        ('[\n  "text"\n]', 2, "a task must be an object"),
        ('{"id": 1}', 1, "expected a JSON array"),
        ("[\n]", 1, "no annotated tasks found"),
    ],
)
def test_labelstudio_bad_files(tmp_path, content, line, message):
    path = tmp_path / "export.json"
    path.write_text(content, "utf-8")
    with pytest.raises(ConversionError, match=rf"^{path}:{line}: ") as excinfo:
        read_docs(path, fmt="labelstudio")
    assert message in str(excinfo.value)
