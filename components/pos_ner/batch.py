"""Batch annotation of large corpora on Ray Data (`pos-ner annotate`).

The driver reads the input strictly, record by record: JSONL line by line
(the strict JSON of `pos-ner predict`: no NaN or Infinity, UTF-8 checked per
line) or Parquet batch by batch (a 0-based row index per record). Good records
go to Ray's object store in chunks (`from_arrow_refs`); bad ones are reported
at once with their line or row and never reach Ray. An actor pool of
`Annotator`s (`map_batches`, one `spacy.load` (or ONNX export) per actor: a pipeline does not
survive the object store) turns texts into the entities of
`doc_to_entities`, as JSON text, so nothing but plain columns crosses Ray. The
driver writes them to one output file in input order (`preserve_order`),
checking that order as it goes.

With thresholds (`Job.thresholds`, `--min-confidence`; `pos_ner.thresholds`)
the actors split each doc's entities after the pipeline: those below their
label's threshold go to a "low_confidence" field or column of their own (the
same entity fields), the others stay in "entities". The output has that
field/column exactly when thresholds were applied: by the job, or by the
model's own `min_confidence` (then the first annotated record tells the writer).

A record the pipeline cannot process (a text over `nlp.max_length`, a
non-finite confidence, an exception in the pipeline) comes back with a reason
and is rejected like a bad input record; a pipeline that cannot be loaded
comes back as a fatal reason, so the CLI can say it in one line.

Needs the `batch` extra (ray[data], which brings pyarrow).
"""

import codecs
import json
import logging
import math
import os
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Set, Tuple, Union

from .backends import Backend, load
from .io.records import (
    LOW_CONFIDENCE_FIELD,
    NO_ID,
    BadRecord,
    doc_to_entities,
    dumps,
    json_type,
    loads_strict,
    low_confidence_entities,
)
from .thresholds import Thresholds, apply_thresholds

# Columns of the records inside Ray: the input position (JSONL line, Parquet
# row), the record's id as JSON text (null: it has none), its text; and what
# the actors add: the entities as JSON text, the low-confidence ones as JSON
# text (null: no thresholds applied), or why the record is rejected, or why no
# record can be processed (the pipeline did not load).
POSITION, ID, TEXT = "__position", "__id", "__text"
ENTITIES, LOW_CONFIDENCE, ERROR, FATAL = "__entities", "__low_confidence", "__error", "__fatal"
# Good records per object-store chunk (one of Ray Data's blocks): a batch, but at
# most CHUNK_ROWS records or CHUNK_CHARS characters. Ray Data gives an actor a
# block at a time, so small blocks keep every actor busy even on a small input.
CHUNK_ROWS = 4096
CHUNK_CHARS = 8 * 2**20
# Output rows buffered per Parquet row group.
ROW_GROUP_ROWS = 8192

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
INSTALL_HINT = 'pip install "spacy-pos-ner[batch]"'


class Format(str, Enum):
    auto = "auto"
    jsonl = "jsonl"
    parquet = "parquet"


class BatchError(Exception):
    """A problem that ends the run before or instead of annotating; the message is one line."""


class Good(NamedTuple):
    position: int
    record_id: Any  # NO_ID if the record has none (absent or null)
    text: str


class Bad(NamedTuple):
    position: int
    reason: str
    record_id: Any


class Counts(NamedTuple):
    read: int
    written: int
    rejected: int


def format_of(path: Path) -> Optional[Format]:
    """The format a path's suffix names, if any."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return Format.jsonl
    if suffix in PARQUET_SUFFIXES:
        return Format.parquet
    return None


def position_key(fmt: Format) -> str:
    """What a position is called in rejects and messages: "line" (JSONL, from 1) or "row" (Parquet, from 0)."""
    return "row" if fmt == Format.parquet else "line"


def require_ray() -> None:
    """Raise BatchError (naming the extra to install) unless Ray Data and pyarrow import."""
    try:
        import pyarrow  # noqa: F401
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as error:
        raise BatchError(f"annotate needs Ray Data ({error.name or error} is not installed): {INSTALL_HINT}") from None


# ---------------------------------------------------------------- reading


def _id_of(record: Dict[str, Any], id_field: str) -> Any:
    value = record.get(id_field)
    return NO_ID if value is None else value


def _lenient_id(line: str, id_field: str) -> Any:
    """The id of a line that is JSON only to Python (NaN, Infinity), so its
    reject can name it; NO_ID if there is none or it is not strict JSON."""
    try:
        record_id = _id_of(json.loads(line), id_field)
        if record_id is not NO_ID:
            dumps(record_id)
    except Exception:
        return NO_ID
    return record_id


def _check_unicode(text: str, record_id: Any) -> None:
    try:
        dumps([text, None if record_id is NO_ID else record_id])
    except UnicodeEncodeError:
        raise BadRecord("unpaired surrogate escape (\\ud800-\\udfff), not valid Unicode", record_id) from None


def parse_jsonl_line(line: bytes, line_no: int, text_field: str, id_field: str) -> Good:
    """One JSONL line as a Good record, or BadRecord saying why not."""
    try:
        decoded = line.decode("utf8")
    except UnicodeDecodeError as error:
        raise BadRecord(f"invalid UTF-8 (byte {error.start})") from None
    try:
        record = loads_strict(decoded)
    except BadRecord as error:
        raise BadRecord(str(error), _lenient_id(decoded, id_field)) from None
    except (ValueError, RecursionError) as error:
        raise BadRecord(f"invalid JSON: {error}") from None
    if not isinstance(record, dict):
        raise BadRecord(f"expected a JSON object, got {json_type(record)}")
    record_id = _id_of(record, id_field)
    if text_field not in record:
        raise BadRecord(f"missing field {text_field!r}", record_id)
    text = record[text_field]
    if not isinstance(text, str):
        raise BadRecord(f"{text_field!r} must be a string, got {json_type(text)}", record_id)
    _check_unicode(text, record_id)
    return Good(line_no, record_id, text)


def read_jsonl(file: IO[bytes], text_field: str, id_field: str) -> Iterator[Union[Good, Bad]]:
    """Every record of a JSONL file (blank lines are none), by 1-based line."""
    for line_no, line in enumerate(file, 1):
        if line_no == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        if not line.strip():
            continue
        try:
            yield parse_jsonl_line(line, line_no, text_field, id_field)
        except BadRecord as error:
            yield Bad(line_no, str(error), error.record_id)


def _column_kind(path: Path, schema: Any, name: str, what: str, allowed: Tuple[str, ...]) -> str:
    """How to read a Parquet column ("string", "binary", "integer" or "null";
    a dictionary-encoded one by its values); BatchError for other types."""
    import pyarrow as pa

    arrow_type = schema.field(name).type
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    kinds = [
        ("string", pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or _is_view(arrow_type)),
        ("binary", pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type)),
        ("integer", pa.types.is_integer(arrow_type)),
        ("null", pa.types.is_null(arrow_type)),
    ]
    for kind, matches in kinds:
        if matches and kind in allowed:
            return kind
    raise BatchError(f"{path}: the {what} column {name!r} has type {arrow_type}; expected {' or '.join(allowed)}")


def _is_view(arrow_type: Any) -> bool:
    import pyarrow as pa

    is_string_view = getattr(pa.types, "is_string_view", None)  # pyarrow >= 16
    return bool(is_string_view and is_string_view(arrow_type))


def _plain(column: Any) -> Any:
    import pyarrow as pa

    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def read_parquet(path: Path, text_field: str, id_field: str) -> Iterator[Union[Good, Bad]]:
    """Every row of a Parquet file, by 0-based row index. A missing text column
    or one that holds no text is a BatchError (raised before the first row); a
    null text is a bad record, as is (in a binary column) text that is not UTF-8."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as error:
        raise BatchError(f"{path}: cannot read the Parquet file: {error}") from None
    schema = parquet.schema_arrow
    if text_field not in schema.names:
        raise BatchError(f"{path}: no column {text_field!r} (columns: {', '.join(schema.names)}); see --text-field")
    text_kind = _column_kind(path, schema, text_field, "text", ("string", "binary", "null"))
    has_id = id_field in schema.names
    if has_id:
        _column_kind(path, schema, id_field, "id", ("string", "integer", "null"))
    columns = [text_field, id_field] if has_id else [text_field]
    row = 0
    batches = parquet.iter_batches(batch_size=CHUNK_ROWS, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as error:
            raise BatchError(f"{path}: cannot read the Parquet file after row {row}: {error}") from None
        texts = _plain(batch.column(text_field))
        if text_kind == "string":  # decoded per row below: a string column may still hold invalid UTF-8
            texts = texts.cast(pa.large_binary())
        ids = _plain(batch.column(id_field)).to_pylist() if has_id else [None] * batch.num_rows
        for raw, record_id in zip(texts.to_pylist(), ids):
            record_id = NO_ID if record_id is None else record_id
            if raw is None:
                yield Bad(row, f"{text_field!r} is null", record_id)
            else:
                try:
                    text = raw.decode("utf8")
                except UnicodeDecodeError as error:
                    yield Bad(row, f"invalid UTF-8 (byte {error.start})", record_id)
                else:
                    yield Good(row, record_id, text)
            row += 1


# ---------------------------------------------------------------- Ray


@contextmanager
def ray_session(address: Optional[str] = None, num_cpus: Optional[int] = None) -> Iterator[bool]:
    """Ray, connected: to `address`, else to a local cluster started for the
    block (`num_cpus`, default all) and shut down after it. A session the
    caller already holds (a notebook, the tests) is used as is and left
    running. Yields whether the cluster is one started here."""
    import ray

    if ray.is_initialized():
        yield False
        return
    # No usage statistics from a cluster the user never asked for (set it to 1 to send them).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet: Dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
    except Exception as error:
        where = f"cannot connect to the Ray cluster at {address}" if address else "cannot start a local Ray cluster"
        raise BatchError(f"{where}: {type(error).__name__}: {_first_line(error)}") from None
    # ray.init replaces the driver's SIGTERM handler with one that exits with status 15 (or 1);
    # the caller's (`pos-ner`: SystemExit(143), a clean-up like any other command's) is put
    # back. Leaving the block shuts the local cluster down either way (`finally` below).
    if callable(on_sigterm) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield not address
    finally:
        ray.shutdown()


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")


def configure_data_context() -> None:
    """Ray Data in input order, without progress bars or its INFO/WARNING log lines on stderr."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


class Resources(NamedTuple):
    cpus_per_actor: float
    gpus_per_actor: float


def plan_resources(actors: int, cpus_per_actor: Optional[float], gpu: Optional[bool], local: bool) -> Resources:
    """CPUs and GPUs per actor from what the cluster has (`ray.cluster_resources()`):
    one GPU each if `gpu` (None: if the cluster has GPUs); otherwise, by
    default, the CPUs shared out (at most one node's). BatchError if the
    cluster cannot hold the actors (checked on a local cluster only: a remote
    one may scale up)."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    use_gpu = gpus >= 1 if gpu is None else gpu
    if use_gpu and gpus < 1 and local:  # a remote cluster may add GPU nodes on demand
        raise BatchError("--gpu: the Ray cluster has no GPU")
    if cpus_per_actor is None:
        node_cpus = [node.get("Resources", {}).get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")]
        share = min(cpus / actors, max(node_cpus, default=cpus))
        cpus_per_actor = 1.0 if use_gpu else float(max(1, math.floor(share)))
    if local:
        if actors * cpus_per_actor > cpus:
            raise BatchError(
                f"--actors {actors} with {cpus_per_actor:g} CPU(s) each need {actors * cpus_per_actor:g} CPUs; "
                f"the local Ray cluster has {cpus:g} (--num-cpus, --cpus-per-actor)"
            )
        if use_gpu and actors > gpus:
            raise BatchError(
                f"--actors {actors} with a GPU each need {actors} GPUs; the local Ray cluster has {gpus:g}"
            )
    return Resources(cpus_per_actor, 1.0 if use_gpu else 0.0)


class Annotator:
    """A Ray Data actor: loads the pipeline once, then annotates batches
    (pyarrow tables of POSITION, ID, TEXT) into POSITION, ID, ENTITIES,
    LOW_CONFIDENCE, ERROR, FATAL. `describe(model, error)` says why loading
    failed (the CLI's `load_reason`); without it, the exception's type and
    message. `thresholds`, if given, split each doc's entities anew after the
    pipeline (`apply_thresholds`), replacing the model's own."""

    def __init__(
        self,
        model: str,
        text_field: str = "text",
        use_gpu: bool = False,
        threads: int = 0,
        describe: Optional[Callable[[str, BaseException], str]] = None,
        backend: Backend = Backend.pytorch,
        thresholds: Optional[Thresholds] = None,
    ):
        self.text_field = text_field
        self.thresholds = thresholds
        self.nlp: Any = None
        self.fatal: Optional[str] = None
        if threads > 0:  # Ray sets OMP_NUM_THREADS from num_cpus too; torch may have read it earlier
            try:
                import torch

                torch.set_num_threads(threads)
            except ImportError:
                pass
        import spacy

        if use_gpu:
            try:
                spacy.require_gpu()
            except Exception as error:
                self.fatal = f"cannot use the GPU: {type(error).__name__}: {_first_line(error)} (try --no-gpu)"
                return
        try:
            self.nlp = load(model, backend, threads=max(threads, 0))
        except Exception as error:
            reason = describe(model, error) if describe else f"{type(error).__name__}: {_first_line(error)}"
            self.fatal = f"{model}: cannot load the pipeline: {reason}"

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        n = batch.num_rows
        if self.fatal is not None:
            entities, low, errors, fatal = [None] * n, [None] * n, [None] * n, [self.fatal] * n
        else:
            entities, low, errors = self.annotate(batch.column(TEXT).to_pylist())
            fatal = [None] * n
        return pa.table(
            {
                POSITION: batch.column(POSITION),
                ID: batch.column(ID),
                ENTITIES: pa.array(entities, pa.string()),
                LOW_CONFIDENCE: pa.array(low, pa.string()),
                ERROR: pa.array(errors, pa.string()),
                FATAL: pa.array(fatal, pa.string()),
            }
        )

    def annotate(self, texts: List[str]) -> Tuple[List[Optional[str]], List[Optional[str]], List[Optional[str]]]:
        """(entities as JSON text, low-confidence entities as JSON text, reject
        reason) per text; exactly one of the entities and the reason is None,
        and the low-confidence entities are None too where the doc has no such
        group (no thresholds applied) or the text is rejected."""
        nlp = self.nlp
        entities: List[Optional[str]] = [None] * len(texts)
        low: List[Optional[str]] = [None] * len(texts)
        errors: List[Optional[str]] = [None] * len(texts)
        todo = []
        for i, text in enumerate(texts):
            if len(text) > nlp.max_length:
                errors[i] = (
                    f"{self.text_field!r} has {len(text)} characters, more than nlp.max_length ({nlp.max_length})"
                )
            else:
                todo.append(i)
        try:
            docs: List[Any] = list(nlp.pipe([texts[i] for i in todo], batch_size=max(1, len(todo))))
        except Exception:  # find the text(s) it failed on, one by one
            docs = []
            for i in todo:
                try:
                    docs.append(nlp(texts[i]))
                except Exception as error:
                    docs.append(None)
                    errors[i] = f"the pipeline failed: {type(error).__name__}: {_first_line(error)}"[:300]
        for i, doc in zip(todo, docs):
            if doc is None:
                continue
            if self.thresholds is not None:
                apply_thresholds(doc, self.thresholds)
            low_entities = low_confidence_entities(doc)
            try:
                text_entities = dumps(doc_to_entities(doc)).decode("utf8")
                text_low = None if low_entities is None else dumps(low_entities).decode("utf8")
            except ValueError as error:  # a non-finite confidence: not JSON
                errors[i] = f"output is not valid JSON: {error}"
            else:
                entities[i], low[i] = text_entities, text_low
        return entities, low, errors


def _chunk(records: List[Good]) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            POSITION: pa.array([r.position for r in records], pa.int64()),
            ID: pa.array([None if r.record_id is NO_ID else dumps(r.record_id).decode() for r in records], pa.string()),
            TEXT: pa.array([r.text for r in records], pa.large_string()),
        }
    )


# ---------------------------------------------------------------- writing


class IdKind(str, Enum):
    integer = "integer"
    string = "string"


def id_kind(kinds: Set[type], big_int: bool) -> IdKind:
    """The Parquet type of the output ids: integers if every id is one (and
    fits int64), else strings (non-string ids as their JSON text)."""
    return IdKind.integer if kinds <= {int} and not big_int else IdKind.string


class JsonlWriter:
    """{ID_FIELD: id, "entities": [...]} per line, as `dumps` writes it, with
    "low_confidence": [...] after "entities" where the record has them."""

    def __init__(self, file: IO[bytes], id_field: str):
        self.file = file
        self.key = dumps(id_field)
        self.low_key = b", " + dumps(LOW_CONFIDENCE_FIELD) + b": "

    def write(self, id_json: str, entities_json: str, low_json: Optional[str] = None) -> None:
        low = b"" if low_json is None else self.low_key + low_json.encode()
        self.file.write(
            b"{" + self.key + b": " + id_json.encode() + b', "entities": ' + entities_json.encode() + low + b"}\n"
        )

    def close(self) -> None:
        self.file.flush()

    def abort(self) -> None:
        pass


def entity_type() -> Any:
    import pyarrow as pa

    return pa.struct(
        [
            ("start_char", pa.int64()),
            ("end_char", pa.int64()),
            ("text", pa.string()),
            ("label", pa.string()),
            ("confidence", pa.float64()),
        ]
    )


class ParquetWriter:
    """Columns ID_FIELD (int64 or string, see `id_kind`), "entities" (a list
    of structs with the fields of `doc_to_entities`) and, where thresholds
    were applied, "low_confidence" (the same type), one row group per
    ROW_GROUP_ROWS rows. The schema is fixed at the first row written: it has
    "low_confidence" if `low_confidence` (the job applies thresholds) or if
    that row has them (the model's own thresholds); an output without rows
    has it if `low_confidence`."""

    def __init__(self, file: IO[bytes], id_field: str, kind: IdKind, low_confidence: bool = False):
        import pyarrow as pa

        self.kind = kind
        self.id_field = id_field
        self.id_type = pa.int64() if kind == IdKind.integer else pa.string()
        self.low_confidence = low_confidence
        self.writer: Any = None
        self.schema: Any = None
        self.file = file
        self.ids: List[Any] = []
        self.entities: List[Any] = []
        self.low: List[Any] = []

    def _open(self, low_confidence: bool) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = [(self.id_field, self.id_type), ("entities", pa.list_(entity_type()))]
        if low_confidence:
            fields.append((LOW_CONFIDENCE_FIELD, pa.list_(entity_type())))
        self.low_confidence = low_confidence
        self.schema = pa.schema(fields)
        self.writer = pq.ParquetWriter(self.file, self.schema)

    def write(self, id_json: str, entities_json: str, low_json: Optional[str] = None) -> None:
        if self.writer is None:
            self._open(self.low_confidence or low_json is not None)
        if low_json is not None and not self.low_confidence:  # never: one pipeline treats every doc alike
            raise BatchError("a record has low-confidence entities, but the records before it had none")
        value = json.loads(id_json)
        self.ids.append(value if self.kind == IdKind.integer or isinstance(value, str) else id_json)
        self.entities.append(json.loads(entities_json))
        self.low.append(None if low_json is None else json.loads(low_json))
        if len(self.ids) >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.ids:
            entities_type = self.schema.field("entities").type
            columns = [pa.array(self.ids, self.id_type), pa.array(self.entities, entities_type)]
            if self.low_confidence:
                columns.append(pa.array(self.low, entities_type))
            self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
            self.ids, self.entities, self.low = [], [], []

    def close(self) -> None:
        if self.writer is None:  # no rows: the schema alone
            self._open(self.low_confidence)
        self.flush()
        self.writer.close()  # writes the footer; the file itself stays open (atomic_file closes it)
        self.file.flush()

    def abort(self) -> None:
        """Close the writer of a failed run (its file is about to be removed),
        so that it does not try to write the footer later, to a closed file."""
        try:
            if self.writer is not None:
                self.writer.close()
        except Exception:
            pass


Writer = Union[JsonlWriter, ParquetWriter]


# ---------------------------------------------------------------- the run


class Job(NamedTuple):
    """What `annotate` needs to know besides the records."""

    model: str
    text_field: str = "text"
    id_field: str = "id"
    batch_size: int = 64
    actors: int = 1
    cpus_per_actor: Optional[float] = None
    gpu: Optional[bool] = None
    address: Optional[str] = None
    num_cpus: Optional[int] = None
    describe: Optional[Callable[[str, BaseException], str]] = None
    backend: Backend = Backend.pytorch
    # Applied by the actors after the pipeline, replacing the model's own; None: the model's alone.
    thresholds: Optional[Thresholds] = None


def annotate(
    records: Iterable[Union[Good, Bad]],
    job: Job,
    make_writer: Callable[[IdKind], Writer],
    on_reject: Callable[[Bad], None],
    timings: Optional[Dict[str, float]] = None,
) -> Counts:
    """Annotate the good `records` on Ray (a session entered only if there are
    any), write them with `make_writer(id_kind)` in input order, pass every bad
    one (read or annotated) to `on_reject`. BatchError for a fatal problem (the
    pipeline does not load, the cluster cannot hold the actors). `timings`, if
    given, gets read_s, ray_start_s, annotate_s (from the start of execution,
    actor start and model load included, to the last row), first_batch_s (from
    the start of execution to the first annotated batch, of first_batch_rows
    records) and write_s."""
    timings = {} if timings is None else timings
    read = rejected = 0
    kinds: Set[type] = set()
    big_int = False
    pending: List[Good] = []
    pending_chars = 0
    refs: List[Any] = []
    chunk_rows = min(CHUNK_ROWS, job.batch_size)
    # Start Ray at the first full chunk (or at the end, if there are good records
    # at all): an input error in the first records ends the run before Ray starts.
    with _LazyRay(job) as session:
        start = time.perf_counter()
        for item in records:
            read += 1
            if isinstance(item, Bad):
                rejected += 1
                on_reject(item)
                continue
            record_id = item.position if item.record_id is NO_ID else item.record_id
            kinds.add(type(record_id))
            big_int = big_int or (type(record_id) is int and not -(2**63) <= record_id < 2**63)
            pending.append(item)
            pending_chars += len(item.text)
            if len(pending) >= chunk_rows or pending_chars >= CHUNK_CHARS:
                refs.append(session.put(_chunk(pending)))
                pending, pending_chars = [], 0
        if pending:
            refs.append(session.put(_chunk(pending)))
        timings["read_s"] = time.perf_counter() - start - session.start_s
        timings["ray_start_s"] = session.start_s
        writer = make_writer(id_kind(kinds, big_int))
        try:
            written = _write(session, refs, read - rejected, writer, on_reject, timings)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    return Counts(read, written, read - written)


def _write(
    session: "_LazyRay",
    refs: List[Any],
    good: int,
    writer: Writer,
    on_reject: Callable[[Bad], None],
    timings: Dict[str, float],
) -> int:
    """Annotate the chunks `refs` (`good` records in all), write the records
    in input order, pass the ones the actors reject to `on_reject`; the number
    of records written."""
    if not refs:
        return 0
    written = seen = 0
    last = -1
    write_s = 0.0
    start = time.perf_counter()
    for batch in session.run(refs):
        if "first_batch_s" not in timings:
            timings["first_batch_s"], timings["first_batch_rows"] = time.perf_counter() - start, batch.num_rows
        before = time.perf_counter()
        columns = [batch.column(name).to_pylist() for name in (POSITION, ID, ENTITIES, LOW_CONFIDENCE, ERROR, FATAL)]
        for position, id_json, entities, low, error, fatal in zip(*columns):
            if fatal is not None:
                raise BatchError(fatal)
            if position <= last:  # never, with preserve_order
                raise BatchError(f"Ray Data returned record {position} after {last}: out of input order")
            last = position
            seen += 1
            if error is not None:
                on_reject(Bad(position, error, NO_ID if id_json is None else json.loads(id_json)))
            else:
                writer.write(dumps(position).decode() if id_json is None else id_json, entities, low)
                written += 1
        write_s += time.perf_counter() - before
    timings["annotate_s"] = time.perf_counter() - start
    timings["write_s"] = write_s
    if seen != good:
        raise BatchError(f"Ray Data returned {seen} of the {good} records sent")
    return written


class _LazyRay:
    """The Ray session of a run, started at the first `put`."""

    def __init__(self, job: Job):
        self.job = job
        self.session: Optional[Any] = None
        self.local = False
        self.start_s = 0.0

    def __enter__(self) -> "_LazyRay":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.session is not None:
            self.session.__exit__(*exc)

    def put(self, table: Any) -> Any:
        import ray

        if self.session is None:
            start = time.perf_counter()
            self.session = ray_session(self.job.address, self.job.num_cpus)
            self.session.__enter__()
            self.local = not self.job.address
            configure_data_context()
            self.resources = plan_resources(self.job.actors, self.job.cpus_per_actor, self.job.gpu, self.local)
            self.start_s = time.perf_counter() - start
        return ray.put(table)

    def run(self, refs: List[Any]) -> Iterator[Any]:
        """The annotated batches, in input order."""
        import ray.data

        job, resources = self.job, self.resources
        remote_args: Dict[str, Any] = {}
        if self.local and _takes_remote_args():
            # Nowhere to restart a dead actor on: let it fail the run (this also
            # keeps Ray's warning about restarting actors off stderr).
            remote_args["max_restarts"] = 0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            dataset = ray.data.from_arrow_refs(refs).map_batches(
                Annotator,
                fn_constructor_kwargs={
                    "model": job.model,
                    "text_field": job.text_field,
                    "use_gpu": resources.gpus_per_actor > 0,
                    "threads": max(1, math.floor(resources.cpus_per_actor)),
                    "describe": job.describe,
                    "backend": job.backend,
                    "thresholds": job.thresholds,
                },
                compute=ray.data.ActorPoolStrategy(size=job.actors),
                batch_size=job.batch_size,
                batch_format="pyarrow",
                num_cpus=resources.cpus_per_actor,
                num_gpus=resources.gpus_per_actor or None,
                **remote_args,
            )
        yield from dataset.iter_batches(batch_format="pyarrow", batch_size=None)


def _takes_remote_args() -> bool:
    """Whether map_batches still passes extra keyword arguments on to the actors
    (deprecated in Ray 2.60, to be removed in 2.64)."""
    import inspect

    import ray.data

    parameters = inspect.signature(ray.data.Dataset.map_batches).parameters.values()
    return any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)
