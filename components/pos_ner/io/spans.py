"""Read span-annotated records into Docs: JSONL as Prodigy and spaCy write it, and
Label Studio's JSON export.

Both give entities as character offsets into a text. Offsets that do not fall on
token boundaries, that overlap, that lie outside the text or whose quoted text
does not match are errors naming `path:line` and the record's id: snapping them
to tokens (spaCy's `alignment_mode="expand"`) would train on entities nobody
annotated. Records that Prodigy marks `reject`/`ignore`, Label Studio tasks with
no usable annotation and empty texts are skipped and counted in `SpanStats`, so
the summary says what was left out. Every Doc gets sentence boundaries from
spaCy's `sentencizer`, never inside an entity (the corpus reader cuts long
documents at sentence starts, and the `pos_ner` decoder forbids `I-` there).

Each record (task) is read inside `ReadReport.record`, so that `--skip-bad-records`
can leave a bad one out; `--normalize` removes invisible and control characters
from its text and labels, and moves its span and token offsets with them
(`normalize_record`).
"""

import json
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.pipeline import Sentencizer
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from .conll import (
    ConversionError,
    ReadReport,
    find_bad_character,
    label_problem,
    normalize_text,
    normalized_form,
    split_lines,
)

TEXT_FIELD = "text"
SKIP_ANSWERS = ("reject", "ignore")
# Whitespace a raw text may hold; other control characters are refused (see conll.find_bad_character).
TEXT_WHITESPACE = "\t\n\r"


class StrictJSONError(ValueError):
    """JSON that Python's parser accepts but the standard does not (NaN, Infinity), or
    that would lose data (a duplicate key keeps only its last value)."""


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not valid JSON")


def _unique_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"duplicate key {key!r}")
        result[key] = value
    return result


DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


@dataclass
class Where:
    """Where a record lies, so that every message reads `path:line: record id=X: ...`."""

    path: Path
    line: int
    ident: str = ""

    def error(self, message: str, characters: bool = False) -> ConversionError:
        text = f"{self.ident}: {message}" if self.ident else message
        return ConversionError(self.path, self.line, text, characters=characters)


@dataclass
class SpanStats:
    """What a reader saw: records read, records skipped by reason, results ignored by type."""

    unit: str
    read: int = 0
    skipped: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)
    rejected: int = 0  # bad ones that --skip-bad-records left out

    def describe(self, fmt: str) -> str:
        """One line, e.g. `format: jsonl, 5 records: 3 read, skipped 1 answer=reject, 1 empty text`."""
        total = self.read + sum(self.skipped.values()) + self.rejected
        parts = [f"format: {fmt}", f"{total} {self.unit}: {self.read} read"]
        if self.skipped:
            parts.append(f"skipped {self.skipped_text()}")
        if self.rejected:
            parts.append(f"rejected {self.rejected} bad")
        if self.ignored:
            kinds = ", ".join(f"{n} of type {kind!r}" for kind, n in sorted(self.ignored.items()))
            parts.append(f"ignored non-entity results: {kinds}")
        return ", ".join(parts)

    def skipped_text(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))


@dataclass
class SpanAnnotation:
    """One entity as given: character offsets, label, and what the record says it covers."""

    start: int
    end: int
    label: str
    text: Optional[str] = None
    token_start: Optional[int] = None
    token_end: Optional[int] = None  # inclusive, as Prodigy writes it


def get_int(value: Any, what: str, where: Where) -> int:
    """An integer field (booleans and floats are refused, `1.0` is not an offset)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise where.error(f"{what} must be an integer, got {json.dumps(value)[:40]}")
    return value


def get_str(value: Any, what: str, where: Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"{what} must be a string, got {json.dumps(value)[:40]}")
    return value


def get_list(value: Any, what: str, where: Where) -> List[Any]:
    if not isinstance(value, list):
        raise where.error(f"{what} must be a list, got {json.dumps(value)[:40]}")
    return value


def get_dict(value: Any, what: str, where: Where) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"{what} must be an object, got {json.dumps(value)[:40]}")
    return value


def optional_int(record: Dict[str, Any], key: str, what: str, where: Where) -> Optional[int]:
    return get_int(record[key], f"{what} {key!r}", where) if key in record else None


def check_text(text: str, where: Where) -> None:
    """Refuse control and zero-width characters, which would hide inside tokens."""
    found = find_bad_character(text, allowed=TEXT_WHITESPACE)
    if found is not None:
        offset, name = found
        raise where.error(f"the text holds {name} at character {offset}", characters=True)


def utf16_slice(text: str, start: int, end: int) -> str:
    """`text[start:end]` counting UTF-16 code units, as JavaScript-based tools do."""
    return text.encode("utf-16-le")[2 * start : 2 * end].decode("utf-16-le", errors="replace")


def describe_span(text: str, span: SpanAnnotation) -> str:
    return f"span {span.start}-{span.end} {text[span.start : span.end]!r} ({span.label})"


def check_span(text: str, span: SpanAnnotation, where: Where) -> None:
    """Offsets inside the text, a visible label, the quoted text (if any) matching the
    offsets, and no whitespace at either edge (spaCy tokens never start or end with it)."""
    if not 0 <= span.start < span.end <= len(text):
        raise where.error(
            f"span {span.start}-{span.end} ({span.label}) lies outside the text (length {len(text)}) or is empty"
        )
    problem = label_problem(span.label)
    if problem is not None:
        normalizable = any(normalized_form(char) is not None for char in span.label)
        raise where.error(f"{describe_span(text, span)}: {problem}", characters=normalizable)
    covered = text[span.start : span.end]
    if span.text is not None and span.text != covered:
        hint = ""
        if utf16_slice(text, span.start, span.end) == span.text:
            hint = " (the offsets count UTF-16 code units, as JavaScript does; Python counts characters)"
        raise where.error(f"span {span.start}-{span.end} covers {covered!r} but its text is {span.text!r}{hint}")
    if covered.strip() != covered:
        raise where.error(f"{describe_span(text, span)} starts or ends with whitespace")


def check_spans(text: str, spans: Sequence[SpanAnnotation], where: Where) -> List[SpanAnnotation]:
    """Validate each span and refuse overlaps; return the spans sorted by offset."""
    for span in spans:
        check_span(text, span, where)
    ordered = sorted(spans, key=lambda span: (span.start, span.end))
    for previous, current in zip(ordered, ordered[1:]):
        if current.start < previous.end:
            raise where.error(f"{describe_span(text, current)} overlaps {describe_span(text, previous)}")
    return ordered


def add_gap(words: List[str], spaces: List[bool], gap: str) -> None:
    """Append the whitespace between two tokens: one space becomes the previous token's
    trailing space, anything else a whitespace token, so `doc.text` is the record's text."""
    if gap.startswith(" ") and words and not spaces[-1]:
        spaces[-1] = True
        gap = gap[1:]
    if gap:
        words.append(gap)
        spaces.append(False)


def parse_token(raw: Any, index: int, text: str, position: int, where: Where) -> Tuple[int, int]:
    """Offsets of token `index`, checked against the text, its `id` and the previous token."""
    token = get_dict(raw, f"token {index}", where)
    if "start" not in token or "end" not in token:
        raise where.error(f"token {index} needs 'start' and 'end'")
    start = get_int(token["start"], f"token {index} 'start'", where)
    end = get_int(token["end"], f"token {index} 'end'", where)
    if not position <= start < end <= len(text):
        raise where.error(f"token {index} {start}-{end} overlaps the previous token, is empty or lies outside the text")
    if "text" in token and get_str(token["text"], f"token {index} 'text'", where) != text[start:end]:
        raise where.error(f"token {index} {start}-{end} covers {text[start:end]!r} but its text is {token['text']!r}")
    if "id" in token and get_int(token["id"], f"token {index} 'id'", where) != index:
        raise where.error(f"token {index} has id {token['id']}; token ids must count 0, 1, 2, ... in order")
    if "ws" in token:
        if not isinstance(token["ws"], bool):
            raise where.error(f"token {index} 'ws' must be true or false")
        if token["ws"] != (text[end : end + 1] == " "):
            raise where.error(
                f"token {index} {text[start:end]!r} says ws={json.dumps(token['ws'])}, the text disagrees"
            )
    return start, end


def doc_from_tokens(vocab: Vocab, text: str, tokens: List[Any], where: Where) -> Tuple[Doc, List[int]]:
    """A Doc with the record's own tokens (Prodigy's `tokens`), and each given token's
    index in it (whitespace between tokens may add tokens). Text outside every token must
    be whitespace: otherwise characters would drop out of the Doc."""
    words: List[str] = []
    spaces: List[bool] = []
    index: List[int] = []
    position = 0
    for number, raw in enumerate(tokens):
        start, end = parse_token(raw, number, text, position, where)
        gap = text[position:start]
        if gap.strip():
            raise where.error(f"characters {gap!r} before token {number} belong to no token")
        add_gap(words, spaces, gap)
        index.append(len(words))
        words.append(text[start:end])
        spaces.append(False)
        position = end
    gap = text[position:]
    if gap.strip():
        raise where.error(f"characters {gap[:40]!r} after the last token belong to no token")
    add_gap(words, spaces, gap)
    return Doc(vocab, words=words, spaces=spaces), index


def token_range_error(entity: Span, span: SpanAnnotation, index: List[int]) -> Optional[str]:
    """Whether Prodigy's `token_start`/`token_end` agree with the character offsets."""
    first, last = span.token_start, span.token_end
    if first is None and last is None:
        return None
    if first is not None and last is not None and 0 <= first <= last < len(index):
        if (index[first], index[last]) == (entity.start, entity.end - 1):
            return None
    return f"token_start/token_end {first}-{last} disagree with the character offsets"


def make_entities(doc: Doc, spans: Sequence[SpanAnnotation], index: Optional[List[int]], where: Where) -> List[Span]:
    """Spans on exact token boundaries (`alignment_mode="strict"`), or an error naming them."""
    entities = []
    for span in spans:
        entity = doc.char_span(span.start, span.end, label=span.label, alignment_mode="strict")
        if entity is None:
            pieces = [t.text for t in doc if t.idx < span.end and t.idx + len(t) > span.start]
            raise where.error(
                f"{describe_span(doc.text, span)} does not fall on token boundaries (tokens there: {pieces}); "
                "fix the offsets or give the record 'tokens'"
            )
        problem = token_range_error(entity, span, index) if index is not None else None
        if problem is not None:
            raise where.error(f"{describe_span(doc.text, span)}: {problem}")
        entities.append(entity)
    return entities


def set_sentences(sentencizer: Sentencizer, doc: Doc) -> Doc:
    """Sentence starts by punctuation, never inside an entity (`Yahoo!` stays one sentence)."""
    doc = sentencizer(doc)
    for entity in doc.ents:
        for token in entity[1:]:
            token.is_sent_start = False
    return doc


class SpanDocMaker:
    """Turns (text, spans, tokens) into Docs that share the vocab of one blank pipeline."""

    def __init__(self, nlp: Language):
        self.nlp = nlp
        self.sentencizer = Sentencizer()

    def __call__(
        self, text: str, spans: Sequence[SpanAnnotation], tokens: Optional[List[Any]], where: Where
    ) -> Optional[Doc]:
        """The Doc, or None when the text is empty or whitespace (the caller counts it)."""
        check_text(text, where)
        ordered = check_spans(text, spans, where)
        if not text.strip():
            return None
        if tokens is None:
            doc, index = self.nlp.make_doc(text), None
        else:
            doc, index = doc_from_tokens(self.nlp.vocab, text, tokens, where)
        doc.ents = make_entities(doc, ordered, index, where)
        return set_sentences(self.sentencizer, doc)


class LineIndex:
    """Line numbers of character offsets, by bisection over the newline positions."""

    def __init__(self, text: str):
        self.newlines = [i for i, char in enumerate(text) if char == "\n"]

    def line(self, offset: int) -> int:
        return bisect_left(self.newlines, offset) + 1


def decode_json(text: str, where: Where, start: int = 0, lines: Optional[LineIndex] = None) -> Tuple[Any, int]:
    """Strict JSON from `text[start:]`: the value and the offset after it. Syntax errors
    name their own line (when `lines` is given) and column; NaN, duplicate keys, absurd
    numbers and nesting too deep for Python name the line where the value begins."""
    try:
        return DECODER.raw_decode(text, start)
    except json.JSONDecodeError as error:
        line = lines.line(error.pos) if lines is not None else where.line
        raise ConversionError(where.path, line, f"invalid JSON ({error.msg}, column {error.colno})") from error
    except RecursionError as error:
        raise where.error("invalid JSON (nested too deeply)") from error
    except ValueError as error:  # StrictJSONError, or an integer over Python's digit limit
        raise where.error(f"invalid JSON ({str(error).splitlines()[0]})") from error


def decode_jsonl_line(path: Path, number: int, line: str) -> Any:
    """The JSON value of line `number` of one-JSON-value-per-line text."""
    where = Where(path, number)
    if line.strip() in ("{", "["):
        raise where.error("a JSON value spans several lines; expected one JSON record per line")
    value, end = decode_json(line, where, start=len(line) - len(line.lstrip()))
    if line[end:].strip():
        raise where.error(f"invalid JSON (extra data at column {end + 1})")
    return value


def iter_json_array(path: Path, text: str) -> Iterator[Tuple[int, Any]]:
    """(line where it begins, value) for each element of a top-level JSON array, parsed
    one element at a time so that errors name the element's line."""
    lines = LineIndex(text)
    position = skip_whitespace(text, 0)
    if not text.startswith("[", position):
        raise ConversionError(path, lines.line(position), "expected a JSON array of Label Studio tasks")
    position = skip_whitespace(text, position + 1)
    if text.startswith("]", position):
        return check_end(path, text, position + 1, lines)
    while True:
        line = lines.line(position)
        value, position = decode_json(text, Where(path, line), position, lines)
        yield line, value
        position = skip_whitespace(text, position)
        if text.startswith("]", position):
            return check_end(path, text, position + 1, lines)
        if not text.startswith(",", position):
            raise ConversionError(path, lines.line(position), "invalid JSON (expected ',' or ']' after a task)")
        position = skip_whitespace(text, position + 1)


def skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def check_end(path: Path, text: str, position: int, lines: LineIndex) -> None:
    position = skip_whitespace(text, position)
    if position < len(text):
        raise ConversionError(path, lines.line(position), "invalid JSON (extra data after the array)")


def record_ident(record: Dict[str, Any], kind: str) -> str:
    """`record id=7` from `id`, `meta.id` or `_input_hash`, for messages; "" without one."""
    meta = record.get("meta")
    candidates = [record.get("id"), meta.get("id") if isinstance(meta, dict) else None, record.get("_input_hash")]
    for value in candidates:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return f"{kind} id={json.dumps(value)}"
    return kind


def parse_jsonl_span(raw: Any, number: int, where: Where) -> SpanAnnotation:
    """A Prodigy/spaCy span `{"start", "end", "label", "text"?, "token_start"?, "token_end"?}`."""
    what = f"span {number}"
    span = get_dict(raw, what, where)
    for key in ("start", "end", "label"):
        if key not in span:
            raise where.error(f"{what} has no {key!r}")
    return SpanAnnotation(
        start=get_int(span["start"], f"{what} 'start'", where),
        end=get_int(span["end"], f"{what} 'end'", where),
        label=get_str(span["label"], f"{what} 'label'", where),
        text=get_str(span["text"], f"{what} 'text'", where) if "text" in span else None,
        token_start=optional_int(span, "token_start", what, where),
        token_end=optional_int(span, "token_end", what, where),
    )


def jsonl_spans(record: Dict[str, Any], where: Where) -> List[Any]:
    """The entity list: Prodigy's `spans`, or `ents` as spaCy's `Doc.to_json` writes it
    (there `spans` is a dict of span groups). Missing spans are an error, not "no entities":
    an unannotated text would otherwise train the model that it has none."""
    spans, ents = record.get("spans"), record.get("ents")
    if isinstance(spans, list) and ents is not None:
        raise where.error("the record has both 'spans' and 'ents'; keep one")
    if isinstance(spans, list):
        return spans
    if ents is not None:
        return get_list(ents, "'ents'", where)
    if spans is not None:
        raise where.error("'spans' must be a list of entity spans")
    raise where.error("the record has no 'spans' (write \"spans\": [] for a text without entities)")


def labels_of(spans: Any, label: Callable[[Any], Any]) -> Counter:
    """Entities per label of a list of raw spans (`label(span)` gives a span's label), for a
    rejected record; spans without a string label count as '?'."""
    labels: Counter = Counter()
    for span in spans if isinstance(spans, list) else []:
        value = label(span) if isinstance(span, dict) else None
        labels[value if isinstance(value, str) else "?"] += 1
    return labels


def jsonl_entities(line: str) -> Optional[Counter]:
    """The entities a rejected JSONL record held (None if it is not a JSON object)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    spans = record.get("spans") if isinstance(record.get("spans"), list) else record.get("ents")
    return labels_of(spans, lambda span: span.get("label"))


def normalize_record(
    report: ReadReport, line: int, text: str, spans: List[SpanAnnotation], tokens: Optional[List[Any]]
) -> Tuple[str, List[SpanAnnotation], Optional[List[Any]]]:
    """The record as `--normalize` makes it: its text and labels without invisible and control
    characters (counted in `report`), span and token offsets moved to the shorter text, their
    quoted texts normalized alike. A span or token that covered only removed characters ends up
    empty, and is then refused. Unchanged without the option."""
    if not report.options.normalize:
        return text, spans, tokens
    normalized = report.normalize(line, text, TEXT_WHITESPACE)

    def quoted(value: Optional[str]) -> Optional[str]:
        return None if value is None else normalize_text(value, TEXT_WHITESPACE).text

    spans = [
        replace(
            span,
            start=normalized.offset(span.start),
            end=normalized.offset(span.end),
            label=report.normalize(line, span.label).text,
            text=quoted(span.text),
        )
        for span in spans
    ]
    if tokens is not None:
        tokens = [move_token(token, normalized.offset, quoted) for token in tokens]
    return normalized.text, spans, tokens


def move_token(token: Any, offset: Callable[[int], int], quoted: Callable[[Optional[str]], Optional[str]]) -> Any:
    """A Prodigy token with its integer offsets moved and its text normalized (other values
    are left for `parse_token` to refuse)."""
    if not isinstance(token, dict):
        return token
    moved = dict(token)
    for key in ("start", "end"):
        if isinstance(moved.get(key), int) and not isinstance(moved[key], bool):
            moved[key] = offset(moved[key])
    if isinstance(moved.get("text"), str):
        moved["text"] = quoted(moved["text"])
    return moved


def read_jsonl(
    path: Path, text: str, nlp: Language, text_field: Optional[str] = None, report: Optional[ReadReport] = None
) -> Tuple[List[Doc], SpanStats]:
    """Docs from span JSONL; records answered `reject`/`ignore` and empty texts are counted, not read."""
    report = ReadReport() if report is None else report
    report.unit = "records"
    field_name = text_field or TEXT_FIELD
    make = SpanDocMaker(nlp)
    stats = SpanStats("records")
    docs: List[Doc] = []
    last_line = 1
    for number, line in enumerate(split_lines(text), 1):
        if not line.strip():
            continue
        last_line = number
        with report.record(number, partial(jsonl_entities, line)):
            record = get_dict(decode_jsonl_line(path, number, line), "a record", Where(path, number))
            where = Where(path, number, record_ident(record, "record"))
            answer = record.get("answer", "accept")
            if answer in SKIP_ANSWERS:
                stats.skipped[f"answer={answer}"] += 1
                continue
            if answer != "accept":
                raise where.error(f"unknown answer {json.dumps(answer)[:40]} (expected accept, reject or ignore)")
            if field_name not in record:
                raise where.error(f"the record has no {field_name!r} field")
            content = get_str(record[field_name], repr(field_name), where)
            spans = [parse_jsonl_span(raw, i, where) for i, raw in enumerate(jsonl_spans(record, where))]
            tokens = get_list(record["tokens"], "'tokens'", where) if "tokens" in record else None
            content, spans, tokens = normalize_record(report, number, content, spans, tokens)
            add_doc(docs, stats, make(content, spans, tokens, where))
    finish(path, last_line, docs, stats, report)
    return docs, stats


def add_doc(docs: List[Doc], stats: SpanStats, doc: Optional[Doc]) -> None:
    if doc is None:
        stats.skipped["empty text"] += 1
    else:
        docs.append(doc)
        stats.read += 1


def finish(path: Path, last_line: int, docs: List[Doc], stats: SpanStats, report: ReadReport) -> None:
    """No Doc at all is an error: an empty corpus would only fail later, far from its cause."""
    stats.rejected = len(report.rejections)
    if not docs:
        report.check_kept(path)
        detail = f" (skipped {stats.skipped_text()})" if stats.skipped else ""
        raise ConversionError(path, last_line, f"no annotated {stats.unit} found{detail}")


def pick_text_field(data: Dict[str, Any], text_field: Optional[str], where: Where) -> str:
    """The task's text: `text_field` if given, else `text`, else the only string field."""
    if text_field is not None:
        if text_field not in data:
            raise where.error(f"'data' has no {text_field!r} field (fields: {sorted(data)})")
        return get_str(data[text_field], f"data {text_field!r}", where)
    if TEXT_FIELD in data:
        return get_str(data[TEXT_FIELD], f"data {TEXT_FIELD!r}", where)
    strings = [key for key, value in data.items() if isinstance(value, str)]
    if len(strings) != 1:
        raise where.error(
            f"cannot tell which field of 'data' is the text (string fields: {sorted(strings)}); pass --text-field"
        )
    return data[strings[0]]


def pick_annotation(task: Dict[str, Any], where: Where) -> Optional[Dict[str, Any]]:
    """The first annotation that was not cancelled, or None."""
    key = "annotations" if "annotations" in task or "completions" not in task else "completions"
    if key not in task:
        raise where.error("the task has no 'annotations' (export Label Studio's JSON format, not JSON-MIN)")
    for number, raw in enumerate(get_list(task[key], f"{key!r}", where)):
        annotation = get_dict(raw, f"annotation {number}", where)
        cancelled = annotation.get("was_cancelled", False)
        if not isinstance(cancelled, bool):
            raise where.error(f"annotation {number} 'was_cancelled' must be true or false")
        if not cancelled:
            return annotation
    return None


def parse_result(raw: Any, number: int, where: Where) -> Optional[SpanAnnotation]:
    """A `labels` result as a span; None for other result types (relations, choices)."""
    what = f"result {number}"
    result = get_dict(raw, what, where)
    if result.get("type") != "labels":
        return None
    value = get_dict(result.get("value"), f"{what} 'value'", where)
    for key in ("start", "end", "labels"):
        if key not in value:
            raise where.error(f"{what} 'value' has no {key!r}")
    labels = get_list(value["labels"], f"{what} 'labels'", where)
    if len(labels) != 1:
        raise where.error(f"{what} has {len(labels)} labels; expected exactly one per span")
    return SpanAnnotation(
        start=get_int(value["start"], f"{what} 'start'", where),
        end=get_int(value["end"], f"{what} 'end'", where),
        label=get_str(labels[0], f"{what} label", where),
        text=get_str(value["text"], f"{what} 'text'", where) if "text" in value else None,
    )


def task_spans(annotation: Dict[str, Any], stats: SpanStats, where: Where) -> List[SpanAnnotation]:
    spans = []
    for number, raw in enumerate(get_list(annotation.get("result", []), "'result'", where)):
        span = parse_result(raw, number, where)
        if span is None:
            stats.ignored[str(raw.get("type"))] += 1
        else:
            spans.append(span)
    return spans


def task_entities(task: Any) -> Optional[Counter]:
    """The entities a rejected Label Studio task held: the `labels` results of its first
    annotation that was not cancelled (None if the task is not an object)."""
    if not isinstance(task, dict):
        return None
    annotations = task.get("annotations", task.get("completions"))
    for annotation in annotations if isinstance(annotations, list) else []:
        if isinstance(annotation, dict) and annotation.get("was_cancelled") is not True:
            results = annotation.get("result")
            results = results if isinstance(results, list) else []
            return labels_of([r for r in results if isinstance(r, dict) and r.get("type") == "labels"], result_label)
    return Counter()


def result_label(result: Dict[str, Any]) -> Any:
    value = result.get("value")
    labels = value.get("labels") if isinstance(value, dict) else None
    return labels[0] if isinstance(labels, list) and len(labels) == 1 else None


def read_labelstudio(
    path: Path, text: str, nlp: Language, text_field: Optional[str] = None, report: Optional[ReadReport] = None
) -> Tuple[List[Doc], SpanStats]:
    """Docs from a Label Studio JSON export (the first non-cancelled annotation of each task).
    Invalid JSON is an error of the whole file: where the next task begins cannot be told."""
    report = ReadReport() if report is None else report
    report.unit = "tasks"
    make = SpanDocMaker(nlp)
    stats = SpanStats("tasks")
    docs: List[Doc] = []
    last_line = 1
    for line, value in iter_json_array(path, text):
        last_line = line
        with report.record(line, partial(task_entities, value)):
            task = get_dict(value, "a task", Where(path, line))
            where = Where(path, line, record_ident(task, "task"))
            content = pick_text_field(get_dict(task.get("data"), "'data'", where), text_field, where)
            annotation = pick_annotation(task, where)
            if annotation is None:
                stats.skipped["without a non-cancelled annotation"] += 1
                continue
            spans = task_spans(annotation, stats, where)
            content, spans, _ = normalize_record(report, line, content, spans, None)
            add_doc(docs, stats, make(content, spans, None, where))
    finish(path, last_line, docs, stats, report)
    return docs, stats


SpanReader = Callable[[Path, str, Language, Optional[str], Optional[ReadReport]], Tuple[List[Doc], SpanStats]]
READERS: Dict[str, SpanReader] = {"jsonl": read_jsonl, "labelstudio": read_labelstudio}
