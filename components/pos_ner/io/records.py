"""Input and output records of `pos-ner predict` (and the entities the HTTP
API returns).

Inputs: plain text (one document per line; an empty line is an empty document
with no entities), JSONL with a "text" field, or JSONL with a pre-tokenized
"tokens" list. JSONL records keep their other fields ("id" among them, as is);
blank JSONL lines are not records and are ignored. Every output record gets
"line", the 1-based input line it came from, so each output record can be
traced back even when bad records in between were skipped. A record gets
"low_confidence" too, the entities a confidence threshold took out of
"entities" (`pos_ner.thresholds`), exactly when its doc has that span group:
when a threshold was applied (an option, a request field or the model's own
`min_confidence`); without one, records have no such field.

JSON is parsed strictly: NaN, Infinity, -Infinity and numbers too large for a
float (1e400) are not JSON and would make the output invalid JSON, so such a
record is bad. Tokens may not contain control or zero-width characters
(`FORBIDDEN_IN_TOKENS`): they are invisible, and a token made of them would
silently change the text the entity offsets refer to. Texts may contain them
(spaCy's tokenizer handles them; json.dumps escapes the control characters).

Bad records are reported as INPUT:LINE: reason, then skipped (and written to
the rejects file) or fatal (--on-error).
"""

import codecs
import json
import math
import re
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..decoding import CONFIDENCE_ATTR
from ..thresholds import LOW_CONFIDENCE_KEY


class Format(str, Enum):
    auto = "auto"
    text = "text"
    jsonl = "jsonl"
    tokens = "tokens"


class OnError(str, Enum):
    skip = "skip"
    fail = "fail"


# Fields that `predict` writes itself; an input field of the same name is replaced.
OUTPUT_FIELDS = ("line", "entities")
# The field of the entities below a confidence threshold, written (replacing an
# input field of that name) only where thresholds were applied.
LOW_CONFIDENCE_FIELD = "low_confidence"
# C0 controls, DEL, zero-width space/non-joiner/joiner, word joiner, BOM.
FORBIDDEN_IN_TOKENS = re.compile("[\x00-\x1f\x7f\u200b-\u200d\u2060\ufeff]")
# Marks a record without an "id" field (its id may be null).
NO_ID = object()


class BadRecord(ValueError):
    """An input record that cannot be processed; the message says why.
    `record_id` is the record's "id" field where it has one (else NO_ID)."""

    def __init__(self, reason: str, record_id: Any = NO_ID):
        super().__init__(reason)
        self.record_id = record_id


class Record(NamedTuple):
    """A good input record: its fields, its 1-based line and the bytes read up to its end."""

    fields: Dict[str, Any]
    line: int
    offset: int


def reject_entry(line: int, reason: str, record_id: Any = NO_ID) -> Dict[str, Any]:
    """A line of the rejects file: {"line", "id" (if the record has one), "reason"}."""
    entry: Dict[str, Any] = {"line": line}
    if record_id is not NO_ID:
        entry["id"] = record_id
    entry["reason"] = reason
    return entry


def output_record(record: Record, entities: List[Dict], low_confidence: Optional[List[Dict]] = None) -> Dict[str, Any]:
    """The output record: "line" first, the input's own fields, then "entities"
    and, if it is not None, "low_confidence" (`low_confidence_entities`)."""
    replaced = OUTPUT_FIELDS if low_confidence is None else (*OUTPUT_FIELDS, LOW_CONFIDENCE_FIELD)
    kept = {key: value for key, value in record.fields.items() if key not in replaced}
    output = {"line": record.line, **kept, "entities": entities}
    if low_confidence is not None:
        output[LOW_CONFIDENCE_FIELD] = low_confidence
    return output


def dumps(value: Any) -> bytes:
    """Strict JSON (no NaN or Infinity: json.dumps writes them by default), UTF-8, one line."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf8")


def _no_constant(name: str) -> Any:
    raise BadRecord(f"invalid JSON: {name} is not a JSON value (use null or a string)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRecord(f"invalid JSON: the number {text[:40]} is out of range")
    return value


def loads_strict(line: str) -> Any:
    """json.loads without Python's extensions (NaN, Infinity) and overflowing floats."""
    return json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)


def doc_to_entities(doc: Doc, with_tokens: bool = False) -> List[Dict]:
    """The entities of `doc` as JSON-ready dicts (confidence is None for
    pipelines without `span._.confidence`); `with_tokens` adds token indices."""
    return spans_to_entities(doc.ents, with_tokens)


def low_confidence_entities(doc: Doc, with_tokens: bool = False) -> Optional[List[Dict]]:
    """The entities a confidence threshold took out of `doc.ents` (the span
    group `doc.spans["ner_low_confidence"]`, see `pos_ner.thresholds`), as
    `doc_to_entities` gives entities; None if `doc` has no such group (no
    threshold was applied to it), [] if the threshold took none."""
    if LOW_CONFIDENCE_KEY not in doc.spans:
        return None
    return spans_to_entities(doc.spans[LOW_CONFIDENCE_KEY], with_tokens)


def spans_to_entities(spans: Iterable[Span], with_tokens: bool = False) -> List[Dict]:
    """`spans` as JSON-ready entity dicts (see `doc_to_entities`)."""
    has_confidence = Span.has_extension(CONFIDENCE_ATTR)
    entities = []
    for ent in spans:
        entity = {
            "start_char": ent.start_char,
            "end_char": ent.end_char,
            "text": ent.text,
            "label": ent.label_,
            "confidence": ent._.get(CONFIDENCE_ATTR) if has_confidence else None,
        }
        if with_tokens:
            entity.update(start=ent.start, end=ent.end)
        entities.append(entity)
    return entities


def json_type(value) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")


def detect_format(path: Path) -> Format:
    """tokens or jsonl for .jsonl/.json files (by the first record's fields), else text."""
    if path.suffix.lower() not in (".jsonl", ".json"):
        return Format.text
    with path.open("rb") as file:
        for line in file:
            if line.strip():
                try:
                    first = loads_strict(line.removeprefix(codecs.BOM_UTF8).decode("utf8"))
                except (ValueError, RecursionError):
                    break
                return Format.tokens if isinstance(first, dict) and "tokens" in first else Format.jsonl
    return Format.jsonl


def parse_record(line: bytes, fmt: Format, max_length: int) -> Dict:
    """One input line as a record with a valid "text" or "tokens" field."""
    try:
        line = line.decode("utf8").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise BadRecord(f"invalid UTF-8 (byte {err.start})") from None
    if fmt == Format.text:
        record = {"text": line}
    else:
        try:
            record = loads_strict(line)
        except BadRecord as err:
            raise BadRecord(str(err), lenient_id(line)) from None
        except (ValueError, RecursionError) as err:
            raise BadRecord(f"invalid JSON: {err}") from None
        if not isinstance(record, dict):
            raise BadRecord(f"expected a JSON object, got {json_type(record)}")
        try:
            check_fields(record, fmt, max_length)
        except BadRecord as err:
            raise BadRecord(str(err), record.get("id", NO_ID)) from None
    if fmt == Format.text:
        check_fields(record, fmt, max_length)
    return record


def lenient_id(line: str) -> Any:
    """The "id" of a record that is JSON only to Python (NaN, Infinity), so
    its reject can name it; NO_ID if there is none or it is not strict JSON."""
    try:
        record = json.loads(line)
        record_id = record["id"]
        dumps(record_id)
    except Exception:
        return NO_ID
    return record_id


def check_fields(record: Dict, fmt: Format, max_length: int) -> None:
    """Raise BadRecord unless `record` has a valid "text" or "tokens" field."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf8")
    except UnicodeEncodeError:
        raise BadRecord("unpaired surrogate escape (\\ud800-\\udfff), not valid Unicode") from None
    field = "tokens" if fmt == Format.tokens else "text"
    if field not in record:
        raise BadRecord(f"missing field {field!r}")
    if fmt == Format.tokens:
        tokens = record["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(token, str) and token for token in tokens):
            raise BadRecord("'tokens' must be an array of non-empty strings")
        for i, token in enumerate(tokens, 1):
            found = FORBIDDEN_IN_TOKENS.search(token)
            if found:
                raise BadRecord(
                    f"token {i} contains U+{ord(found.group()):04X}, a control or zero-width character "
                    "(not allowed in tokens)"
                )
    elif not isinstance(record["text"], str):
        raise BadRecord(f"'text' must be a string, got {json_type(record['text'])}")
    elif len(record["text"]) > max_length:
        raise BadRecord(f"'text' has {len(record['text'])} characters, more than nlp.max_length ({max_length})")


def read_records(
    lines: Iterator[bytes], fmt: Format, max_length: int, report: Callable[[int, BadRecord], None]
) -> Iterator[Record]:
    """A Record for each good line, lazily; each bad line goes to
    `report(line_number, error)` (which may raise to stop)."""
    offset = 0
    for line_no, line in enumerate(lines, 1):
        offset += len(line)
        if line_no == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        if fmt != Format.text and not line.strip():
            continue
        try:
            record = parse_record(line, fmt, max_length)
        except BadRecord as err:
            report(line_no, err)
            continue
        yield Record(record, line_no, offset)


def default_rejects_path(output: Path) -> Path:
    """out.jsonl → out.rejects.jsonl (beside the output)."""
    return output.with_name(f"{output.stem if output.suffix else output.name}.rejects.jsonl")


def to_input(nlp: Language, record: Dict, fmt: Format) -> Any:
    """What `nlp.pipe` takes for a record: its text, or a Doc of its tokens."""
    return Doc(nlp.vocab, words=record["tokens"]) if fmt == Format.tokens else record["text"]
