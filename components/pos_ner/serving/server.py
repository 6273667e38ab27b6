"""Server start-up: a uvicorn server for the app with a bound on open
connections, and a logging configuration that puts the service's logger
(`logger`, pos_ner.serving: `pos-ner serve`'s own lines and failed requests'
tracebacks) on uvicorn's handler. uvicorn is imported only when used.
"""

import json
import logging
from typing import Any, Dict, Optional

from fastapi import FastAPI

logger = logging.getLogger(__package__)  # pos_ner.serving, the one logger its modules log to


# uvicorn's logging, plus the service's own logger (failed requests' tracebacks) on the same handler.
def log_config() -> Dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = json.loads(json.dumps(LOGGING_CONFIG))
    config["loggers"][logger.name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
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
