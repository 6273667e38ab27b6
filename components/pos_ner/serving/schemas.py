"""The request and response bodies, as pydantic models (so /openapi.json
describes what the service really accepts), and the parsing of a /ner body.

POST /ner takes {"text": "..."} or {"texts": ["...", ...]}, exactly one of
them, and optionally "min_confidence": a number from 0 to 1 for every label,
or an object of labels to such numbers ("*": every other label), which
replaces the service's default (`pos-ner serve --min-confidence`) for this
request; null is the same as leaving it out. It answers {"results":
[{"entities": [...]}, ...]}, one result per text, in order, entities as
`pos-ner predict` writes them; where thresholds apply (the request's, the
service's or the model's own), each result also has "low_confidence", the
entities below their label's threshold. A body is parsed strictly: UTF-8 JSON
without NaN, Infinity or repeated keys (400), declared as JSON or not
declared at all (415), with no fields but these and valid values (422).
"""

import json
from typing import Annotated, Any, Dict, List, NamedTuple, Optional, Tuple, Type, Union

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..io.records import json_type
from ..thresholds import ANY_LABEL, Thresholds
from .errors import ApiError, validation_error

# The request field that sets this request's confidence thresholds.
MIN_CONFIDENCE_FIELD = "min_confidence"
Threshold = Annotated[float, Field(ge=0, le=1)]
MIN_CONFIDENCE_DESCRIPTION = (
    "Lowest confidence an entity needs to stay in 'entities'; those below go to 'low_confidence'. A number for "
    f"every label, or an object of labels to numbers ({ANY_LABEL!r}: every other label). Replaces the service's "
    "default (pos-ner serve --min-confidence) and the model's own for this request; null: the service's default."
)

# The two request bodies, {"text": ...} and {"texts": [...]}, as `request_models` makes them.
RequestModels = Tuple[Type[BaseModel], Type[BaseModel]]


class Entity(BaseModel):
    start_char: int = Field(description="Offset of the entity's first character")
    end_char: int = Field(description="Offset one past the entity's last character")
    text: str
    label: str
    confidence: Optional[float] = Field(
        description="The entity's probability, in [0, 1] (as `pos-ner calibrate` fitted it); null for other pipelines"
    )


class Result(BaseModel):
    entities: List[Entity]
    low_confidence: Optional[List[Entity]] = Field(
        None,
        description="The entities below their label's confidence threshold, taken out of 'entities'; "
        "present only where thresholds apply (the request's min_confidence, the service's default or the model's own)",
    )


class NerResponse(BaseModel):
    results: List[Result] = Field(description="One result per input text, in input order")


class HealthResponse(BaseModel):
    status: str
    model: str = Field(description="The model's name (lang_name from its meta)")
    version: str = Field(description="The model's version")
    spacy_version: str = Field(description="The spaCy versions the model was built for")
    pipeline: List[str]


def request_models(max_texts: int, max_chars: int) -> RequestModels:
    """The two request bodies, with this app's limits in their JSON schema.
    Their "min_confidence" is for the schema: `parse_request` checks it itself
    (`parse_min_confidence`), for the API's own error kinds and fields."""

    class TextRequest(BaseModel):
        """One text."""

        model_config = ConfigDict(extra="forbid", strict=True)
        text: Annotated[str, Field(max_length=max_chars)]
        min_confidence: Optional[Union[Threshold, Dict[Annotated[str, Field(min_length=1)], Threshold]]] = Field(
            None, description=MIN_CONFIDENCE_DESCRIPTION
        )

    class TextsRequest(BaseModel):
        """Several texts, answered in order."""

        model_config = ConfigDict(extra="forbid", strict=True)
        texts: Annotated[List[Annotated[str, Field(max_length=max_chars)]], Field(min_length=1, max_length=max_texts)]
        min_confidence: Optional[Union[Threshold, Dict[Annotated[str, Field(min_length=1)], Threshold]]] = Field(
            None, description=MIN_CONFIDENCE_DESCRIPTION
        )

    return TextRequest, TextsRequest


class NerRequest(NamedTuple):
    """A parsed /ner body: its texts, and its thresholds (None: the request sets none)."""

    texts: List[str]
    min_confidence: Optional[Thresholds]


def reject_constant(name: str) -> Any:
    """json.loads' parse_constant: NaN and Infinity are not JSON (RFC 8259)."""
    raise ValueError(f"{name} is not valid JSON")


def reject_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    """json.loads' object_pairs_hook: a repeated key is ambiguous, so refuse it rather than keep the last."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {duplicate!r}")
    return result


def check_content_type(request: Request) -> None:
    """415 for a body declared as anything but JSON (no Content-Type at all is taken as JSON)."""
    value = request.headers.get("content-type")
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        shown = media[:80] if media.isprintable() else repr(media[:80])
        raise ApiError(415, "unsupported_media_type", "content-type", f"send application/json, not {shown}")


def parse_request(body: bytes, models: RequestModels) -> NerRequest:
    """A /ner request body, parsed strictly: its texts validated by the request
    models, its "min_confidence" by `parse_min_confidence`."""
    try:
        payload = json.loads(body.decode("utf8"), parse_constant=reject_constant, object_pairs_hook=reject_duplicates)
    except UnicodeDecodeError as err:
        raise ApiError(400, "invalid_utf8", "body", f"the body is not valid UTF-8 (byte {err.start})") from None
    except (ValueError, RecursionError) as err:
        raise ApiError(400, "invalid_json", "body", f"malformed JSON: {err}") from None
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_type", "body", f"expected a JSON object, got {json_type(payload)}")
    for field in payload:
        if field not in ("text", "texts", MIN_CONFIDENCE_FIELD):
            raise ApiError(422, "unknown_field", field, f"unknown field {field!r}")
    if ("text" in payload) == ("texts" in payload):
        raise ApiError(
            422, "missing_field", "text", "send exactly one of 'text' (a string) or 'texts' (an array of strings)"
        )
    texts_payload = {key: value for key, value in payload.items() if key != MIN_CONFIDENCE_FIELD}
    text_model, texts_model = models
    try:
        request = (text_model if "text" in payload else texts_model).model_validate(texts_payload)
    except ValidationError as err:
        raise validation_error(err) from None
    texts = [request.text] if "text" in payload else list(request.texts)  # type: ignore[attr-defined]
    return NerRequest(texts, parse_min_confidence(payload.get(MIN_CONFIDENCE_FIELD)))


def parse_min_confidence(value: Any) -> Optional[Thresholds]:
    """A request's "min_confidence" as thresholds (None for null: the request
    sets none); 422 naming the field (min_confidence, or min_confidence[LABEL]
    for one label's number) for a bad value."""
    field = MIN_CONFIDENCE_FIELD
    if value is None:
        return None
    if isinstance(value, dict):
        for label, number in value.items():
            if not label:
                message = f"'{field}' has an empty label; use {ANY_LABEL!r} for every other label"
                raise ApiError(422, "invalid_value", field, message)
            _check_threshold(number, f"{field}[{label}]", "a number from 0 to 1")
    else:
        _check_threshold(value, field, "a number from 0 to 1 or an object of labels to numbers")
    try:
        return Thresholds.from_value(value, field)
    except ValueError as err:  # never, after the checks above
        raise ApiError(422, "invalid_value", field, str(err)) from None


def _check_threshold(value: Any, field: str, expected: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(422, "invalid_type", field, f"'{field}' must be {expected}, got {json_type(value)}")
    if not 0 <= value <= 1:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ApiError(422, "invalid_value", field, f"'{field}' must be from 0 to 1, got {shown}")
