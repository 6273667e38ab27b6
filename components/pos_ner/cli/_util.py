"""The one typer app of the `pos-ner` command; each sub-command lives in its own module."""

from typing import Any, Dict, List, NoReturn

import typer

app = typer.Typer(
    name="pos-ner",
    help="Convert, train, evaluate, serve and export the pos_ner NER pipeline.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# For commands that pass `--section.key value` options on to a spaCy config.
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error to stderr and exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def parse_overrides(args: List[str]) -> Dict[str, Any]:
    """`--section.key value` pairs as spaCy's CLI parses them."""
    from spacy.cli._util import parse_config_overrides

    return parse_config_overrides(args)


def gpu_id(gpu: str) -> int:
    """'auto' → 0 if a GPU is available, else -1; otherwise the number given."""
    from thinc.util import gpu_is_available

    if gpu == "auto":
        return 0 if gpu_is_available() else -1
    try:
        return int(gpu)
    except ValueError:
        raise typer.BadParameter(f"expected 'auto', -1 or a GPU id, got {gpu!r}", param_hint="--gpu") from None
