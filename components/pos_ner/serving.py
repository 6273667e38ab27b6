"""HTTP API for a trained pipeline (FastAPI + uvicorn).

POST /ner with {"text": "..."} or {"texts": ["...", ...]} returns
{"results": [{"entities": [...]}, ...]}, entities as `pos-ner predict` writes
them. GET /health says which model is loaded; GET /metrics is for Prometheus.
Client errors get 400/413/422 and {"error": kind, "field": ..., "message": ...}.
"""

import json
import threading
import time
from typing import List, Optional

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from spacy.language import Language

from .io.records import doc_to_entities, json_type

ENDPOINTS = ("/ner", "/health", "/metrics")


class ApiError(Exception):
    """A client error: HTTP status, kind (a metrics label), offending field, message."""

    def __init__(self, status: int, kind: str, field: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.field, self.message = status, kind, field, message


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, or a 413 as soon as it is known to exceed `max_bytes`."""
    too_large = ApiError(413, "body_too_large", "body", f"the body is larger than {max_bytes} bytes")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def parse_texts(body: bytes, max_texts: int, max_chars: int) -> List[str]:
    """The texts of a /ner request body, validated."""
    try:
        payload = json.loads(body.decode("utf8"))
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
    if "text" in payload:
        named = [("text", payload["text"])]
    else:
        texts = payload["texts"]
        if not isinstance(texts, list):
            raise ApiError(422, "invalid_type", "texts", f"'texts' must be an array of strings, got {json_type(texts)}")
        if not texts:
            raise ApiError(422, "empty_texts", "texts", "'texts' must not be empty")
        if len(texts) > max_texts:
            raise ApiError(
                422, "too_many_texts", "texts", f"'texts' has {len(texts)} items, more than the limit of {max_texts}"
            )
        named = [(f"texts[{i}]", text) for i, text in enumerate(texts)]
    for field, text in named:
        if not isinstance(text, str):
            raise ApiError(422, "invalid_type", field, f"'{field}' must be a string, got {json_type(text)}")
        if len(text) > max_chars:
            raise ApiError(
                422, "text_too_long", field, f"'{field}' has {len(text)} characters, more than the limit of {max_chars}"
            )
        try:
            text.encode("utf8")
        except UnicodeEncodeError:
            message = f"'{field}' has an unpaired surrogate escape, not valid Unicode"
            raise ApiError(422, "invalid_text", field, message) from None
    return [text for _, text in named]


def create_app(
    nlp: Language,
    model_name: Optional[str] = None,
    max_texts: int = 64,
    max_chars: int = 10_000,
    max_body_bytes: int = 4 * 1024 * 1024,
    batch_size: int = 32,
) -> FastAPI:
    """The API around a loaded pipeline; its metrics registry is `app.state.registry`."""
    if max_chars > nlp.max_length:
        raise ValueError(f"max_chars ({max_chars}) exceeds nlp.max_length ({nlp.max_length})")
    model_name = model_name or f"{nlp.meta['lang']}_{nlp.meta['name']}"
    app = FastAPI(title="NER API")
    registry = app.state.registry = CollectorRegistry()
    requests = Counter("ner_requests", "HTTP requests", ["endpoint", "status"], registry=registry)
    errors = Counter("ner_errors", "Rejected requests", ["kind"], registry=registry)
    latency = Histogram("ner_request_duration_seconds", "Request latency", ["endpoint"], registry=registry)
    texts_done = Counter("ner_texts", "Texts processed", registry=registry)
    words_done = Counter("ner_words", "Words (tokens) processed", registry=registry)
    lock = threading.Lock()  # one nlp.pipe at a time: spaCy pipelines are not guaranteed thread-safe

    def annotate(texts: List[str]) -> List[dict]:
        with lock:
            docs = list(nlp.pipe(texts, batch_size=batch_size))
        texts_done.inc(len(docs))
        words_done.inc(sum(len(doc) for doc in docs))
        return [{"entities": doc_to_entities(doc)} for doc in docs]

    @app.middleware("http")
    async def observe(request: Request, call_next):
        endpoint = request.url.path if request.url.path in ENDPOINTS else "other"
        start, status = time.perf_counter(), 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            requests.labels(endpoint, str(status)).inc()
            latency.labels(endpoint).observe(time.perf_counter() - start)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        errors.labels(err.kind).inc()
        return JSONResponse({"error": err.kind, "field": err.field, "message": err.message}, status_code=err.status)

    @app.post("/ner")
    async def ner(request: Request):
        texts = parse_texts(await read_body(request, max_body_bytes), max_texts, max_chars)
        return {"results": await run_in_threadpool(annotate, texts)}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, "pipeline": nlp.pipe_names}

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
