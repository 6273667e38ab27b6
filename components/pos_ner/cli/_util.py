"""The one typer app of the `pos-ner` command and the helpers its commands share
so that every failure ends in one line on stderr and a non-zero exit status:
`fail`, `load_pipeline`, `read_docbin`, `check_outputs`, `Group` and `run_cli`
(the entry point's safety net, for any typer app). Each sub-command lives in its
own module. These helpers are public: tools outside the package (the project's
scripts) build their own typer apps on them."""

import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NoReturn, Optional, Union

import typer
from typer.core import TyperGroup

from ..backends import ONNX_META_FILE, Backend, load
from ..io.files import OutputError, check_output, handle_termination, raise_if_stopped, stop_signal

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

# Set to 1 to get a traceback instead of the one-line error for unexpected exceptions.
DEBUG_ENV = "POS_NER_DEBUG"
# Long reasons (a config error lists every field) are cut to this many characters.
MAX_REASON = 300
CONFIG_BOILERPLATE = "Make sure the sections and values are formatted correctly."


class Group(TyperGroup):
    """Turns the errors every command can hit while writing (`OutputError`:
    an output that would destroy an input, a full disk, a read-only folder) into
    one line and exit status 1, the same under `CliRunner` as on the command
    line. Unexpected exceptions are left to the entry point (`run_cli`)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except OutputError as error:
            fail(str(error))


app = typer.Typer(
    name="pos-ner",
    cls=Group,
    help="Convert, train, evaluate, serve and export the pos_ner NER pipeline.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# The extras of spacy-pos-ner (setup.cfg) and the modules each brings that its commands import.
EXTRAS = {
    "evaluate": ("seqeval", "matplotlib", "sklearn"),
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "onnx": ("onnx", "onnxruntime", "onnxscript"),
    "batch": ("ray", "pyarrow", "pandas"),
}
# For commands that pass `--section.key value` options on to a spaCy config.
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}
# The exit status of a process ended by SIGTERM (`handle_termination`).
TERMINATED = 128 + signal.SIGTERM


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error to stderr and exit with `code`. After a SIGINT or
    SIGTERM the error is the signal's doing (a library turned its exception
    into one of its own): the command stops as the signal asks instead."""
    raise_if_stopped()
    typer.echo(message, err=True)
    raise typer.Exit(code)


def require_extras(command: str, *extras: str) -> None:
    """Exit 1 with `COMMAND: needs the 'EXTRA' extra: pip install ...` for the
    first of `extras` whose modules are not installed (looked up, not imported)."""
    for extra in extras:
        if any(importlib.util.find_spec(module) is None for module in EXTRAS[extra]):
            fail(f'{command}: needs the {extra!r} extra: pip install "spacy-pos-ner[{extra}]"')


def one_line(text: object, limit: int = MAX_REASON) -> str:
    """`text` (an exception's message) on one line: its non-empty lines joined,
    cut at `limit` characters."""
    joined = " ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


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


def model_location(model: str) -> Optional[Path]:
    """The folder `model` loads from (a path, or an installed package's folder),
    so outputs can be checked against it before anything is loaded; None if
    there is none (loading will then say so)."""
    path = Path(model).expanduser()
    if path.exists():
        return path
    from spacy.util import get_package_path, is_package

    try:
        return get_package_path(model) if is_package(model) else None
    except Exception:  # a broken installation: loading reports it
        return None


def _failing_model_file(tb: Optional[TracebackType]) -> Optional[str]:
    """The file spaCy was reading when loading failed ('ner/model'), from the
    traceback: spacy.util.from_disk calls one reader per `path / key`."""
    found = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "from_disk" and frame.f_globals.get("__name__") == "spacy.util":
            path, key = frame.f_locals.get("path"), frame.f_locals.get("key")
            if path is not None and key is not None:
                found = Path(path) / str(key)
        tb = tb.tb_next
    return None if found is None else f"{found.parent.name}/{found.name}"


def load_reason(model: str, error: BaseException, backend: Backend = Backend.pytorch) -> str:
    """A short reason why loading `model` (`spacy.load`, or an ONNX export
    for the ONNX backends) raised `error`."""
    message = str(error)
    path = Path(model).expanduser()
    if backend.is_onnx:
        if not path.exists():
            return "no such folder"
        if not (path / ONNX_META_FILE).is_file():
            hint = " (a spaCy pipeline: --backend pytorch)" if (path / "config.cfg").is_file() else ""
            return f"not an ONNX export{hint}; `pos-ner export-onnx MODEL FOLDER` writes one"
        return f"{type(error).__name__}: {one_line(message)}"
    if "[E050]" in message:
        return "no such folder, and no installed package of that name"
    if path.is_file():
        return "is a file; expected a pipeline folder or an installed package name"
    if "[E053]" in message and (path / ONNX_META_FILE).is_file():
        return "an ONNX export, not a spaCy pipeline folder: add --backend onnx (or onnx-int8)"
    if "[E053]" in message and not (path / "config.cfg").exists():
        return "not a spaCy pipeline folder (no config.cfg or meta.json)"
    if "[E053]" in message:
        return one_line(message.replace("[E053] ", ""))
    if type(error).__name__ == "ConfigValidationError":
        return "invalid config.cfg: " + one_line(
            message.replace("Config validation error", "").replace(CONFIG_BOILERPLATE, "")
        )
    source = _failing_model_file(error.__traceback__)
    if source is not None:
        return f"{source} is corrupt or truncated ({type(error).__name__}: {one_line(message, 120)})"
    return f"{type(error).__name__}: {one_line(message)}"


def load_pipeline(model: str, backend: Backend = Backend.pytorch, **kwargs: Any) -> "Language":
    """`spacy.load(model)` (or, for the ONNX backends, the export folder as a
    pipeline), or the one line `MODEL: cannot load the pipeline: <reason>` and
    exit status 1 (a missing model, a folder that is no pipeline, a truncated
    or corrupt model file, an invalid config). For every command that takes a
    MODEL argument, serve included. The ONNX backends need the `onnx` extra."""
    if Backend(backend).is_onnx:
        require_extras(f"pos-ner: --backend {Backend(backend).value}", "onnx")
    try:
        nlp = load(model, backend, **kwargs)
    except Exception as error:
        raise_if_stopped()  # an interrupt that a library turned into a load error
        if debug():
            raise
        fail(f"{model}: cannot load the pipeline: {load_reason(model, error, backend)}")
    raise_if_stopped()  # an interrupt that a library swallowed while loading
    return nlp


def require_file(path: Union[str, Path], what: str = "file", code: int = 1) -> Path:
    """`path` if it is a readable file, else one line and exit `code`."""
    path = Path(path)
    if not path.exists():
        fail(f"{path}: no such {what}", code)
    if path.is_dir():
        fail(f"{path}: is a folder, expected a {what}", code)
    if not os.access(path, os.R_OK):
        fail(f"{path}: cannot read: permission denied", code)
    return path


def read_docbin(path: Path, vocab: "Vocab") -> List["Doc"]:
    """The Docs of a DocBin file, or one line saying why it cannot be read."""
    from spacy.tokens import DocBin

    require_file(path, "DocBin (.spacy) file")
    try:
        return list(DocBin().from_disk(path).get_docs(vocab))
    except Exception as error:
        if debug():
            raise
        fail(f"{path}: cannot read the DocBin (.spacy) file: {type(error).__name__}: {one_line(error, 160)}")


def check_outputs(outputs: Iterable[Union[str, Path]], inputs: Iterable[Optional[Union[str, Path]]]) -> None:
    """Refuse (one line, exit 1) any of `outputs` (files) that would destroy
    one of `inputs`, before any work is done."""
    inputs = list(inputs)
    try:
        for output in outputs:
            check_output(output, inputs)
    except OutputError as error:
        fail(str(error))


def unexpected_error(prefix: str, error: BaseException) -> str:
    """The last-resort line (`pos-ner COMMAND: error: Type: message`, the
    message's first line) for an exception no command anticipated."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{prefix}: error: {error.filename}: {error.strerror}"
    message = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"{prefix}: error: {type(error).__name__}: {message}"


def command_name(args: List[str]) -> str:
    """The sub-command in `args` (the first argument that is not an option)."""
    return next((arg for arg in args if not arg.startswith("-")), "")


def is_usage_error(error: BaseException) -> bool:
    """A click usage error (click's own or the copy newer typer versions bundle)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return "ClickException" in names and hasattr(error, "format_message")


def run_cli(cli: typer.Typer, prog_name: str, args: Optional[List[str]] = None) -> NoReturn:
    """Run the typer app `cli` as the command `prog_name` on `args` (default:
    sys.argv[1:]) and exit: SIGINT and SIGTERM stop the command, which cleans up
    (exit 130 and 143, whatever signal handling the process inherited; see
    `handle_termination`), and every failure is
    one line on stderr with a non-zero exit status: usage errors (exit 2), the
    errors the commands anticipate (their own message, usually exit 1) and, as a
    last resort, `PROG COMMAND: error: Type: message` (exit 1; POS_NER_DEBUG=1
    gives the traceback instead)."""
    handle_termination()
    args = sys.argv[1:] if args is None else args
    command = command_name(args)
    known = command in {info.name for info in cli.registered_commands}
    prefix = f"{prog_name} {command}" if known else prog_name
    try:
        result = cli(args=args, prog_name=prog_name, standalone_mode=False)
    except typer.Abort:
        typer.echo(f"{prefix}: aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:  # typer turns one in the command into exit 130; this one came after it
        sys.exit(128 + signal.SIGINT)
    except SystemExit as exit_:
        if exit_.code == TERMINATED:
            typer.echo(f"{prefix}: terminated", err=True)
        raise
    except Exception as error:
        stopped = stop_signal()
        if stopped is not None:  # the error followed a SIGINT or SIGTERM: stop as the signal asks
            if 128 + stopped == TERMINATED:
                typer.echo(f"{prefix}: terminated", err=True)
            sys.exit(128 + stopped)
        if is_usage_error(error):  # a bad option or argument: one line and where to look
            message = error.format_message()  # type: ignore[attr-defined]
            typer.echo(f"{prefix}: error: {message} (see '{prefix} --help')", err=True)
            sys.exit(error.exit_code)  # type: ignore[attr-defined]
        if debug():
            raise
        typer.echo(unexpected_error(prefix, error), err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
