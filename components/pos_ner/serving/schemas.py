"""The request and response bodies, as pydantic models (so /openapi.json
describes what the service really accepts), and the parsing of a /ner body.

POST /ner takes {"text": "..."} or {"texts": ["...", ...]}, exactly one of
them, and answers {"results": [{"entities": [...]}, ...]}, one result per
text, in order, entities as `pos-ner predict` writes them. A body is parsed
strictly: UTF-8 JSON without NaN, Infinity or repeated keys (400), declared
as JSON or not declared at all (415), with no fields but these (422).
"""

import json
from typing import Annotated, Any, Dict, List, Optional, Tuple, Type

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..io.records import json_type
from .errors import ApiError, validation_error

# The two request bodies, {"text": ...} and {"texts": [...]}, as `request_models` makes them.
RequestModels = Tuple[Type[BaseModel], Type[BaseModel]]


class Entity(BaseModel):
    start_char: int = Field(description="Offset of the entity's first character")
    end_char: int = Field(description="Offset one past the entity's last character")
    text: str
    label: str
    confidence: Optional[float] = Field(
        description="Lowest per-token tag probability inside the entity, in [0, 1]; null for other pipelines"
    )


class Result(BaseModel):
    entities: List[Entity]


class NerResponse(BaseModel):
    results: List[Result] = Field(description="One result per input text, in input order")


class HealthResponse(BaseModel):
    status: str
    model: str = Field(description="The model's name (lang_name from its meta)")
    version: str = Field(description="The model's version")
    spacy_version: str = Field(description="The spaCy versions the model was built for")
    pipeline: List[str]


def request_models(max_texts: int, max_chars: int) -> RequestModels:
    """The two request bodies, with this app's limits in their JSON schema."""

    class TextRequest(BaseModel):
        """One text."""

        model_config = ConfigDict(extra="forbid", strict=True)
        text: Annotated[str, Field(max_length=max_chars)]

    class TextsRequest(BaseModel):
        """Several texts, answered in order."""

        model_config = ConfigDict(extra="forbid", strict=True)
        texts: Annotated[List[Annotated[str, Field(max_length=max_chars)]], Field(min_length=1, max_length=max_texts)]

    return TextRequest, TextsRequest


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


def parse_texts(body: bytes, models: RequestModels) -> List[str]:
    """The texts of a /ner request body, parsed strictly and validated by the request models."""
    try:
        payload = json.loads(body.decode("utf8"), parse_constant=reject_constant, object_pairs_hook=reject_duplicates)
    except UnicodeDecodeError as err:
        raise ApiError(400, "invalid_utf8", "body", f"the body is not valid UTF-8 (byte {err.start})") from None
    except (ValueError, RecursionError) as err:
        raise ApiError(400, "invalid_json", "body", f"malformed JSON: {err}") from None
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_type", "body", f"expected a JSON object, got {json_type(payload)}")
    for field in payload:
        if field not in ("text", "texts"):
            raise ApiError(422, "unknown_field", field, f"unknown field {field!r}")
    if len(payload) != 1:
        raise ApiError(
            422, "missing_field", "text", "send exactly one of 'text' (a string) or 'texts' (an array of strings)"
        )
    text_model, texts_model = models
    try:
        request = (text_model if "text" in payload else texts_model).model_validate(payload)
    except ValidationError as err:
        raise validation_error(err) from None
    return [request.text] if "text" in payload else list(request.texts)  # type: ignore[attr-defined]
