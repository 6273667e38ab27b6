"""Writing outputs without destroying anything.

Every command that writes a file goes through here:

- `check_output` refuses an output path that resolves to one of the command's
  inputs or lies inside an input folder (a model), and one that is a folder
  where a file is expected.
- `atomic_file` / `atomic_dir` write to a temporary path in the output's own
  folder and rename it into place only when the block ends without an
  exception, so a good earlier output survives a failed run; the temporary path
  is removed on every exit path. `handle_termination` makes SIGTERM raise
  `SystemExit` and SIGINT `Interrupted` (a `KeyboardInterrupt`), whatever the
  process inherited, so a terminated or interrupted run cleans up too;
  `raise_if_stopped` raises that exception again where a library turned it into
  an error of its own or swallowed it.
"""

import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Union

PathLike = Union[str, Path]


class OutputError(Exception):
    """An output that cannot or must not be written; the message is one line."""


def _resolve(path: PathLike) -> Path:
    return Path(path).expanduser().resolve()


def check_output(output: PathLike, inputs: Iterable[Optional[PathLike]] = (), is_dir: bool = False) -> None:
    """Raise `OutputError` if writing `output` could destroy an input.

    `inputs` are files or folders the command reads (None entries and "-" for
    stdin are ignored); the output may be none of them and may not lie inside a
    folder among them. A file output may not be an existing folder, a folder
    output may not be an existing file.
    """
    target = _resolve(output)
    for source in inputs:
        if source is None or str(source) in ("", "-"):
            continue
        source_path = _resolve(source)
        if target == source_path or _same_file(target, source_path):
            raise OutputError(f"{output}: the output is also an input ({source}); choose another output path")
        if source_path.is_dir() and source_path in target.parents:
            raise OutputError(f"{output}: the output lies inside the input folder {source}; choose another path")
        if target.is_dir() and target in source_path.parents:
            raise OutputError(f"{output}: the output folder holds the input {source}; choose another path")
    if not is_dir and target.is_dir():
        raise OutputError(f"{output}: is a folder, expected a file path")
    if is_dir and target.exists() and not target.is_dir():
        raise OutputError(f"{output}: is a file, expected a folder path")


def _same_file(a: Path, b: Path) -> bool:
    """Hard links (and case-insensitive file systems) name one file by two paths."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_special(path: Path) -> bool:
    """A device or FIFO (/dev/null, /dev/full, a named pipe): renaming a
    temporary file over it would replace the node, so it is written in place."""
    return path.exists() and not path.is_file() and not path.is_dir()


def _names_another_file(error: OSError, *ours: PathLike) -> bool:
    """Whether `error` concerns a file other than `ours` (errors from writing
    an open file name none)."""
    return error.filename is not None and str(error.filename) not in {str(path) for path in ours}


def _describe(error: OSError, path: PathLike) -> OutputError:
    reason = error.strerror or str(error)
    return OutputError(f"{path}: cannot write: {reason}")


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _describe(error, path.parent) from error


@contextmanager
def atomic_file(path: PathLike, mode: str = "wb", encoding: Optional[str] = None) -> Iterator[IO]:
    """An open temporary file next to `path`, renamed to `path` on success.

    OS errors (full disk, read-only folder) become `OutputError`; on any
    exception, signals included, the temporary file is removed and an existing
    `path` is left as it was. The new file gets the mode an existing `path`
    had, else the usual one (0666 less the umask; mkstemp's own is 0600). A
    device or FIFO at `path` is written in place. An `OSError` from the block
    that names another file (an input that cannot be opened) is not an output
    error and propagates unchanged.
    """
    target = Path(path)
    if _is_special(target):
        try:
            with open(target, mode, encoding=encoding) as file:
                yield file
        except OSError as error:
            if _names_another_file(error, target):
                raise
            raise _describe(error, target) from error
        return
    _make_parent(target)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise _describe(error, target) from error
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        file_mode = target.stat().st_mode & 0o7777 if target.is_file() else 0o666 & ~_umask()
        os.chmod(tmp_path, file_mode)
        os.replace(tmp_path, target)
    except OSError as error:
        tmp_path.unlink(missing_ok=True)
        if _names_another_file(error, tmp_name, target):
            raise
        raise _describe(error, target) from error
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_file(path, "w", encoding="utf8") as file:
        file.write(text)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT back (they are delivered at the end) so a swap of
    two folders is not cut in half."""
    signals = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_in(tmp_dir: Path, target: Path) -> None:
    """Rename `tmp_dir` to `target`, replacing an existing `target` folder."""
    if not target.exists():
        os.replace(tmp_dir, target)
        return
    with _signals_deferred():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
        try:
            os.replace(tmp_dir, target)
        except BaseException:
            # Put the earlier folder back; if even that fails it stays in `old`, never deleted.
            os.replace(old / target.name, target)
            old.rmdir()
            raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """A temporary folder next to `path`; on success it replaces `path`.

    An existing `path` is moved aside, the new folder renamed into place and
    the old one then deleted, so at every moment either the old or the new
    complete folder is at `path` (signals wait for the swap to finish). On
    failure the temporary folder is removed and `path` is untouched. OS errors
    about files outside the temporary folder (inputs) propagate unchanged.
    """
    target = Path(path)
    _make_parent(target)
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as error:
        raise _describe(error, target) from error
    try:
        os.chmod(tmp_dir, 0o777 & ~_umask())  # mkdtemp's own mode is 0700
        yield tmp_dir
        _swap_in(tmp_dir, target)
    except OSError as error:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if error.filename is not None and not _inside(Path(error.filename), tmp_dir, target):
            raise
        raise _describe(error, target) from error
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def _inside(path: Path, *folders: Path) -> bool:
    resolved = _resolve(path)
    return any(resolved == _resolve(folder) or _resolve(folder) in resolved.parents for folder in folders)


class Interrupted(KeyboardInterrupt):
    """The `KeyboardInterrupt` of a SIGINT (`handle_termination`).

    A subclass, not KeyboardInterrupt itself: CPython marks a plain
    KeyboardInterrupt that leaves code run from a string (exec/eval: namedtuple
    and dataclass creation while the model's modules are imported) as unhandled
    and then, under `python -m`, ends the process by SIGINT after the command's
    own `sys.exit(130)`: exit status -2 instead of 130, by chance."""


# The SIGINT or SIGTERM that asked this process to stop, once one has.
_stop_signal: Optional[int] = None


def _interrupt(signum: int, frame: object) -> None:
    global _stop_signal
    _stop_signal = signum
    raise Interrupted()


def _terminate(signum: int, frame: object) -> None:
    global _stop_signal
    _stop_signal = signum
    raise SystemExit(128 + signum)


def handle_termination() -> None:
    """Make SIGTERM raise `SystemExit(143)` and SIGINT `Interrupted`, so
    `finally` blocks and the temporary-file cleanup above run when a command
    is stopped.

    Both are installed even where the process inherited the signal ignored: a
    non-interactive shell starts `command &` with SIGINT ignored (and Python
    then installs no KeyboardInterrupt of its own), so a test runner, a CI
    script or a batch job started that way could not interrupt a command at
    all. A handler of the caller's own is kept (Python's default SIGINT one is
    replaced by this one, which raises a subclass of the same exception)."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, None):
        signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) in (signal.SIG_DFL, signal.SIG_IGN, None, signal.default_int_handler):
        signal.signal(signal.SIGINT, _interrupt)


def stop_signal() -> Optional[int]:
    """The SIGINT or SIGTERM received since `handle_termination`, if any."""
    return _stop_signal


def raise_if_stopped() -> None:
    """Raise the exception of a SIGINT or SIGTERM received earlier again.

    A signal's exception can surface anywhere, and not every library lets it
    through: CPython 3.11 turns one raised while a class is created (importing
    a module) into RuntimeError, transformers' lazy imports turn that into
    ModuleNotFoundError, spaCy's `is_package` swallows it. Called where the
    commands report errors and between records, this stops the command as the
    signal asked instead of reporting a failure or carrying on."""
    if _stop_signal == signal.SIGINT:
        raise Interrupted()
    if _stop_signal is not None:
        raise SystemExit(128 + _stop_signal)
