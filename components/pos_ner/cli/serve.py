from typing import List, Optional

import typer

from ..backends import BACKEND_HELP, Backend
from ._util import app, load_pipeline, require_extras
from .predict import MIN_CONFIDENCE_OPTION, parse_min_confidence


@app.command("serve")
def serve_cli(
    model: str = typer.Argument(
        ...,
        envvar="NER_MODEL",
        help="Pipeline directory or installed package name; for --backend onnx*: the export-onnx folder",
    ),
    backend: Backend = typer.Option(
        Backend.pytorch,
        "--backend",
        envvar="NER_BACKEND",
        help=BACKEND_HELP,
    ),
    host: str = typer.Option("127.0.0.1", envvar="NER_HOST"),
    port: int = typer.Option(8000, envvar="NER_PORT"),
    max_texts: int = typer.Option(64, envvar="NER_MAX_TEXTS", min=1, help="Most texts per request"),
    max_chars: int = typer.Option(10_000, envvar="NER_MAX_CHARS", min=1, help="Most characters per text"),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, envvar="NER_MAX_BODY_BYTES", min=1),
    max_request_tokens: int = typer.Option(
        4_000, envvar="NER_MAX_REQUEST_TOKENS", min=1, help="Most tokens per request (413 past it)"
    ),
    max_word_chars: int = typer.Option(
        2_000, envvar="NER_MAX_WORD_CHARS", min=1, help="Most characters between two spaces (422 past it)"
    ),
    batch_size: int = typer.Option(32, envvar="NER_BATCH_SIZE", min=1, help="Most texts per scheduling step"),
    batch_tokens: int = typer.Option(512, envvar="NER_BATCH_TOKENS", min=1, help="Most tokens per scheduling step"),
    body_timeout: float = typer.Option(
        10.0, envvar="NER_BODY_TIMEOUT", min=0.1, help="Seconds a client has to send its body (408 past it)"
    ),
    max_connections: int = typer.Option(
        64, envvar="NER_MAX_CONNECTIONS", min=1, help="Most open connections served (503 past it)"
    ),
    min_confidence: Optional[List[str]] = typer.Option(
        None,
        MIN_CONFIDENCE_OPTION,
        envvar="NER_MIN_CONFIDENCE",
        metavar="[LABEL=]NUMBER",
        help='Default lowest confidence (0 to 1) an entity needs to stay in a result\'s "entities"; those below '
        'go to its "low_confidence". NUMBER for every label or LABEL=NUMBER for one (repeat the option; in '
        "NER_MIN_CONFIDENCE separated by spaces); replaces the model's own min_confidence. A request's "
        '"min_confidence" field replaces it for that request',
    ),
) -> None:
    """Serve MODEL's entities over HTTP."""
    thresholds = parse_min_confidence(min_confidence)
    require_extras("pos-ner serve", "serve")
    from ..serving import create_app, log_config, logger, make_server

    nlp = load_pipeline(model, backend)
    # No model_name: /health takes the name from the model's meta, never the path it was loaded from.
    api = create_app(
        nlp,
        max_texts=max_texts,
        max_chars=max_chars,
        max_body_bytes=max_body_bytes,
        batch_size=batch_size,
        max_request_tokens=max_request_tokens,
        batch_tokens=batch_tokens,
        max_word_chars=max_word_chars,
        body_timeout=body_timeout,
        min_confidence=thresholds,
    )
    server = make_server(api, host, port, max_connections=max_connections, log_config=log_config())
    # uvicorn.Config has configured logging: this line goes where uvicorn's own lines go
    logger.info(
        "limits: %d tokens and %d texts per request, body within %g s, %d connections",
        max_request_tokens,
        max_texts,
        body_timeout,
        max_connections,
    )
    if thresholds is not None:
        logger.info("min confidence by default: %s", thresholds.to_value())
    server.run()
