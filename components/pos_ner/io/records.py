"""Input and output records of `pos-ner predict` (and the entities the HTTP
API returns).

Inputs: plain text (one document per line; an empty line is an empty document
with no entities, so output line N is input line N), JSONL with a "text" field,
or JSONL with a pre-tokenized "tokens" list. JSONL records keep their other
fields; blank JSONL lines are not records and are ignored. Bad records are
reported as INPUT:LINE: reason, then skipped or fatal (--on-error).
"""

import codecs
import json
from enum import Enum
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..decoding import CONFIDENCE_ATTR


class Format(str, Enum):
    auto = "auto"
    text = "text"
    jsonl = "jsonl"
    tokens = "tokens"


class OnError(str, Enum):
    skip = "skip"
    fail = "fail"


class BadRecord(ValueError):
    """An input record that cannot be processed; the message says why."""


def doc_to_entities(doc: Doc, with_tokens: bool = False) -> List[Dict]:
    """The entities of `doc` as JSON-ready dicts (confidence is None for
    pipelines without `span._.confidence`); `with_tokens` adds token indices."""
    has_confidence = Span.has_extension(CONFIDENCE_ATTR)
    entities = []
    for ent in doc.ents:
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
                    first = json.loads(line.removeprefix(codecs.BOM_UTF8))
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
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise BadRecord(f"invalid JSON: {err}") from None
        if not isinstance(record, dict):
            raise BadRecord(f"expected a JSON object, got {json_type(record)}")
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
    elif not isinstance(record["text"], str):
        raise BadRecord(f"'text' must be a string, got {json_type(record['text'])}")
    elif len(record["text"]) > max_length:
        raise BadRecord(f"'text' has {len(record['text'])} characters, more than nlp.max_length ({max_length})")
    return record


def read_records(
    lines: Iterator[bytes], fmt: Format, max_length: int, report: Callable[[int, str], None]
) -> Iterator[Tuple[Dict, int]]:
    """(record, bytes read so far) for each good line, lazily; bad lines go
    to `report(line_number, reason)`."""
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
            report(line_no, str(err))
            continue
        yield record, offset


def to_input(nlp: Language, record: Dict, fmt: Format):
    """What `nlp.pipe` takes for a record: its text, or a Doc of its tokens."""
    return Doc(nlp.vocab, words=record["tokens"]) if fmt == Format.tokens else record["text"]
