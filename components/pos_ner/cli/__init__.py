"""`pos-ner` / `python -m pos_ner`: one typer app, one module per sub-command
(in the style of spaCy's own `spacy/cli`).

`setup_cli` is the entry point of both. It makes SIGTERM clean up like Ctrl-C
(no temporary files are left behind) and turns every failure into one line on
stderr with a non-zero exit status: usage errors (exit 2), errors the commands
anticipate (their own message, usually exit 1) and, as a last resort,
`pos-ner COMMAND: error: Type: message` for anything else (exit 1). Set
POS_NER_DEBUG=1 to get the traceback instead.
"""

import signal
import sys
from typing import List, Optional

import typer

from ..io.files import handle_termination
from . import (  # noqa: F401  (each module registers its command on `app`)
    annotate,
    check_data,
    compare,
    convert,
    corpus,
    evaluate,
    export_onnx,
    grid,
    model_card,
    onnx_parity,
    predict,
    serve,
    train,
)
from ._util import app, debug, unexpected_error

TERMINATED = 128 + signal.SIGTERM


def command_name(args: List[str]) -> str:
    """The sub-command in `args` (the first argument that is not an option)."""
    return next((arg for arg in args if not arg.startswith("-")), "")


def is_usage_error(error: BaseException) -> bool:
    """A click usage error (click's own or the copy newer typer versions bundle)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return "ClickException" in names and hasattr(error, "format_message")


def setup_cli(args: Optional[List[str]] = None) -> None:
    handle_termination()
    args = sys.argv[1:] if args is None else args
    command = command_name(args)
    known = command in {info.name for info in app.registered_commands}
    prefix = f"pos-ner {command}" if known else "pos-ner"
    try:
        result = app(args=args, prog_name="pos-ner", standalone_mode=False)
    except typer.Abort:
        typer.echo(f"{prefix}: aborted", err=True)
        sys.exit(1)
    except SystemExit as exit_:
        if exit_.code == TERMINATED:
            typer.echo(f"{prefix}: terminated", err=True)
        raise
    except Exception as error:
        if is_usage_error(error):  # a bad option or argument: one line and where to look
            message = error.format_message()  # type: ignore[attr-defined]
            typer.echo(f"{prefix}: error: {message} (see '{prefix} --help')", err=True)
            sys.exit(error.exit_code)  # type: ignore[attr-defined]
        if debug():
            raise
        typer.echo(unexpected_error(prefix, error), err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


__all__ = ["app", "setup_cli"]
