"""The API's error model: every error, client or server, has one shape,
{"error": kind, "field": ... or null, "message": ..., "request_id": ...}
(`ErrorBody`), with 400 (unparsable body), 408 (body too slow), 413 (body or
token count too large), 415 (not JSON), 422 (valid JSON, invalid request) or
500 (a bug: the traceback goes to the server log under the request id, never
to the client). Starlette's own errors (404, 405) take the same shape. Every
error's kind is counted in the `ner_errors` metric.
"""

import uuid
from typing import Any, Dict, Optional, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException

from ..io.records import json_type

ERROR_RESPONSES: Dict[int, str] = {
    400: "The body is not UTF-8 JSON (NaN, Infinity and repeated keys are refused)",
    408: "The body did not arrive in time; the connection is closed",
    413: "The body or its token count is over the limit",
    415: "The body is not declared as JSON",
    422: "Valid JSON, but not a valid request",
    500: "An internal error; details in the server log under the request id",
}
REQUEST_ID_HEADER = {"X-Request-ID": {"description": "The request's id", "schema": {"type": "string"}}}


class ApiError(Exception):
    """A client error: HTTP status, kind (a metrics label), offending field, message.
    `close` asks for the connection to be closed after the answer (its state is unknown)."""

    def __init__(self, status: int, kind: str, field: Optional[str], message: str, close: bool = False):
        super().__init__(message)
        self.status, self.kind, self.field, self.message, self.close = status, kind, field, message, close


class ErrorBody(BaseModel):
    error: str = Field(description="The error kind, e.g. invalid_json, too_many_tokens, internal")
    field: Optional[str] = Field(description="The offending part of the request, e.g. texts[1]; null if none")
    message: str
    request_id: str = Field(description="Also in the X-Request-ID header and the server log")


def error_body(request_id: str, kind: str, field: Optional[str], message: str) -> Dict[str, Any]:
    return {"error": kind, "field": field, "message": message, "request_id": request_id}


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "") or uuid.uuid4().hex


def field_name(loc: Sequence[Any]) -> str:
    """pydantic's error location as the API names fields: ('texts', 1) → texts[1]."""
    return str(loc[0]) + "".join(f"[{part}]" for part in loc[1:]) if loc else "body"


def validation_error(err: ValidationError) -> ApiError:
    """The first pydantic error as the API's 422 (kinds as before pydantic did the checking)."""
    first = err.errors()[0]
    field, limit = field_name(first["loc"]), (first.get("ctx") or {}).get("max_length")
    value = first.get("input")
    kinds = {
        "string_type": ("invalid_type", f"'{field}' must be a string, got {json_type(value)}"),
        "list_type": ("invalid_type", f"'{field}' must be an array of strings, got {json_type(value)}"),
        "too_short": ("empty_texts", f"'{field}' must not be empty"),
        "too_long": ("too_many_texts", f"'{field}' has more items than the limit of {limit}"),
        "string_too_long": ("text_too_long", f"'{field}' has more characters than the limit of {limit}"),
        "string_unicode": ("invalid_text", f"'{field}' has an unpaired surrogate escape, not valid Unicode"),
        "extra_forbidden": ("unknown_field", f"unknown field {field!r}"),
    }
    kind, message = kinds.get(first["type"], ("invalid_value", f"'{field}': {first['msg']}"))
    if kind == "too_many_texts" and isinstance(value, list):
        message = f"'{field}' has {len(value)} items, more than the limit of {limit}"
    elif kind == "text_too_long" and isinstance(value, str):
        message = f"'{field}' has {len(value)} characters, more than the limit of {limit}"
    return ApiError(422, kind, field, message)


class ErrorHandlers:
    """The app's exception handlers: `ApiError` and starlette's HTTP errors
    answered in the error shape, each kind counted in `errors`."""

    def __init__(self, errors: Counter):
        self.errors = errors

    def install(self, app: FastAPI) -> None:
        app.exception_handler(ApiError)(self.api_error)
        app.exception_handler(HTTPException)(self.http_error)

    async def api_error(self, request: Request, err: ApiError) -> Response:
        self.errors.labels(err.kind).inc()
        headers = {"Connection": "close"} if err.close else None
        body = error_body(request_id_of(request), err.kind, err.field, err.message)
        return JSONResponse(body, status_code=err.status, headers=headers)

    async def http_error(self, request: Request, err: HTTPException) -> Response:
        """Starlette's own errors (404, 405) in the API's error shape."""
        kind = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        self.errors.labels(kind).inc()
        body = error_body(request_id_of(request), kind, None, str(err.detail))
        return JSONResponse(body, status_code=err.status_code, headers=err.headers)
