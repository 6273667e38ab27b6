"""The request guard: `RequestGuard`, a plain ASGI middleware around the
whole app, and `read_body`, the bound on a body's size.

- Every HTTP response carries an X-Request-ID header: the client's own if it
  looks like an id (it ends up in logs), else a new one. Route code finds it
  in `request.state.request_id`.
- Every request is counted in /metrics by endpoint and status, with its latency.
- Slow clients: a body must arrive in full within `body_timeout` seconds of
  the request's headers (408, then the connection is closed); a client
  trickling bytes cannot extend the deadline. A body over the app's
  `max_body_bytes` is refused (413) as soon as that is known, before it has
  all arrived. (Open connections are bounded by uvicorn: `make_server`.)
- Failures: an unexpected exception is answered with a JSON 500 in the API's
  error shape, its traceback logged under the request id, and not re-raised,
  so uvicorn keeps the keep-alive connection open (uvicorn itself would close
  it); only once the response has begun is it re-raised (nothing sane is left
  to send).
"""

import asyncio
import logging
import re
import time
import uuid
from typing import Collection, Optional

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_body
from .metrics import Metrics

logger = logging.getLogger(__package__)  # pos_ner.serving, the service's logger (server.log_config)
# A client's X-Request-ID is kept if it looks like an id (it ends up in logs), else replaced.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class BodyTimeout(ApiError):
    def __init__(self, seconds: float):
        super().__init__(408, "body_timeout", "body", f"the body did not arrive within {seconds:g} s", close=True)


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


class BodyDeadline:
    """An ASGI `receive` that raises `BodyTimeout` unless the whole body has
    arrived within `seconds` of its creation; messages after the body pass through."""

    def __init__(self, receive: Receive, seconds: float):
        self.receive, self.seconds = receive, seconds
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + seconds
        self.body_done = False

    async def __call__(self) -> Message:
        if self.body_done:
            return await self.receive()
        try:
            message = await asyncio.wait_for(self.receive(), max(0.0, self.deadline - self.loop.time()))
        except asyncio.TimeoutError:
            raise BodyTimeout(self.seconds) from None
        self.body_done = message["type"] != "http.request" or not message.get("more_body", False)
        return message


class SendWithId:
    """An ASGI `send` that adds the X-Request-ID header to the response and keeps its status (None until it starts)."""

    def __init__(self, send: Send, request_id: str):
        self.send, self.request_id = send, request_id
        self.status: Optional[int] = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message.get("headers", []), (b"x-request-id", self.request_id.encode("latin-1"))]
        await self.send(message)


class RequestGuard:
    """ASGI middleware around the whole app: request ids, request metrics,
    the body deadline and the catch-all for unexpected exceptions. Requests
    are counted under their path if it is one of `endpoints`, else as "other"."""

    def __init__(self, app: ASGIApp, metrics: Metrics, body_timeout: float, endpoints: Collection[str]):
        self.app, self.metrics, self.body_timeout, self.endpoints = app, metrics, body_timeout, endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"
        timed_receive, send_with_id = BodyDeadline(receive, self.body_timeout), SendWithId(send, request_id)
        start = time.perf_counter()
        try:
            await self.app(scope, timed_receive, send_with_id)
        except Exception:
            logger.exception("request %s (%s %s) failed", request_id, scope["method"], scope["path"])
            self.metrics.errors.labels("internal").inc()
            if send_with_id.status is not None:
                raise  # the answer has begun: nothing sane to send, uvicorn drops the connection
            message = "internal error; the server log has the details under this request id"
            response = JSONResponse(error_body(request_id, "internal", None, message), status_code=500)
            await response(scope, timed_receive, send_with_id)
        finally:
            self.metrics.requests.labels(endpoint, str(send_with_id.status or 500)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
