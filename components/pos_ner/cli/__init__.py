"""`pos-ner` / `python -m pos_ner`: one typer app, one module per sub-command
(in the style of spaCy's own `spacy/cli`)."""

from . import (  # noqa: F401  (each module registers its command on `app`)
    check_data,
    compare,
    convert,
    evaluate,
    export_onnx,
    grid,
    onnx_parity,
    predict,
    serve,
    train,
)
from ._util import app


def setup_cli() -> None:
    app()


__all__ = ["app", "setup_cli"]
