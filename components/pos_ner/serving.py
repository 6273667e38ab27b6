"""HTTP API for a trained pipeline (FastAPI + uvicorn).

POST /ner with {"text": "..."} or {"texts": ["...", ...]} returns
{"results": [{"entities": [...]}, ...]}, entities as `pos-ner predict` writes
them. GET /health names the model (never the path it was loaded from); GET
/metrics is for Prometheus. GET / is a page to try the model (`pos_ner/page`:
it calls POST /ner and marks the entities up with displaCy's entity template
and colours; everything it loads comes from this app, and its Content Security
Policy allows no inline or foreign script). The request and response bodies are pydantic
models, so /openapi.json describes what the service really accepts.

Every error, client or server, has one shape:
{"error": kind, "field": ... or null, "message": ..., "request_id": ...}, with
400 (unparsable body), 408 (body too slow), 413 (body or token count too
large), 415 (not JSON), 422 (valid JSON, invalid request) or 500 (a bug; the
traceback goes to the server log under the request id, never to the client).
Every response carries an X-Request-ID header.

Why the service is built the way it is:

- Scheduling. spaCy pipelines are not thread-safe, and `nlp.memory_zone()`
  switches process-wide state (the vocab's and string store's memory pool), so
  all pipeline work runs in one worker thread. One lock held for a whole
  request would queue a one-sentence request behind a 4,000-token one for its
  full duration; instead each request is a job cut into steps (count the
  tokens, then batches of at most `batch_tokens` tokens / `batch_size` texts),
  and the worker runs one step of each waiting job in turn (round-robin). A
  small request (one step: its count and its only batch) then waits for at
  most one batch of each request ahead of it, not for whole requests. A single text is never split, so the worst wait is
  bounded by `max_chars` too. The batches of concurrent requests are run
  together, up to the same limits, in one `nlp.pipe` call: a transformer
  pipeline spends most of a one-sentence call on per-call overhead, so four
  clients sending one sentence each share one call instead of queueing for
  four (micro-batching, rather than worker processes that would each hold a
  copy of the model and compete for the same cores). If a shared call fails,
  its batches are rerun one by one, so only the failing request gets the 500.
- Work per request is bounded in tokens (`max_request_tokens`, 413
  `too_many_tokens`), since transformer time grows with tokens, not texts or
  bytes. Whitespace-separated words are a lower bound on spaCy tokens, so an
  obviously oversized request is refused before it reaches the worker; the
  exact count uses the pipeline's own tokenizer in the worker, one text per
  step, stopping at the limit. Tokenizing is cheap except on long runs without
  spaces (quadratic in the run's length of characters it splits off: 9,000 "!"
  take 25 s, 2,000 take 1.7 s; 2,000 dots, one token, take 9 ms), so words
  longer than `max_word_chars` (default 2,000, enough for a table of contents'
  dot leaders or a long URL) are refused (422 `word_too_long`): that bounds what
  counting one text can cost.
- Memory. Each step runs inside `nlp.memory_zone()`, so strings and lexemes
  that a request's unseen words add to the vocab are freed afterwards instead
  of growing the process forever. Docs made in a zone must not be touched
  after it (their lexemes are freed), so entities are turned into plain dicts
  inside the zone; zones must not overlap, which the single worker guarantees.
- Slow clients. A body must arrive in full within `body_timeout` seconds of the
  request's headers (408, then the connection is closed); a client trickling
  bytes cannot extend the deadline. Open connections are bounded by uvicorn's
  `limit_concurrency` (`make_server`), which answers 503 past the limit
  before the app sees the request.
- Failures. `RequestGuard`, a plain ASGI middleware, answers any unexpected
  exception with a JSON 500 and does not re-raise it, so uvicorn keeps the
  keep-alive connection open (uvicorn itself would close it).
"""

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, InvalidStateError
from contextlib import asynccontextmanager
from pathlib import Path
from typing import (
    Annotated,
    Any,
    AsyncIterator,
    Callable,
    Deque,
    Dict,
    Generator,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
)

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from spacy.language import Language
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .io.records import doc_to_entities, json_type

PAGE_DIR = Path(__file__).parent / "page"
# The page's own files, by path: (file in PAGE_DIR, media type).
PAGE_ASSETS = {
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = {
    # Scripts only from this app's own files (no inline script, no CDN): text that escaped
    # escaping still could not run. displaCy's markup styles its elements inline.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# displaCy's colours have no CoNLL-2003 names: PER takes PERSON's, MISC (mostly
# nationalities, events and works) NORP's.
LABEL_COLOR_ALIASES = {"PER": "PERSON", "MISC": "NORP"}
ENDPOINTS = ("/", "/ner", "/health", "/metrics", *PAGE_ASSETS)
logger = logging.getLogger(__name__)
# A client's X-Request-ID is kept if it looks like an id (it ends up in logs), else replaced.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ApiError(Exception):
    """A client error: HTTP status, kind (a metrics label), offending field, message.
    `close` asks for the connection to be closed after the answer (its state is unknown)."""

    def __init__(self, status: int, kind: str, field: Optional[str], message: str, close: bool = False):
        super().__init__(message)
        self.status, self.kind, self.field, self.message, self.close = status, kind, field, message, close


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


class ErrorBody(BaseModel):
    error: str = Field(description="The error kind, e.g. invalid_json, too_many_tokens, internal")
    field: Optional[str] = Field(description="The offending part of the request, e.g. texts[1]; null if none")
    message: str
    request_id: str = Field(description="Also in the X-Request-ID header and the server log")


class HealthResponse(BaseModel):
    status: str
    model: str = Field(description="The model's name (lang_name from its meta)")
    version: str = Field(description="The model's version")
    spacy_version: str = Field(description="The spaCy versions the model was built for")
    pipeline: List[str]


def request_models(max_texts: int, max_chars: int) -> Tuple[Type[BaseModel], Type[BaseModel]]:
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


def parse_texts(body: bytes, models: Tuple[Type[BaseModel], Type[BaseModel]]) -> List[str]:
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


class Batch:
    """What a job yields to have texts run through the pipeline: the worker
    sends back their results (`run_batch`'s, one per text, in order), possibly
    after running them in one call with other jobs' batches."""

    __slots__ = ("texts", "tokens")

    def __init__(self, texts: List[str], tokens: int):
        self.texts, self.tokens = texts, tokens


# A job yields None to take turns, or a Batch and gets its results sent back.
Job = Generator[Optional[Batch], Optional[List[Any]], Any]


class _Entry:
    __slots__ = ("job", "future", "batch")

    def __init__(self, job: Job, future: "Future[Any]"):
        self.job, self.future = job, future
        self.batch: Optional[Batch] = None  # yielded, waiting for its results


class RoundRobinWorker:
    """Runs jobs in one thread, one step at a time, taking turns, and runs the
    batches that waiting jobs yield together.

    A job is a generator: each step runs it to its next `yield`, and its return
    value is the job's result. It yields None between steps of its own work, or
    a `Batch` of texts: the worker then sends it `run_batch(texts)`. A worker
    step advances every queued job that is not waiting for results by one step,
    in queue order, then makes one `run_batch` call over the waiting batches,
    the longest-waiting first, up to `max_tokens` tokens and `max_texts` texts
    (the first always goes). Concurrent one-text requests therefore share one
    pipeline call instead of queueing for a call each. If a shared call
    raises, each of its batches is run on its own, so only the job whose texts
    fail gets the error (thrown into it). A job that has taken its step goes
    to the back of the queue, behind the jobs submitted meanwhile; a waiting
    batch that did not fit keeps its place at the front. The thread starts with
    the first job and stops with `close()` (the app's shutdown); a later job
    starts it again.
    """

    def __init__(
        self,
        run_batch: Optional[Callable[[List[str]], List[Any]]] = None,
        max_tokens: int = 512,
        max_texts: int = 32,
        name: str = "ner-worker",
    ):
        self.run_batch, self.max_tokens, self.max_texts, self.name = run_batch, max_tokens, max_texts, name
        self._jobs: Deque[_Entry] = deque()
        self._wake = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._closing = False

    def submit(self, job: Job) -> "Future[Any]":
        """Queue `job`; the future has its result or the exception it raised."""
        future: Future[Any] = Future()
        with self._wake:
            self._jobs.append(_Entry(job, future))
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._wake.notify()
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Finish the running step, fail the queued jobs and stop the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._wake:
            while self._jobs:
                entry = self._jobs.popleft()
                entry.job.close()
                settle(entry.future, error=RuntimeError("the server is shutting down"))

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._jobs and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                queued = list(self._jobs)
                self._jobs.clear()
            for entry in queued:
                if entry.batch is None:
                    self._step(entry, None)
            waiting = [entry for entry in queued if entry.batch is not None and self._alive(entry)]
            chosen = self._choose(waiting)
            if chosen:
                self._run_batches(chosen)
            chosen_ids = {id(entry) for entry in chosen}
            front = [entry for entry in waiting if id(entry) not in chosen_ids and self._alive(entry)]
            front_ids = {id(entry) for entry in front}
            # stepped and chosen jobs go behind the ones submitted meanwhile; waiting batches stay in front
            back = [entry for entry in queued if id(entry) not in front_ids and self._alive(entry)]
            with self._wake:
                arrived = list(self._jobs)
                self._jobs.clear()
                self._jobs.extend(front + arrived + back)

    def _alive(self, entry: _Entry) -> bool:
        return not entry.future.done()

    def _step(self, entry: _Entry, results: Optional[List[Any]], error: Optional[BaseException] = None) -> bool:
        """Run the job to its next yield (sending it `results`, or throwing
        `error` into it); False once it has finished, failed or was cancelled."""
        if entry.future.cancelled():  # its request is gone: don't spend the pipeline on it
            entry.job.close()
            return False
        try:
            value = entry.job.throw(error) if error is not None else entry.job.send(results)
        except StopIteration as done:
            settle(entry.future, result=done.value)
            return False
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting request, which reports it
            settle(entry.future, error=err)
            return False
        entry.batch = value if isinstance(value, Batch) else None
        return True

    def _choose(self, waiting: List[_Entry]) -> List[_Entry]:
        """The waiting batches that go into the next call, in queue order, within the limits."""
        chosen: List[_Entry] = []
        tokens = texts = 0
        for entry in waiting:
            if entry.future.cancelled():
                entry.job.close()
                continue
            batch = entry.batch
            assert batch is not None
            if chosen and (tokens + batch.tokens > self.max_tokens or texts + len(batch.texts) > self.max_texts):
                continue
            chosen.append(entry)
            tokens, texts = tokens + batch.tokens, texts + len(batch.texts)
        return chosen

    def _run_batches(self, chosen: List[_Entry]) -> None:
        if self.run_batch is None:
            raise RuntimeError("a job yielded a Batch, but the worker has no run_batch")
        texts = [text for entry in chosen for text in entry.batch.texts]  # type: ignore[union-attr]
        try:
            results = self.run_batch(texts)
        except BaseException as err:  # noqa: BLE001 - handed to the job whose texts fail
            if len(chosen) == 1:
                self._step(chosen[0], None, err)
            else:  # one by one, so only the failing job gets the error
                for entry in chosen:
                    self._run_batches([entry])
            return
        offset = 0
        for entry in chosen:
            n = len(entry.batch.texts)  # type: ignore[union-attr]
            self._step(entry, results[offset : offset + n])
            offset += n


def settle(future: "Future[Any]", result: Any = None, error: Optional[BaseException] = None) -> None:
    """Set a future's outcome unless it was cancelled meanwhile (its request went away)."""
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def batches(lengths: Sequence[int], max_tokens: int, max_texts: int) -> Iterator[List[int]]:
    """Indices of consecutive texts, packed up to `max_tokens` tokens and `max_texts` texts (at least one text)."""
    batch: List[int] = []
    tokens = 0
    for i, length in enumerate(lengths):
        if batch and (tokens + length > max_tokens or len(batch) >= max_texts):
            yield batch
            batch, tokens = [], 0
        batch.append(i)
        tokens += length
    if batch:
        yield batch


class Metrics:
    """The service's Prometheus metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ner_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("ner_errors", "Rejected or failed requests", ["kind"], registry=self.registry)
        self.latency = Histogram(
            "ner_request_duration_seconds", "Request latency", ["endpoint"], registry=self.registry
        )
        self.texts = Counter("ner_texts", "Texts processed", registry=self.registry)
        self.words = Counter("ner_words", "Words (tokens) processed", registry=self.registry)


class BodyTimeout(ApiError):
    def __init__(self, seconds: float):
        super().__init__(408, "body_timeout", "body", f"the body did not arrive within {seconds:g} s", close=True)


class RequestGuard:
    """ASGI middleware around the whole app: request ids, request metrics,
    the body deadline and the catch-all for unexpected exceptions."""

    def __init__(self, app: ASGIApp, metrics: Metrics, body_timeout: float):
        self.app, self.metrics, self.body_timeout = app, metrics, body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        status: Optional[int] = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise BodyTimeout(self.body_timeout) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, timed_receive, send_with_id)
        except Exception:
            logger.exception("request %s (%s %s) failed", request_id, scope["method"], scope["path"])
            self.metrics.errors.labels("internal").inc()
            if status is not None:
                raise  # the answer has begun: nothing sane to send, uvicorn drops the connection
            message = "internal error; the server log has the details under this request id"
            response = JSONResponse(error_body(request_id, "internal", None, message), status_code=500)
            await response(scope, timed_receive, send_with_id)
        finally:
            self.metrics.requests.labels(endpoint, str(status or 500)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


def error_body(request_id: str, kind: str, field: Optional[str], message: str) -> Dict[str, Any]:
    return {"error": kind, "field": field, "message": message, "request_id": request_id}


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "") or uuid.uuid4().hex


# Seconds of token counting after which a job lets the others take a turn.
COUNT_SLICE_S = 0.05
ERROR_RESPONSES: Dict[int, str] = {
    400: "The body is not UTF-8 JSON (NaN, Infinity and repeated keys are refused)",
    408: "The body did not arrive in time; the connection is closed",
    413: "The body or its token count is over the limit",
    415: "The body is not declared as JSON",
    422: "Valid JSON, but not a valid request",
    500: "An internal error; details in the server log under the request id",
}
REQUEST_ID_HEADER = {"X-Request-ID": {"description": "The request's id", "schema": {"type": "string"}}}


def entity_labels(nlp: Language) -> List[str]:
    """The labels of the components that set `doc.ents`, in their order."""
    labels: List[str] = []
    for name, component in nlp.pipeline:
        if "doc.ents" in nlp.get_pipe_meta(name).assigns:
            labels.extend(label for label in getattr(component, "labels", ()) if label not in labels)
    return labels


def page_html(nlp: Language, health: Dict[str, Any], max_chars: int) -> str:
    """GET /'s page: pos_ner/page/index.html with its settings in a JSON data
    block. The data block holds displaCy's entity templates and colours, so the
    page marks entities up exactly as `displacy.render(doc, style="ent")` does."""
    from spacy.displacy.render import DEFAULT_LABEL_COLORS
    from spacy.displacy.templates import TPL_ENT, TPL_ENTS

    labels = entity_labels(nlp)
    colors = dict(DEFAULT_LABEL_COLORS)
    for label, alias in LABEL_COLOR_ALIASES.items():
        colors.setdefault(label, DEFAULT_LABEL_COLORS[alias])
    settings = {
        "model": health["model"],
        "version": health["version"],
        "pipeline": health["pipeline"],
        "labels": labels,
        "colors": colors,
        "default_color": "#ddd",  # displaCy's background for labels without a colour
        "templates": {"ent": TPL_ENT.strip(), "ents": TPL_ENTS.strip()},
        "max_chars": max_chars,
    }
    # Inside <script>, "</script>" or "<!--" in a value would end the block: < > & as \u escapes.
    data = json.dumps(settings).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (PAGE_DIR / "index.html").read_text(encoding="utf-8").replace("<!--CONFIG-->", data)


def create_app(
    nlp: Language,
    model_name: Optional[str] = None,
    max_texts: int = 64,
    max_chars: int = 10_000,
    max_body_bytes: int = 4 * 1024 * 1024,
    batch_size: int = 32,
    *,
    max_request_tokens: int = 4_000,
    batch_tokens: int = 512,
    max_word_chars: int = 2_000,
    body_timeout: float = 10.0,
) -> FastAPI:
    """The API around a loaded pipeline; its metrics registry is `app.state.registry`.

    `model_name` overrides the name /health reports (default: lang_name from
    the model's meta). `max_request_tokens` bounds one request's work,
    `batch_tokens` and `batch_size` one scheduling step's (see the module
    docstring), `body_timeout` the seconds a client has to send its body.
    `max_word_chars` bounds the characters between two spaces: spaCy's
    tokenizer splits suffixes off a chunk one at a time, rescanning it each
    time, so 9,000 "!" in a row took it 25 s on a busy 2-core CPU, 1,000 0.2 s.
    """
    if max_chars > nlp.max_length:
        raise ValueError(f"max_chars ({max_chars}) exceeds nlp.max_length ({nlp.max_length})")
    meta = nlp.meta
    health_body = {
        "status": "ok",
        "model": model_name or f"{meta['lang']}_{meta['name']}",
        "version": str(meta.get("version", "")),
        "spacy_version": str(meta.get("spacy_version", "")),
        "pipeline": nlp.pipe_names,
    }

    def run_batch(texts: List[str]) -> List[Dict[str, Any]]:
        """One pipeline call, for the batches of one or several requests."""
        with nlp.memory_zone():  # plain dicts out: the docs' memory is freed with the zone
            return [{"entities": doc_to_entities(doc)} for doc in nlp.pipe(texts, batch_size=len(texts))]

    worker = RoundRobinWorker(run_batch, max_tokens=batch_tokens, max_texts=batch_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.get_running_loop().run_in_executor(None, worker.close)

    app = FastAPI(title="NER API", lifespan=lifespan)
    metrics = Metrics()
    app.state.registry = metrics.registry
    app.state.worker = worker
    app.add_middleware(RequestGuard, metrics=metrics, body_timeout=body_timeout)
    models = request_models(max_texts, max_chars)
    request_schema = {"oneOf": [model.model_json_schema() for model in models]}

    def annotate(texts: List[str], field: str) -> Job:
        """The job for one request: count its tokens (stopping at the limit),
        then hand its batches to the worker, one per step. Counting is cheap, so it takes turns
        only once a step has spent `COUNT_SLICE_S` on it: a one-text request is
        then a single step and waits for its turn once, not twice."""
        lengths: List[int] = []
        step_start = time.perf_counter()
        for i, text in enumerate(texts):
            with nlp.memory_zone():
                lengths.append(len(nlp.make_doc(text)))
            if sum(lengths) > max_request_tokens:
                count = f"{sum(lengths)}" if len(lengths) == len(texts) else f"at least {sum(lengths)}"
                message = f"'{field}' has {count} tokens, more than the limit of {max_request_tokens} per request"
                raise ApiError(413, "too_many_tokens", field, message)
            if time.perf_counter() - step_start > COUNT_SLICE_S and i + 1 < len(texts):
                yield None
                step_start = time.perf_counter()
        results: List[Dict[str, Any]] = []
        for batch in batches(lengths, batch_tokens, batch_size):
            # the first batch goes with the count; the worker may run it together with other requests' batches
            done = yield Batch([texts[i] for i in batch], sum(lengths[i] for i in batch))
            if done is None:
                raise RuntimeError("the worker resumed a job without its batch's results")
            results.extend(done)
        metrics.texts.inc(len(texts))
        metrics.words.inc(sum(lengths))
        return results

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> Response:
        metrics.errors.labels(err.kind).inc()
        headers = {"Connection": "close"} if err.close else None
        body = error_body(request_id_of(request), err.kind, err.field, err.message)
        return JSONResponse(body, status_code=err.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        """Starlette's own errors (404, 405) in the API's error shape."""
        kind = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        metrics.errors.labels(kind).inc()
        body = error_body(request_id_of(request), kind, None, str(err.detail))
        return JSONResponse(body, status_code=err.status_code, headers=err.headers)

    @app.post(
        "/ner",
        response_model=NerResponse,
        responses={
            200: {"headers": REQUEST_ID_HEADER},
            **{
                status: {"model": ErrorBody, "description": text, "headers": REQUEST_ID_HEADER}
                for status, text in ERROR_RESPONSES.items()
            },
        },
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": request_schema}}}},
    )
    async def ner(request: Request) -> Dict[str, Any]:
        """Entities of one text or of each of several texts."""
        # The body is parsed here, not by FastAPI, for strict JSON and the API's own error kinds.
        check_content_type(request)
        texts = parse_texts(await read_body(request, max_body_bytes), models)
        field = "text" if len(texts) == 1 else "texts"
        split = [text.split() for text in texts]
        for i, words in enumerate(split):
            longest = max(words, key=len, default="")
            if len(longest) > max_word_chars:
                where = field if field == "text" else f"texts[{i}]"
                message = f"'{where}' has a word of {len(longest)} characters, more than the limit of {max_word_chars}"
                raise ApiError(422, "word_too_long", where, message)
        words = sum(len(words) for words in split)  # ≤ the token count, and cheap
        if words > max_request_tokens:
            message = f"'{field}' has at least {words} tokens, more than the limit of {max_request_tokens} per request"
            raise ApiError(413, "too_many_tokens", field, message)
        return {"results": await asyncio.wrap_future(worker.submit(annotate(texts, field)))}

    page = page_html(nlp, health_body, max_chars)
    assets = {path: ((PAGE_DIR / name).read_bytes(), media) for path, (name, media) in PAGE_ASSETS.items()}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Response:
        """The page to try the model."""
        return HTMLResponse(page, headers=PAGE_HEADERS)

    def asset_route(content: bytes, media: str) -> Any:
        async def asset() -> Response:
            return Response(content, media_type=media, headers=PAGE_HEADERS)

        return asset

    for path, (content, media) in assets.items():
        app.add_api_route(path, asset_route(content, media), methods=["GET"], include_in_schema=False)

    @app.get("/health", response_model=HealthResponse, responses={200: {"headers": REQUEST_ID_HEADER}})
    async def health() -> Dict[str, Any]:
        """The loaded model's name and version, and its pipeline."""
        return health_body

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "headers": REQUEST_ID_HEADER}},
    )
    async def metrics_text() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


# uvicorn's logging, plus the service's own logger (failed requests' tracebacks) on the same handler.
def log_config() -> Dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = json.loads(json.dumps(LOGGING_CONFIG))
    config["loggers"][__name__] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def make_server(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_connections: int = 64,
    log_config: Optional[Dict[str, Any]] = None,
    log_level: str = "info",
) -> Any:
    """A uvicorn server for `app` that serves at most `max_connections` open
    connections at a time; a request arriving on one more gets uvicorn's 503
    (plain text, `Connection: close`: it never reaches the app, so it has no
    request id and is not in /metrics). uvicorn counts the connection the
    request came on among the open ones, hence the + 1."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        limit_concurrency=max_connections + 1,
        log_config=log_config,
        log_level=log_level,
    )
    return uvicorn.Server(config)
