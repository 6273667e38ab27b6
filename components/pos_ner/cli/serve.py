import typer

from ._util import app


@app.command("serve")
def serve_cli(
    model: str = typer.Argument(..., envvar="NER_MODEL", help="Pipeline directory or installed package name"),
    host: str = typer.Option("127.0.0.1", envvar="NER_HOST"),
    port: int = typer.Option(8000, envvar="NER_PORT"),
    max_texts: int = typer.Option(64, envvar="NER_MAX_TEXTS", min=1, help="Most texts per request"),
    max_chars: int = typer.Option(10_000, envvar="NER_MAX_CHARS", min=1, help="Most characters per text"),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, envvar="NER_MAX_BODY_BYTES", min=1),
    batch_size: int = typer.Option(32, envvar="NER_BATCH_SIZE", min=1),
) -> None:
    """Serve MODEL's entities over HTTP."""
    import spacy
    import uvicorn

    from ..serving import create_app

    nlp = spacy.load(model)
    api = create_app(nlp, model, max_texts, max_chars, max_body_bytes, batch_size)
    uvicorn.run(api, host=host, port=port)
