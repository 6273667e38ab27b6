"""HTTP API for a trained pipeline (FastAPI + uvicorn).

POST /ner with {"text": "..."} or {"texts": ["...", ...]} (and optionally
"min_confidence", the request's confidence thresholds) returns
{"results": [{"entities": [...]}, ...]}, each result with "low_confidence"
too where thresholds apply; GET /health names the model, GET
/metrics is for Prometheus, GET / is a page to try the model. Every response
carries an X-Request-ID header, and every error has one JSON shape.

Each module states its own contract:

- `app`: `create_app`, the routes, and the per-request bounds on work and memory;
- `schemas`: the request and response bodies, and the strict parsing of a body;
- `errors`: the error shape, status codes and kinds;
- `guard`: request ids, request metrics, the body's size and deadline, the
  catch-all for unexpected exceptions;
- `scheduler`: one pipeline thread, round-robin over requests, their batches
  run together;
- `page`: the page and its Content Security Policy;
- `metrics`: the Prometheus metrics;
- `server`: `make_server` (bounded connections), `log_config` and `logger`.
"""

from .app import create_app
from .page import PAGE_HEADERS, entity_labels
from .scheduler import Batch, RoundRobinWorker, batches
from .server import log_config, logger, make_server

__all__ = [
    "PAGE_HEADERS",
    "Batch",
    "RoundRobinWorker",
    "batches",
    "create_app",
    "entity_labels",
    "log_config",
    "logger",
    "make_server",
]
