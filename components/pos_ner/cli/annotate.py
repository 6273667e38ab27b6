"""`pos-ner annotate`: entities for every record of a large JSONL or Parquet
file, on Ray Data (see `pos_ner.batch`).

As with `pos-ner predict`, every input record is accounted for: it is either
written to OUTPUT or rejected (reported on stderr as INPUT:LINE: reason, or
INPUT:row ROW: reason, and written to the rejects file, JSONL of {"line" or
"row", "id" if the record has one, "reason"}), and the run ends with the line
`N read, M written, K rejected` on stderr (N = M + K). The rejects file is
written only when there are rejects, and an earlier run's is removed once the
new output is in place. Both are written atomically: a failed or interrupted
run leaves an earlier OUTPUT as it was.

`--min-confidence` works as in `pos-ner predict`: the entities below their
label's threshold go to a "low_confidence" field (JSONL) or column (Parquet)
of their own, present exactly when thresholds are applied (this option or the
model's own `min_confidence`).
"""

from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import IO, Iterator, List, Optional, Union

import typer

from ..backends import BACKEND_HELP, ONNX_META_FILE, Backend
from ..batch import (
    Bad,
    BatchError,
    Format,
    Good,
    IdKind,
    Job,
    JsonlWriter,
    ParquetWriter,
    Writer,
    annotate,
    format_of,
    position_key,
    read_jsonl,
    read_parquet,
    require_ray,
)
from ..io.files import atomic_file, check_output
from ..io.records import LOW_CONFIDENCE_FIELD, default_rejects_path, dumps, reject_entry
from ._util import app, fail, load_reason, model_location, require_extras, require_file
from .predict import MIN_CONFIDENCE_HELP, MIN_CONFIDENCE_OPTION, parse_min_confidence

# Rejects shown on stderr; the rest are only in the rejects file.
SHOWN_REJECTS = 20


class RejectsFile:
    """The rejects file (opened atomically, in `stack`, at the first reject),
    and the first SHOWN_REJECTS of them on stderr."""

    def __init__(self, path: Optional[Path], stack: ExitStack, input_path: Path, fmt: Format):
        self.path, self.stack, self.input_path = path, stack, input_path
        self.key = position_key(fmt)
        self.file: Optional[IO[bytes]] = None
        self.count = 0

    def add(self, bad: Bad) -> None:
        self.count += 1
        where = f"{bad.position}" if self.key == "line" else f"row {bad.position}"
        if self.count <= SHOWN_REJECTS:
            typer.echo(f"{self.input_path}:{where}: {bad.reason}", err=True)
        elif self.count == SHOWN_REJECTS + 1:
            typer.echo(f"{self.input_path}: more rejects, not shown here", err=True)
        if self.path is None:
            return
        if self.file is None:
            self.file = self.stack.enter_context(atomic_file(self.path))
        entry = reject_entry(bad.position, bad.reason, bad.record_id)
        if self.key != "line":
            entry = {self.key: entry.pop("line"), **entry}
        self.file.write(dumps(entry) + b"\n")


def check_model(model: str, backend: Backend = Backend.pytorch) -> Optional[Path]:
    """What can be known about MODEL without loading it (one line and exit 1
    if it cannot be a pipeline), so that a bad path fails before Ray starts;
    the folder it loads from, for the output checks."""
    location = model_location(model)
    prefix = f"{model}: cannot load the pipeline"
    if location is None or (backend.is_onnx and not Path(model).expanduser().exists()):
        fail(f"{prefix}: {load_reason(model, ValueError('[E050]'), backend)}")
    path = Path(model).expanduser()
    if path.exists():
        if path.is_file():
            fail(f"{prefix}: is a file; expected a pipeline folder or an installed package name")
        if backend.is_onnx:
            if not (path / ONNX_META_FILE).is_file():
                fail(f"{prefix}: {load_reason(model, ValueError(), backend)}")
            return location
        if not (path / "config.cfg").is_file():
            fail(f"{prefix}: {load_reason(model, ValueError('[E053]'), backend)}")
        from spacy.util import load_config

        try:
            load_config(path / "config.cfg")
        except Exception as error:
            fail(f"{prefix}: {load_reason(model, error)}")
    return location


@app.command("annotate")
def annotate_cli(
    model: str = typer.Argument(
        ...,
        help="Pipeline directory or installed package name (on a Ray cluster: loadable on every node); "
        "for --backend onnx*: the export-onnx folder",
    ),
    input_path: Path = typer.Argument(..., help="JSONL (.jsonl, .ndjson, .json) or Parquet (.parquet) file"),
    output_path: Path = typer.Argument(..., help="File to write: Parquet (.parquet) or JSONL (.jsonl, .ndjson, .json)"),
    fmt: Format = typer.Option(Format.auto, "--format", "-f", help="INPUT's format; auto: by its suffix"),
    text_field: str = typer.Option("text", "--text-field", help="The field (JSONL) or column (Parquet) of the text"),
    id_field: str = typer.Option(
        "id",
        "--id-field",
        help="The field or column of the record id, kept in OUTPUT. A record without one (absent or null) gets "
        "its line number (JSONL, from 1) or row index (Parquet, from 0). In Parquet output the ids are integers "
        "if all are, else strings (other ids as their JSON text).",
    ),
    batch_size: int = typer.Option(
        64, "--batch-size", min=1, help="Records per Ray Data block (an actor's task) and nlp.pipe call"
    ),
    actors: int = typer.Option(1, "--actors", min=1, help="Ray actors, each with its own copy of the pipeline"),
    cpus_per_actor: Optional[float] = typer.Option(
        None,
        "--cpus-per-actor",
        min=0.01,
        help="CPUs (and torch threads) per actor; default: 1 with a GPU, else the cluster's CPUs shared out",
    ),
    gpu: Optional[bool] = typer.Option(
        None,
        "--gpu/--no-gpu",
        help="One GPU per actor (needs cupy); default: if the Ray cluster has GPUs (pytorch backend only)",
    ),
    backend: Backend = typer.Option(Backend.pytorch, "--backend", help=BACKEND_HELP),
    address: Optional[str] = typer.Option(
        None,
        "--address",
        envvar="RAY_ADDRESS",
        help="Ray cluster to run on (ray://HOST:10001, HOST:6379, auto); default: a local one, started for this run",
    ),
    num_cpus: Optional[int] = typer.Option(
        None, "--num-cpus", min=1, help="CPUs of the local Ray cluster (default: all); not with --address"
    ),
    rejects_path: Optional[Path] = typer.Option(
        None,
        "--rejects",
        help="JSONL of the rejected records (line or row, id, reason); default: OUTPUT's name with .rejects.jsonl. "
        "Written only if there are any.",
    ),
    min_confidence: Optional[List[str]] = typer.Option(
        None, MIN_CONFIDENCE_OPTION, metavar="[LABEL=]NUMBER", help=MIN_CONFIDENCE_HELP
    ),
) -> None:
    """Write the entities MODEL finds in each INPUT record to OUTPUT, one row
    per good record: its id and "entities" (start_char, end_char, text, label,
    confidence, as `pos-ner predict` and the HTTP API give them), in input
    order; with thresholds (--min-confidence or the model's own), also
    "low_confidence", the entities below them. Runs on Ray Data: a pool of
    --actors actors, each loading MODEL once."""
    thresholds = parse_min_confidence(min_confidence)
    require_extras("pos-ner annotate", "batch", *(["onnx"] if backend.is_onnx else []))
    require_file(input_path, "JSONL or Parquet file", 2)
    if fmt == Format.auto:
        fmt = format_of(input_path) or fail(
            f"{input_path}: cannot tell its format from the suffix; use --format jsonl or --format parquet", 2
        )
    out_fmt = format_of(output_path) or fail(
        f"{output_path}: expected a .parquet or .jsonl (.ndjson, .json) output path", 2
    )
    if id_field in ("entities", LOW_CONFIDENCE_FIELD):
        raise typer.BadParameter(f"{id_field!r} is the output's own column", param_hint="--id-field")
    if address and num_cpus is not None:
        raise typer.BadParameter("is for the local Ray cluster, not with --address", param_hint="--num-cpus")
    if num_cpus is not None and actors * (cpus_per_actor or 1) > num_cpus:  # before Ray starts (it checks again)
        raise typer.BadParameter(
            f"{num_cpus} CPUs cannot hold {actors} actors of {cpus_per_actor or 1:g} CPU(s) (see --cpus-per-actor)",
            param_hint="--num-cpus",
        )
    if backend.is_onnx:
        if gpu:
            raise typer.BadParameter("the ONNX backends run on the CPU", param_hint="--gpu")
        gpu = False
    inputs = [input_path, check_model(model, backend)]
    check_output(output_path, inputs)
    # No default rejects file beside a device or FIFO (/dev/null): its folder is not the user's.
    if rejects_path is None and not (output_path.exists() and not output_path.is_file()):
        rejects_path = default_rejects_path(output_path)
    if rejects_path is not None:
        check_output(rejects_path, [*inputs, output_path])
    try:
        require_ray()
    except BatchError as error:
        fail(str(error))
    job = Job(
        model=model,
        text_field=text_field,
        id_field=id_field,
        batch_size=batch_size,
        actors=actors,
        cpus_per_actor=cpus_per_actor,
        gpu=gpu,
        address=address,
        num_cpus=num_cpus,
        describe=partial(load_reason, backend=backend),
        backend=backend,
        thresholds=thresholds,
    )
    with ExitStack() as stack:
        # The rejects file is entered after OUTPUT, so renamed into place first:
        # once OUTPUT is in place, the pair is complete.
        out = stack.enter_context(atomic_file(output_path))
        rejects = RejectsFile(rejects_path, stack, input_path, fmt)
        records: Iterator[Union[Good, Bad]]
        if fmt == Format.parquet:
            records = read_parquet(input_path, text_field, id_field)
        else:
            try:
                source = stack.enter_context(open(input_path, "rb"))
            except OSError as error:
                fail(f"{input_path}: cannot read: {error.strerror or error}", 2)
            records = read_jsonl(source, text_field, id_field)

        def make_writer(kind: IdKind) -> Writer:
            if out_fmt == Format.parquet:
                return ParquetWriter(out, id_field, kind, low_confidence=thresholds is not None)
            return JsonlWriter(out, id_field)

        try:
            counts = annotate(records, job, make_writer, rejects.add)
        except BatchError as error:
            fail(f"{error}; {output_path} not written")
    if rejects.file is None and rejects_path is not None and rejects_path.is_file():
        rejects_path.unlink()  # an earlier run's, paired with the output that has just been replaced
    where = f" (see {rejects_path})" if counts.rejected and rejects_path is not None else ""
    typer.echo(f"{counts.read} read, {counts.written} written, {counts.rejected} rejected{where}", err=True)
