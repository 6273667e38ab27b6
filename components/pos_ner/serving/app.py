"""The app: `create_app` puts a loaded pipeline behind POST /ner, GET /health
(the model's name, never the path it was loaded from), GET /metrics
(Prometheus) and GET / (the page), and turns each /ner request into a job
for the scheduler.

- Work per request is bounded in tokens (`max_request_tokens`, 413
  `too_many_tokens`), since transformer time grows with tokens, not texts or
  bytes. Whitespace-separated words are a lower bound on spaCy tokens, so an
  obviously oversized request is refused before it reaches the worker; the
  exact count uses the pipeline's own tokenizer in the worker, one text per
  step, stopping at the limit. Words longer than `max_word_chars` are refused
  first (422 `word_too_long`): tokenizing a run without spaces costs time
  quadratic in its length, so this bounds what counting one text can cost.
- Memory: each step runs inside `nlp.memory_zone()`, so strings and lexemes
  that a request's unseen words add to the vocab are freed afterwards instead
  of growing the process forever. Docs made in a zone must not be touched
  after it, so entities are turned into plain dicts inside the zone.
- Confidence thresholds: a request's "min_confidence", else the service's
  default (`min_confidence`, `pos-ner serve --min-confidence`), split each of
  its results' entities into "entities" and "low_confidence" in its own job,
  after the pipeline call it may have shared with other requests, so one
  request's thresholds never touch another's results. Without either, the
  results are the pipeline's: "low_confidence" only where the model's own
  `min_confidence` made the span group.
"""

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Dict, List, Optional, Union

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from spacy.language import Language

from ..io.records import LOW_CONFIDENCE_FIELD, doc_to_entities, low_confidence_entities
from ..thresholds import MinConfidence, Thresholds
from .errors import ERROR_RESPONSES, REQUEST_ID_HEADER, ApiError, ErrorBody, ErrorHandlers
from .guard import RequestGuard, read_body
from .metrics import Metrics
from .page import PAGE_ASSETS, add_page_routes, page_html
from .scheduler import Batch, Job, RoundRobinWorker, batches
from .schemas import HealthResponse, NerResponse, check_content_type, parse_request, request_models

# Seconds of token counting after which a job lets the others take a turn.
COUNT_SLICE_S = 0.05
ENDPOINTS = ("/", "/ner", "/health", "/metrics", *PAGE_ASSETS)


@dataclass(frozen=True)
class Limits:
    """An app's bounds on one request and on one scheduling step (`batch_size` texts, `batch_tokens` tokens)."""

    max_texts: int
    max_chars: int
    max_body_bytes: int
    max_request_tokens: int
    max_word_chars: int
    batch_size: int
    batch_tokens: int


class Service:
    """What one app's routes share: the pipeline and its limits, the worker, the metrics,
    the default thresholds (None: the model's own)."""

    def __init__(
        self,
        nlp: Language,
        model_name: Optional[str],
        limits: Limits,
        metrics: Metrics,
        min_confidence: Optional[Thresholds] = None,
    ):
        self.nlp, self.limits, self.metrics = nlp, limits, metrics
        self.min_confidence = min_confidence
        self.models = request_models(limits.max_texts, limits.max_chars)
        meta = nlp.meta
        self.health_body = {
            "status": "ok",
            "model": model_name or f"{meta['lang']}_{meta['name']}",
            "version": str(meta.get("version", "")),
            "spacy_version": str(meta.get("spacy_version", "")),
            "pipeline": nlp.pipe_names,
        }
        self.worker = RoundRobinWorker(self.run_batch, max_tokens=limits.batch_tokens, max_texts=limits.batch_size)

    def run_batch(self, texts: List[str]) -> List[Dict[str, Any]]:
        """One pipeline call, for the batches of one or several requests: per
        text its "entities", and "low_confidence" where the doc has the group."""
        with self.nlp.memory_zone():  # plain dicts out: the docs' memory is freed with the zone
            return [doc_result(doc) for doc in self.nlp.pipe(texts, batch_size=len(texts))]

    def annotate(self, texts: List[str], field: str, thresholds: Optional[Thresholds] = None) -> Job:
        """The job for one request: count its tokens (stopping at the limit),
        then hand its batches to the worker, one per step. Counting is cheap, so it takes turns
        only once a step has spent `COUNT_SLICE_S` on it: a one-text request is
        then a single step and waits for its turn once, not twice. `thresholds`,
        if given, split its results' entities anew (`split_result`)."""
        max_tokens = self.limits.max_request_tokens
        lengths: List[int] = []
        step_start = time.perf_counter()
        for i, text in enumerate(texts):
            with self.nlp.memory_zone():
                lengths.append(len(self.nlp.make_doc(text)))
            if sum(lengths) > max_tokens:
                count = f"{sum(lengths)}" if len(lengths) == len(texts) else f"at least {sum(lengths)}"
                message = f"'{field}' has {count} tokens, more than the limit of {max_tokens} per request"
                raise ApiError(413, "too_many_tokens", field, message)
            if time.perf_counter() - step_start > COUNT_SLICE_S and i + 1 < len(texts):
                yield None
                step_start = time.perf_counter()
        results: List[Dict[str, Any]] = []
        for batch in batches(lengths, self.limits.batch_tokens, self.limits.batch_size):
            # the first batch goes with the count; the worker may run it together with other requests' batches
            done = yield Batch([texts[i] for i in batch], sum(lengths[i] for i in batch))
            if done is None:
                raise RuntimeError("the worker resumed a job without its batch's results")
            results.extend(done if thresholds is None else [split_result(result, thresholds) for result in done])
        self.metrics.texts.inc(len(texts))
        self.metrics.words.inc(sum(lengths))
        return results

    def check_words(self, texts: List[str], field: str) -> None:
        """422 for a word over `max_word_chars`; 413 if the words alone, fewer
        than the tokens and cheap to count, are over `max_request_tokens`."""
        max_word_chars, max_tokens = self.limits.max_word_chars, self.limits.max_request_tokens
        split = [text.split() for text in texts]
        for i, words in enumerate(split):
            longest = max(words, key=len, default="")
            if len(longest) > max_word_chars:
                where = field if field == "text" else f"texts[{i}]"
                message = f"'{where}' has a word of {len(longest)} characters, more than the limit of {max_word_chars}"
                raise ApiError(422, "word_too_long", where, message)
        words = sum(len(words) for words in split)  # ≤ the token count, and cheap
        if words > max_tokens:
            message = f"'{field}' has at least {words} tokens, more than the limit of {max_tokens} per request"
            raise ApiError(413, "too_many_tokens", field, message)

    async def ner(self, request: Request) -> Dict[str, Any]:
        """Entities of one text or of each of several texts."""
        # The body is parsed here, not by FastAPI, for strict JSON and the API's own error kinds.
        check_content_type(request)
        texts, min_confidence = parse_request(await read_body(request, self.limits.max_body_bytes), self.models)
        field = "text" if len(texts) == 1 else "texts"
        self.check_words(texts, field)
        thresholds = self.min_confidence if min_confidence is None else min_confidence
        return {"results": await asyncio.wrap_future(self.worker.submit(self.annotate(texts, field, thresholds)))}

    async def health(self) -> Dict[str, Any]:
        """The loaded model's name and version, and its pipeline."""
        return self.health_body

    async def metrics_text(self) -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def doc_result(doc: Any) -> Dict[str, Any]:
    """A doc's result: {"entities": [...]}, with "low_confidence" where the doc has that span group."""
    result: Dict[str, Any] = {"entities": doc_to_entities(doc)}
    low = low_confidence_entities(doc)
    if low is not None:
        result[LOW_CONFIDENCE_FIELD] = low
    return result


def split_result(result: Dict[str, Any], thresholds: Thresholds) -> Dict[str, Any]:
    """A new result with the entities of `result` (those in "entities" and in
    "low_confidence") split anew by `thresholds`, as `apply_thresholds` splits
    a doc's: below its label's threshold to "low_confidence", else to
    "entities" (an entity without a confidence stays), each in text order."""
    candidates = [*result["entities"], *result.get(LOW_CONFIDENCE_FIELD, [])]
    kept: List[Dict[str, Any]] = []
    low: List[Dict[str, Any]] = []
    for entity in sorted(candidates, key=lambda entity: (entity["start_char"], entity["end_char"])):
        (kept if thresholds.keeps(entity["label"], entity["confidence"]) else low).append(entity)
    return {"entities": kept, LOW_CONFIDENCE_FIELD: low}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At shutdown, the worker finishes its running step and fails the queued jobs."""
    yield
    await asyncio.get_running_loop().run_in_executor(None, app.state.worker.close)


def add_ner_route(app: FastAPI, service: Service) -> None:
    """POST /ner, with its request body's schema and its error responses in the OpenAPI schema."""
    request_schema = {"oneOf": [model.model_json_schema() for model in service.models]}
    app.add_api_route(
        "/ner",
        service.ner,
        methods=["POST"],
        response_model=NerResponse,
        response_model_exclude_unset=True,  # "low_confidence" only where thresholds apply
        responses={
            200: {"headers": REQUEST_ID_HEADER},
            **{
                status: {"model": ErrorBody, "description": text, "headers": REQUEST_ID_HEADER}
                for status, text in ERROR_RESPONSES.items()
            },
        },
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": request_schema}}}},
    )


def add_info_routes(app: FastAPI, service: Service) -> None:
    """GET /health and GET /metrics."""
    app.add_api_route(
        "/health",
        service.health,
        methods=["GET"],
        response_model=HealthResponse,
        responses={200: {"headers": REQUEST_ID_HEADER}},
    )
    app.add_api_route(
        "/metrics",
        service.metrics_text,
        methods=["GET"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "headers": REQUEST_ID_HEADER}},
    )


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
    min_confidence: Union[Thresholds, MinConfidence, None] = None,
) -> FastAPI:
    """The API around a loaded pipeline; its metrics registry is `app.state.registry`.

    `model_name` overrides the name /health reports (default: lang_name from
    the model's meta). `max_request_tokens` bounds one request's work,
    `batch_tokens` and `batch_size` one scheduling step's (see
    `pos_ner.serving.scheduler`), `body_timeout` the seconds a client has to
    send its body. `max_word_chars` bounds the characters between two spaces:
    spaCy's tokenizer splits suffixes off a chunk one at a time, rescanning it
    each time, so its time grows with the square of the chunk's length.
    `min_confidence` (`Thresholds`, or a number or mapping as
    `Thresholds.from_value` takes them; a bad one raises ValueError) is the
    default for requests without their own "min_confidence"; None: the
    model's own thresholds alone.
    """
    if max_chars > nlp.max_length:
        raise ValueError(f"max_chars ({max_chars}) exceeds nlp.max_length ({nlp.max_length})")
    if min_confidence is not None and not isinstance(min_confidence, Thresholds):
        min_confidence = Thresholds.from_value(min_confidence, "min_confidence")
    metrics = Metrics()
    limits = Limits(
        max_texts=max_texts,
        max_chars=max_chars,
        max_body_bytes=max_body_bytes,
        max_request_tokens=max_request_tokens,
        max_word_chars=max_word_chars,
        batch_size=batch_size,
        batch_tokens=batch_tokens,
    )
    service = Service(nlp, model_name, limits, metrics, min_confidence)
    app = FastAPI(title="NER API", lifespan=lifespan)
    app.state.registry = metrics.registry
    app.state.worker = service.worker
    app.add_middleware(RequestGuard, metrics=metrics, body_timeout=body_timeout, endpoints=ENDPOINTS)
    ErrorHandlers(metrics.errors).install(app)
    add_ner_route(app, service)
    add_page_routes(app, page_html(nlp, service.health_body, max_chars))
    add_info_routes(app, service)
    return app
