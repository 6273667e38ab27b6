"""Pre-annotated tasks in the import formats of the annotation tools, from
the model's entities (`pos-ner select`).

- Label Studio: a JSON list of tasks `{"data": {"text", "line", the record's
  other fields}, "predictions": [{"model_version", "score", "result": [one
  "labels" result per entity, with its confidence as "score"]}]}`, for a
  labelling config whose `<Labels name="label" toName="text">` tags `<Text
  name="text" value="$text">`.
- Prodigy: JSONL as `ner.manual` reads it, `{"text", "tokens", "spans",
  "meta": {the record's own "meta" fields (a "meta" that is no object: as
  "meta"), "line", "score"}, the record's other fields}`, with the model's
  tokens, so the spans lie on them.

Offsets count Python characters (code points), as `pos-ner convert` reads
them back. A record's "line" is its line in the pool; an input field the task
format uses itself ("text", "tokens", "spans", "line") is replaced.
"""

from enum import Enum
from typing import Any, Dict, List, NamedTuple

from .records import Record

# The names of the Label Studio labelling config's tags (`from_name`, `to_name`).
LABEL_STUDIO_FROM = "label"
LABEL_STUDIO_TO = "text"


class OutputFormat(str, Enum):
    label_studio = "label-studio"
    prodigy = "prodigy"


class Token(NamedTuple):
    text: str
    start: int  # character offsets
    end: int
    ws: bool  # followed by a space


class Entity(NamedTuple):
    start: int  # character offsets
    end: int
    label: str
    confidence: float
    token_start: int
    token_end: int  # inclusive, as Prodigy writes it


class Prediction(NamedTuple):
    """What a task needs of a Doc, without the Doc (and its transformer data)."""

    text: str
    tokens: List[Token]
    entities: List[Entity]
    score: float


def prediction_from_doc(doc: Any, score: float, confidence_attr: str = "confidence") -> Prediction:
    """The text, tokens and `doc.ents` (with `span._.<confidence_attr>`) of a processed Doc."""
    tokens = [Token(t.text, t.idx, t.idx + len(t.text), bool(t.whitespace_)) for t in doc]
    entities = [
        Entity(e.start_char, e.end_char, e.label_, float(e._.get(confidence_attr)), e.start, e.end - 1)
        for e in doc.ents
    ]
    return Prediction(doc.text, tokens, entities, score)


def model_version(meta: Dict[str, Any]) -> str:
    """`lang_name-version`, as the pipeline's package is named (en_core_web_sm-3.8.0)."""
    return f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}-{meta.get('version', '0.0.0')}"


def own_fields(record: Record, *replaced: str) -> Dict[str, Any]:
    """The record's fields but "line" and `replaced`, which the caller writes itself."""
    return {key: value for key, value in record.fields.items() if key not in ("line", *replaced)}


def label_studio_task(record: Record, prediction: Prediction, version: str) -> Dict[str, Any]:
    """One Label Studio task with the model's entities as its prediction."""
    result = [
        {
            "id": f"{record.line}_{i}",
            "from_name": LABEL_STUDIO_FROM,
            "to_name": LABEL_STUDIO_TO,
            "type": "labels",
            "value": {"start": e.start, "end": e.end, "text": prediction.text[e.start : e.end], "labels": [e.label]},
            "score": e.confidence,
        }
        for i, e in enumerate(prediction.entities)
    ]
    data = {"text": prediction.text, "line": record.line, **own_fields(record, "text")}
    return {"data": data, "predictions": [{"model_version": version, "score": prediction.score, "result": result}]}


def prodigy_task(record: Record, prediction: Prediction) -> Dict[str, Any]:
    """One Prodigy task (`ner.manual`) with the model's entities as its spans."""
    tokens = [
        {"text": t.text, "start": t.start, "end": t.end, "id": i, "ws": t.ws} for i, t in enumerate(prediction.tokens)
    ]
    spans = [
        {"start": e.start, "end": e.end, "token_start": e.token_start, "token_end": e.token_end, "label": e.label}
        for e in prediction.entities
    ]
    meta = record.fields.get("meta")
    own_meta = meta if isinstance(meta, dict) else {} if meta is None else {"meta": meta}
    meta = {**own_meta, "line": record.line, "score": prediction.score}
    return {
        "text": prediction.text,
        "tokens": tokens,
        "spans": spans,
        "meta": meta,
        **own_fields(record, "text", "tokens", "spans", "meta"),
    }
