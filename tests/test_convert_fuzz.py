"""Property tests (hypothesis) of `read_docs`: on any input it returns Docs or raises
`ConversionError` whose message starts with `path:line:`, never anything else; on valid
generated input the entities come back exactly as generated.

Bounded and derandomized, so a CI run is reproducible and the file takes well under a minute.
"""

import csv
import io
import json
import re
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pos_ner.io.conll import ConversionError
from pos_ner.io.formats import read_docs

FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)

# Pieces of CoNLL/CSV lines, good and bad: tags, DOCSTART, CSV syntax, invisible and control characters.
PIECES = st.sampled_from(
    ["Anna", "B-PER", "I-LOC", "I-PER", "O", "B-", "X-Y", "-DOCSTART-", "-X-", "NNP", ",", '"', "Sentence #",
     "Word", "POS", "Tag", "Sentence #,Word,POS,Tag", "\u200b", "\ufeff", "\x00", "\u00a0", "\u3000", "é", "\r",
     "\x0b", "\u200d", "\u2028", "New\nYork", "{", "["]
)  # fmt: skip
LINE = st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=5).flatmap(
    lambda parts: st.sampled_from([" ", "\t", ","]).map(lambda sep: sep.join(parts))
)
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéßøñ東京"
WORD = st.text(alphabet=LETTERS + "0123456789.,;:'\"!?()-", min_size=1, max_size=6).filter(lambda w: w != "-DOCSTART-")
ALPHA_WORD = st.text(alphabet=LETTERS, min_size=1, max_size=6)
LABEL = st.one_of(
    st.sampled_from(["PER", "LOC", "ORG", "MISC", "geo"]), st.text(alphabet="ABCXYZ_", min_size=1, max_size=4)
)

# A sentence as chunks: (words, label or None); an entity is one labelled chunk.
Chunk = Tuple[List[str], Optional[str]]


def chunks(word=WORD, max_chunks: int = 5):
    return st.lists(
        st.tuples(st.lists(word, min_size=1, max_size=3), st.one_of(st.none(), LABEL)), min_size=1, max_size=max_chunks
    )


def check_outcome(path: Path, n_lines: int, call):
    """Run `call`; a ConversionError must name `path:line:` with a line inside the file."""
    try:
        docs, description = call()
    except ConversionError as error:
        match = re.match(rf"{re.escape(str(path))}:(\d+): \S", str(error))
        assert match, str(error)
        assert 1 <= int(match.group(1)) <= max(n_lines, 1), str(error)
        assert "\n" not in str(error)
        return None
    assert docs and "\n" not in description
    for doc in docs:
        assert len(doc) > 0 and doc.has_annotation("SENT_START")
        assert all(ent.label_.strip() == ent.label_ != "" for ent in doc.ents)
    return docs


def write_file(folder: str, name: str, data: bytes) -> Path:
    path = Path(folder) / name
    path.write_bytes(data)
    return path


def entities(docs) -> List[Tuple[str, str]]:
    return [(ent.text, ent.label_) for doc in docs for ent in doc.ents]


@FUZZ
@given(
    lines=st.lists(LINE, max_size=12),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]),
    name=st.sampled_from(["a.txt", "a.csv", "a.conll"]),
    fmt=st.sampled_from(["auto", "conll", "columns", "csv"]),
    scheme=st.sampled_from(["auto", "iob1", "iob2"]),
    n_sents=st.sampled_from([None, 1, 3]),
)
def test_fuzz_column_files_fail_only_with_a_located_error(lines, newline, encoding, name, fmt, scheme, n_sents):
    text = newline.join(lines)
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, name, text.encode(encoding, errors="replace"))
        n_lines = path.read_bytes().count(b"\n") + 1
        check_outcome(path, n_lines, lambda: read_docs(path, fmt, scheme, n_sents))


def iob_tags(sentence: List[Chunk], scheme: str) -> List[str]:
    tags, previous = [], None
    for words, label in sentence:
        if label is None:
            tags += ["O"] * len(words)
        else:
            first = "B" if scheme == "iob2" or previous == label else "I"
            tags += [f"{first}-{label}"] + [f"I-{label}"] * (len(words) - 1)
        previous = label
    return tags


def render_columns(sentences: List[List[Chunk]], fmt: str, scheme: str, sep: str, docstart: bool) -> List[str]:
    lines = ["-DOCSTART- -X- O O", ""] if docstart else []
    for sentence in sentences:
        words = [w for chunk_words, _ in sentence for w in chunk_words]
        for word, tag in zip(words, iob_tags(sentence, scheme)):
            lines.append(sep.join([word, "NN", "I-NP", tag] if fmt == "conll" else [word, tag]))
        lines.append("")
    return lines


def render_csv(sentences: List[List[Chunk]], scheme: str) -> List[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Sentence #", "Word", "POS", "Tag"])
    for number, sentence in enumerate(sentences, 1):
        words = [w for chunk_words, _ in sentence for w in chunk_words]
        for i, (word, tag) in enumerate(zip(words, iob_tags(sentence, scheme))):
            writer.writerow([f"Sentence: {number}" if i == 0 else "", word, "NN", tag])
    return out.getvalue().splitlines()


@FUZZ
@given(
    sentences=st.lists(chunks(), min_size=1, max_size=6),
    fmt=st.sampled_from(["conll", "columns", "csv"]),
    scheme=st.sampled_from(["iob1", "iob2"]),
    sep=st.sampled_from([" ", "\t"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    docstart=st.booleans(),
    n_sents=st.sampled_from([None, 1, 2]),
)
def test_fuzz_valid_column_files_round_trip(sentences, fmt, scheme, sep, newline, bom, docstart, n_sents):
    if fmt == "csv":
        lines = render_csv(sentences, scheme)
    else:
        lines = render_columns(sentences, fmt, scheme, sep, docstart)
    data = ("\ufeff" if bom else "") + newline.join(lines) + newline
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, "data.csv" if fmt == "csv" else "data.txt", data.encode("utf-8"))
        docs, description = read_docs(path, n_sents=n_sents)
    expected = [(" ".join(words), label) for sentence in sentences for words, label in sentence if label]
    assert entities(docs) == expected
    assert [t.text for doc in docs for t in doc] == [w for s in sentences for words, _ in s for w in words]
    assert sum(len(list(doc.sents)) for doc in docs) == len(sentences)
    assert description.startswith(f"format: {fmt}, tag scheme: ")


def compose(sentence: List[Chunk], separators: List[str]) -> Tuple[str, list, list]:
    """Text, Prodigy tokens and spans for chunks of words joined by `separators` (cycled)."""
    text, tokens, spans = "", [], []
    for words, label in sentence:
        start = None
        for word in words:
            if tokens:
                text += separators[len(tokens) % len(separators)]
            if start is None:
                start = len(text)
            tokens.append({"text": word, "start": len(text), "end": len(text) + len(word), "id": len(tokens)})
            text += word
        if label:
            spans.append({"start": start, "end": len(text), "label": label, "text": text[start:]})
    return text, tokens, spans


@FUZZ
@given(
    records=st.lists(
        st.tuples(
            chunks(ALPHA_WORD, 6),
            st.sampled_from([None, "accept", "reject", "ignore"]),
            st.booleans(),
            st.lists(st.sampled_from([" ", "  ", "\n", "\t "]), min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=5,
    ),
    ascii_only=st.booleans(),
)
def test_fuzz_valid_jsonl_round_trips(records, ascii_only):
    lines, expected, kept = [], [], 0
    for number, (sentence, answer, with_tokens, separators) in enumerate(records):
        text, tokens, spans = compose(sentence, separators if with_tokens else [" "])
        record = {"text": text, "spans": spans, "meta": {"id": number}}
        if with_tokens:
            record["tokens"] = tokens
        if answer:
            record["answer"] = answer
        lines.append(json.dumps(record, ensure_ascii=ascii_only))
        if answer in (None, "accept"):
            kept += 1
            expected += [(span["text"], span["label"]) for span in spans]
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, "data.jsonl", "\n".join(lines).encode("utf-8"))
        if kept == 0:
            check_outcome(path, len(lines), lambda: read_docs(path))
            return
        docs, description = read_docs(path)
    assert entities(docs) == expected
    assert len(docs) == kept
    assert description.startswith(f"format: jsonl, {len(records)} records: {kept} read")


def ls_task(number: int, sentence: List[Chunk], cancelled_first: bool, relation: bool) -> dict:
    text, _, spans = compose(sentence, [" "])
    result = [
        {"id": f"r{i}", "type": "labels", "from_name": "label", "to_name": "text",
         "value": {"start": s["start"], "end": s["end"], "text": s["text"], "labels": [s["label"]]}}
        for i, s in enumerate(spans)
    ]  # fmt: skip
    if relation:
        result.append({"type": "relation", "from_id": "r0", "to_id": "r1"})
    annotations = [{"was_cancelled": False, "result": result}]
    if cancelled_first:
        annotations.insert(0, {"was_cancelled": True, "result": []})
    return {"id": number, "data": {"text": text}, "annotations": annotations}


LS_TASKS = st.lists(st.tuples(chunks(ALPHA_WORD, 6), st.booleans(), st.booleans()), min_size=1, max_size=5)


@FUZZ
@given(tasks=LS_TASKS, indent=st.sampled_from([None, 1, 2]))
def test_fuzz_valid_labelstudio_round_trips(tasks, indent):
    export = [ls_task(i, sentence, cancelled, relation) for i, (sentence, cancelled, relation) in enumerate(tasks)]
    expected = [(" ".join(words), label) for sentence, _, _ in tasks for words, label in sentence if label]
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, "export.json", json.dumps(export, indent=indent).encode("utf-8"))
        docs, _ = read_docs(path)
    assert entities(docs) == expected


JUNK_JSONL = st.sampled_from(
    ["{", "NaN", '{"text": NaN}', "[]", '"x"', '{"text": "\\ud800", "spans": []}', '{"text":"a","spans":[],"text":"b"}',
     '{"text": "a", "spans": [{"start": 1e400}]}', "", "   "]
)  # fmt: skip
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 30), st.floats(allow_nan=False), st.text(max_size=4))
RANDOM_SPAN = st.dictionaries(
    st.sampled_from(["start", "end", "label", "text", "token_start", "token_end"]),
    st.one_of(st.integers(-2, 25), LABEL, JSON_SCALAR),
)
RANDOM_TOKEN = st.dictionaries(
    st.sampled_from(["text", "start", "end", "id", "ws"]), st.one_of(st.integers(-1, 25), st.booleans(), WORD)
)
RANDOM_RECORD = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(st.text(max_size=25), JSON_SCALAR),
        "spans": st.one_of(st.lists(RANDOM_SPAN, max_size=4), JSON_SCALAR),
        "tokens": st.one_of(st.lists(RANDOM_TOKEN, max_size=5), JSON_SCALAR),
        "answer": st.sampled_from(["accept", "reject", "ignore", "maybe", 1]),
        "id": JSON_SCALAR,
        "meta": st.one_of(st.dictionaries(st.just("id"), JSON_SCALAR), JSON_SCALAR),
    },
)


@FUZZ
@given(
    lines=st.lists(st.one_of(RANDOM_RECORD.map(json.dumps), JUNK_JSONL), max_size=8),
    name=st.sampled_from(["a.jsonl", "a.json", "a.txt"]),
)
def test_fuzz_random_jsonl_fails_only_with_a_located_error(lines, name):
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, name, "\n".join(lines).encode("utf-8", errors="surrogatepass"))
        check_outcome(path, len(lines), lambda: read_docs(path, fmt="jsonl" if name == "a.txt" else "auto"))


RANDOM_RESULT = st.fixed_dictionaries(
    {"type": st.sampled_from(["labels", "labels", "relation", "choices", 3])},
    optional={
        "value": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "start": st.one_of(st.integers(-2, 25), JSON_SCALAR),
                    "end": st.one_of(st.integers(-2, 25), JSON_SCALAR),
                    "text": st.one_of(st.text(max_size=5), JSON_SCALAR),
                    "labels": st.one_of(st.lists(st.one_of(LABEL, JSON_SCALAR), max_size=2), JSON_SCALAR),
                },
            ),
            JSON_SCALAR,
        )
    },
)
RANDOM_TASK = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON_SCALAR,
        "data": st.one_of(
            st.dictionaries(st.sampled_from(["text", "body", "n"]), st.one_of(st.text(max_size=25), JSON_SCALAR)),
            JSON_SCALAR,
        ),
        "annotations": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "was_cancelled": st.one_of(st.booleans(), JSON_SCALAR),
                        "result": st.one_of(st.lists(RANDOM_RESULT, max_size=4), JSON_SCALAR),
                    },
                ),
                max_size=2,
            ),
            JSON_SCALAR,
        ),
    },
)


@FUZZ
@given(
    tasks=st.lists(st.one_of(RANDOM_TASK, JSON_SCALAR), max_size=5),
    indent=st.sampled_from([None, 2]),
    cut=st.one_of(st.none(), st.integers(0, 400)),
    insert=st.sampled_from(["", "NaN", ",", "]", "}", "\x00", '"', "\n"]),
)
def test_fuzz_random_labelstudio_fails_only_with_a_located_error(tasks, indent, cut, insert):
    text = json.dumps(tasks, indent=indent)
    if cut is not None:
        text = text[:cut] + insert + text[cut:]
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, "export.json", text.encode("utf-8"))
        check_outcome(path, text.count("\n") + 1, lambda: read_docs(path, fmt="labelstudio"))


@FUZZ
@given(
    tasks=LS_TASKS,
    records=st.integers(0, 3),
    cut=st.integers(0, 2000),
    insert=st.sampled_from(["", "x", "{", "\ud800"]),
)
def test_fuzz_mangled_valid_files_fail_only_with_a_located_error(tasks, records, cut, insert):
    """Valid files cut short or with a stray character: read, or a located error."""
    export = json.dumps([ls_task(i, s, c, r) for i, (s, c, r) in enumerate(tasks)], indent=2)
    mangled = export[:cut] + insert + export[cut:]
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, "export.json", mangled.encode("utf-8", errors="surrogatepass"))
        check_outcome(path, mangled.count("\n") + 1, lambda: read_docs(path))
        lines = [json.dumps({"text": t["data"]["text"], "spans": []}) for t in json.loads(export)[: records + 1]]
        jsonl = "\n".join(lines)
        jsonl = jsonl[: cut % (len(jsonl) + 1)] + insert + jsonl[cut % (len(jsonl) + 1) :]
        path = write_file(folder, "data.jsonl", jsonl.encode("utf-8", errors="surrogatepass"))
        check_outcome(path, jsonl.count("\n") + 1, lambda: read_docs(path))
