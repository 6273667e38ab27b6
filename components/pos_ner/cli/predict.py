"""`pos-ner predict`: entities for every record of a text or JSONL file.

Every input record is accounted for: each one is either written to OUTPUT
(with "line", its input line) or rejected, and the run ends with the line
`N read, M written, K rejected` on stderr (N = M + K). Rejected records are
reported on stderr as INPUT:LINE: reason and, with `--on-error skip`, written
to the rejects file (JSONL of {"line", "id" if the record has one, "reason"}).
The rejects file is written only when there are rejects; a rejects file left
at the same path by an earlier run is removed once the new output is in place,
so OUTPUT and its rejects file always come from the same run. Both are written
atomically: a failed or interrupted run leaves an earlier OUTPUT as it was.

`--min-confidence` (repeatable: NUMBER for every label, LABEL=NUMBER for one)
moves the entities below their label's threshold from "entities" to
"low_confidence", in this process, after the pipeline (any backend, any
--n-process); it replaces the model's own `min_confidence`. Records get
"low_confidence" exactly when a threshold was applied (this option or the
model's config). `parse_min_confidence` and `MIN_CONFIDENCE_HELP` serve
`annotate` and `serve` too.
"""

import gc
import multiprocessing
import multiprocessing.queues
import os
import signal
import sys
import warnings
from collections import deque
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, Deque, Dict, Iterator, List, Optional

import typer

from ..backends import BACKEND_HELP, Backend
from ..io.files import atomic_file, check_output, raise_if_stopped
from ..io.records import (
    NO_ID,
    BadRecord,
    Format,
    OnError,
    Record,
    default_rejects_path,
    detect_format,
    doc_to_entities,
    dumps,
    low_confidence_entities,
    output_record,
    read_records,
    reject_entry,
    to_input,
)
from ..thresholds import Thresholds, apply_thresholds
from ._util import app, fail, load_pipeline, model_location

_WORKERS_IGNORE_SIGINT = False

MIN_CONFIDENCE_OPTION = "--min-confidence"
MIN_CONFIDENCE_HELP = (
    'Lowest confidence (0 to 1) an entity needs to stay in "entities"; those below go to "low_confidence". '
    "NUMBER for every label or LABEL=NUMBER for one (repeat the option for several); replaces the model's own "
    "min_confidence"
)


def parse_min_confidence(values: Optional[List[str]]) -> Optional[Thresholds]:
    """The thresholds of the --min-confidence values given (None if none were);
    a bad value is a usage error (exit 2) that names the option and the value."""
    if not values:
        return None
    for text in values:
        try:
            Thresholds.parse([text], MIN_CONFIDENCE_OPTION)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r}: expected NUMBER or LABEL=NUMBER, the number from 0 to 1",
                param_hint=f"'{MIN_CONFIDENCE_OPTION}'",
            ) from None
    return Thresholds.parse(values, MIN_CONFIDENCE_OPTION)


def _worker_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def workers_ignore_sigint() -> None:
    """Make forked nlp.pipe workers ignore SIGINT. Ctrl-C reaches the whole
    process group, and a worker's KeyboardInterrupt would print a traceback;
    the parent stops them instead (`stop_workers`). SIGTERM, which is how the
    parent stops them, ends a worker at once (its default action) instead of
    running the parent's handler it inherited: the worker has nothing to clean
    up, and a Python handler would wait for the batch it is running."""
    global _WORKERS_IGNORE_SIGINT
    if not _WORKERS_IGNORE_SIGINT:
        os.register_at_fork(after_in_child=_worker_signals)
        _WORKERS_IGNORE_SIGINT = True


def stop_workers() -> None:
    """Terminate nlp.pipe's worker processes. When the parent stops early
    (a signal, a fatal bad record, a write error) spaCy joins its workers, but
    a worker blocked writing results waits forever: its siblings hold the read
    end of its pipe. Terminated, they exit at once; the warning that they did
    not finish (W127) is then expected and silenced.

    The texts the parent still holds for them are dropped too: a Queue's feeder
    thread writing a batch to a worker's pipe (a batch of long documents is more
    than a pipe holds) would block for good once nobody reads it, and the
    interpreter joins that thread at exit, so the parent would never exit."""
    warnings.filterwarnings("ignore", message=r"\[W127\]")
    for child in multiprocessing.active_children():
        child.terminate()
    # spaCy's own queues (in Language._multiprocessing_pipe): no reference to them but the collector's.
    # type(), not isinstance(): that would read `__class__`, and torch's deprecated aliases warn on it.
    for queue in [obj for obj in gc.get_objects() if issubclass(type(obj), multiprocessing.queues.Queue)]:
        queue.cancel_join_thread()


@contextmanager
def workers_stopped_on_exit() -> Iterator[None]:
    """Stop the workers before a signal or an exception ends the parent's
    loop (and so before spaCy's cleanup waits for them)."""
    previous: Dict[int, Any] = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        stop_workers()
        before = previous[signum]
        if callable(before):
            before(signum, frame)  # KeyboardInterrupt, or SystemExit(143) (handle_termination)
        raise SystemExit(128 + signum)

    for signum, before in previous.items():
        if before is not signal.SIG_IGN:
            signal.signal(signum, handler)
    try:
        yield
    except BaseException:
        stop_workers()
        raise
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


class Rejects:
    """The rejects file, opened (atomically, in `stack`) at the first reject."""

    def __init__(self, path: Optional[Path], stack: ExitStack):
        self.path, self.stack = path, stack
        self.file: Optional[IO[bytes]] = None
        self.count = 0

    def add(self, line: int, reason: str, record_id: Any = NO_ID) -> None:
        self.count += 1
        if self.path is None:
            return
        if self.file is None:
            self.file = self.stack.enter_context(atomic_file(self.path))
        self.file.write(dumps(reject_entry(line, reason, record_id)) + b"\n")


@app.command("predict")
def predict_cli(
    model: str = typer.Argument(
        ..., help="Pipeline directory or installed package name; for --backend onnx*: the export-onnx folder"
    ),
    input_path: str = typer.Argument(..., help="Text or JSONL file, '-' for stdin"),
    output_path: str = typer.Argument(..., help="JSONL file to write, '-' for stdout"),
    fmt: Format = typer.Option(Format.auto, "--format", "-f", help="auto: .jsonl/.json by the first record, else text"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    n_process: int = typer.Option(1, "--n-process", min=1, help="Worker processes for nlp.pipe (CPU)"),
    backend: Backend = typer.Option(Backend.pytorch, "--backend", help=BACKEND_HELP),
    on_error: OnError = typer.Option(OnError.skip, "--on-error", help="skip bad records or stop at the first one"),
    rejects_path: Optional[Path] = typer.Option(
        None,
        "--rejects",
        help="JSONL of the skipped records (line, id, reason); default: OUTPUT's name with .rejects.jsonl, "
        "none for stdout or a device. Written only if there are any.",
    ),
    min_confidence: Optional[List[str]] = typer.Option(
        None, MIN_CONFIDENCE_OPTION, metavar="[LABEL=]NUMBER", help=MIN_CONFIDENCE_HELP
    ),
) -> None:
    """Write the entities MODEL finds in each INPUT record to OUTPUT (JSONL,
    one record per good input record, with its input "line")."""
    thresholds = parse_min_confidence(min_confidence)
    from_stdin, to_stdout = input_path == "-", output_path == "-"
    if not from_stdin:
        source_path = Path(input_path)
        if not source_path.exists():
            fail(f"{input_path}: no such file", 2)
        if source_path.is_dir():
            fail(f"{input_path}: is a folder, expected a text or JSONL file", 2)
    # No default rejects file beside a device or FIFO (/dev/null, /dev/stdout): its folder is not the user's.
    streamed = to_stdout or (Path(output_path).exists() and not Path(output_path).is_file())
    if rejects_path is None and not streamed:
        rejects_path = default_rejects_path(Path(output_path))
    if str(rejects_path) == "-":
        fail("--rejects: must be a file path (stdout is for the output or nothing)")
    inputs = [input_path, model_location(model)]
    if not to_stdout:
        check_output(output_path, inputs)
    if rejects_path is not None:
        check_output(rejects_path, [*inputs, None if to_stdout else output_path])
    with ExitStack() as stack:
        try:
            source = sys.stdin.buffer if from_stdin else stack.enter_context(open(input_path, "rb"))
        except OSError as error:
            fail(f"{input_path}: cannot read: {error.strerror or error}", 2)
        # The temporary output exists before the (slow) model load, so an
        # unwritable folder fails at once; the rejects file is entered after
        # it, so committed first: once OUTPUT is renamed into place, the pair is complete.
        out = sys.stdout.buffer if to_stdout else stack.enter_context(atomic_file(output_path))
        rejects = Rejects(rejects_path if on_error == OnError.skip else None, stack)
        nlp = load_pipeline(model, backend)
        if fmt == Format.auto:
            fmt = Format.text if from_stdin else detect_format(Path(input_path))
        written = predict(
            nlp, source, out, rejects, input_path, output_path, fmt, batch_size, n_process, on_error, thresholds
        )
    if rejects.file is None and rejects_path is not None and rejects_path.is_file() and on_error == OnError.skip:
        rejects_path.unlink()  # an earlier run's, paired with the output that has just been replaced
    where = f" (see {rejects_path})" if rejects.count and rejects_path is not None else ""
    typer.echo(f"{written + rejects.count} read, {written} written, {rejects.count} rejected{where}", err=True)


def predict(
    nlp: Any,
    source: IO[bytes],
    out: IO[bytes],
    rejects: Rejects,
    input_path: str,
    output_path: str,
    fmt: Format,
    batch_size: int,
    n_process: int,
    on_error: OnError,
    thresholds: Optional[Thresholds] = None,
) -> int:
    """Run the pipeline over `source`, writing to `out` and `rejects`; the
    number of records written (the rejected ones are counted in `rejects`).
    `thresholds`, if given, split each doc's entities anew (`apply_thresholds`)."""
    from tqdm import tqdm

    to_stdout = output_path == "-"
    size = None if input_path == "-" else os.fstat(source.fileno()).st_size
    bar = tqdm(total=size, unit="B", unit_scale=True, disable=True if size is None else None, file=sys.stderr)
    written = 0

    def report(line_no: int, error: BadRecord) -> None:
        if on_error == OnError.fail:
            kept = "" if to_stdout else f"; {output_path} not written"
            fail(f"{input_path}:{line_no}: {error} (--on-error fail: stopped{kept})")
        tqdm.write(f"{input_path}:{line_no}: {error}", file=sys.stderr)
        rejects.add(line_no, str(error), error.record_id)

    # nlp.pipe yields one Doc per input, in order, so the records wait here
    # instead of travelling to the worker processes and back.
    pending: Deque[Record] = deque()

    def inputs() -> Iterator[Any]:
        try:
            for record in read_records(source, fmt, nlp.max_length, report):
                pending.append(record)
                yield to_input(nlp, record.fields, fmt)
        except Exception:  # raised inside nlp.pipe, whose cleanup would wait for the workers
            if n_process > 1:
                stop_workers()
            raise

    with ExitStack() as stack:
        stack.callback(bar.close)
        # Held here, not only by the loop, and closed after the workers are
        # stopped (an ExitStack unwinds in reverse): spaCy's cleanup in
        # docs.close() waits for the workers.
        docs = nlp.pipe(inputs(), batch_size=batch_size, n_process=n_process)
        stack.callback(docs.close)
        if n_process > 1:  # the workers are forked at the first iteration
            workers_ignore_sigint()
            stack.enter_context(workers_stopped_on_exit())
        for doc in docs:
            raise_if_stopped()  # a SIGINT or SIGTERM whose exception a library swallowed
            record = pending.popleft()
            if thresholds is not None:  # here, not in the workers: the same for every backend and --n-process
                apply_thresholds(doc, thresholds)
            with_tokens = fmt == Format.tokens
            entities = doc_to_entities(doc, with_tokens=with_tokens)
            low_confidence = low_confidence_entities(doc, with_tokens=with_tokens)
            try:
                line = dumps(output_record(record, entities, low_confidence))
            except ValueError as error:  # a non-finite confidence: not JSON
                report(record.line, BadRecord(f"output is not valid JSON: {error}", record.fields.get("id", NO_ID)))
                continue
            out.write(line + b"\n")
            written += 1
            bar.update(record.offset - bar.n)
        # Write errors (a full disk) surface here, before either file is renamed into place.
        out.flush()
        if rejects.file is not None:
            rejects.file.flush()
    return written
