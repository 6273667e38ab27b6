"""`pos-ner` / `python -m pos_ner`: one typer app, one module per sub-command
(in the style of spaCy's own `spacy/cli`).

`setup_cli` is the entry point of both. It makes SIGINT and SIGTERM stop a
command (exit 130 and 143), even where the process inherited them ignored, with
no temporary file left behind, and turns every failure into one line on
stderr with a non-zero exit status: usage errors (exit 2), errors the commands
anticipate (their own message, usually exit 1) and, as a last resort,
`pos-ner COMMAND: error: Type: message` for anything else (exit 1). Set
POS_NER_DEBUG=1 to get the traceback instead. (`_util.run_cli` does this for
any typer app.)
"""

from typing import List, Optional

from . import (  # noqa: F401  (each module registers its command on `app`)
    annotate,
    calibrate,
    check_data,
    convert,
    corpus,
    evaluate,
    export_onnx,
    model_card,
    onnx_parity,
    predict,
    select,
    serve,
    train,
)
from ._util import app, run_cli


def setup_cli(args: Optional[List[str]] = None) -> None:
    run_cli(app, "pos-ner", args)


__all__ = ["app", "setup_cli"]
