"""`pos-ner select`: the N records of an unlabelled pool to annotate next,
pre-annotated with the model's entities for Label Studio or Prodigy.

The pool is what `predict` reads (text, one record per line, or JSONL with
"text" or "tokens"), read by the same code. Every pool record is accounted
for: selected (OUTPUT, most informative first), not selected (the rest file,
JSONL in pool order, {"line", the record's fields}, a pool for the next round)
or rejected (reported on stderr as POOL:LINE: reason and written to the
rejects file, JSONL of {"line", "id" if the record has one, "reason"}, as
`predict` writes it). Records with an empty (or blank) text are rejected: there
is nothing in them to annotate. The run ends with the line `N read, S
selected, R not selected, K rejected` on stderr (N = S + R + K, checked). The
three files are written atomically, OUTPUT last, so a failed run leaves
earlier ones as they were; the rejects file is written only when there are
rejects, and a rejects file of an earlier run at its path is removed.

Components after `pos_ner` in the pipeline are not run: they do not change the
entities.
"""

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, List, Optional

import typer

from ..io.files import atomic_file, check_output
from ..io.preannotate import OutputFormat, Prediction, label_studio_task, model_version, own_fields, prodigy_task
from ..io.records import (
    NO_ID,
    BadRecord,
    Format,
    Record,
    default_rejects_path,
    detect_format,
    dumps,
    read_records,
)
from ..selection import (
    DEFAULT_GROUP_FIELD,
    DEFAULT_PER_DOC_CAP,
    DEFAULT_SCORER,
    DEFAULT_STRATEGY,
    Scorer,
    Strategy,
    diverse_pick,
    group_key,
    random_order,
    uncertainty_order,
)
from ._util import app, fail, load_pipeline, model_location
from .calibrate import pos_ner_component
from .predict import Rejects

EMPTY_TEXT = "empty text: nothing to annotate"


def default_rest_path(output: Path) -> Path:
    """out.json → out.rest.jsonl (beside the output)."""
    return output.with_name(f"{output.stem if output.suffix else output.name}.rest.jsonl")


def is_empty(record: Record, fmt: Format) -> bool:
    if fmt == Format.tokens:
        return not "".join(record.fields["tokens"]).strip()
    return not record.fields["text"].strip()


def predictions(nlp: Any, records: List[Record], fmt: Format, batch_size: int, scorer: Scorer) -> List[Prediction]:
    """The entities (as `nlp.pipe` sets them) and the `scorer` score of each
    record: the components before `pos_ner` run on each batch, then its
    `predict` gives the per-token probabilities and `set_annotations` the entities."""
    from spacy.util import minibatch
    from tqdm import tqdm

    from ..decoding import CONFIDENCE_ATTR
    from ..io.preannotate import prediction_from_doc
    from ..io.records import to_input
    from ..selection import record_score
    from ..thresholds import LOW_CONFIDENCE_KEY

    name, ner = pos_ner_component(nlp)
    result: List[Prediction] = []
    bar = tqdm(total=len(records), unit="record", disable=None, file=sys.stderr)
    with bar, nlp.select_pipes(disable=nlp.pipe_names[nlp.pipe_names.index(name) :]):
        docs = nlp.pipe((to_input(nlp, record.fields, fmt) for record in records), batch_size=batch_size)
        for batch in minibatch(docs, size=batch_size):
            scores = ner.predict(batch)
            ner.set_annotations(batch, scores)
            for doc, probs in zip(batch, scores):
                spans = [*doc.ents, *doc.spans.get(LOW_CONFIDENCE_KEY, [])]
                confidences = [span._.get(CONFIDENCE_ATTR) for span in spans]
                score = record_score(scorer, ner.model.ops.to_numpy(probs), confidences)
                result.append(prediction_from_doc(doc, score, CONFIDENCE_ATTR))
            bar.update(len(batch))
    return result


def write_tasks(out: IO[bytes], fmt: OutputFormat, picked: List[Record], found: List[Prediction], version: str) -> None:
    """Label Studio: one JSON list, a task a line; Prodigy: JSONL."""
    if fmt == OutputFormat.prodigy:
        for record, prediction in zip(picked, found):
            out.write(dumps(prodigy_task(record, prediction)) + b"\n")
        return
    tasks = [dumps(label_studio_task(record, prediction, version)) for record, prediction in zip(picked, found)]
    out.write(b"[\n" + b",\n".join(tasks) + (b"\n]\n" if tasks else b"]\n"))


@app.command("select")
def select_cli(
    model: str = typer.Argument(
        ..., metavar="MODEL", help="Pipeline directory or installed package name, with a pos_ner component"
    ),
    pool_path: Path = typer.Argument(
        ..., metavar="POOL", help="Unlabelled records: text (one per line) or JSONL ('text' or 'tokens'), as predict"
    ),
    output_path: Path = typer.Argument(
        ..., metavar="OUTPUT", help="The records to label, pre-annotated: Label Studio tasks (JSON) or Prodigy JSONL"
    ),
    n: int = typer.Option(..., "--n", min=1, help="How many records to select (all of them if the pool has fewer)"),
    strategy: Strategy = typer.Option(DEFAULT_STRATEGY, "--strategy", help="random, uncertainty or diverse"),
    score: Scorer = typer.Option(
        DEFAULT_SCORER,
        "--score",
        help="margin: lowest best-vs-second tag probability gap of a token; entropy: mean token entropy; "
        "confidence: lowest entity confidence",
    ),
    seed: int = typer.Option(0, "--seed", help="random's shuffle and every strategy's tie-breaks"),
    fmt: OutputFormat = typer.Option(OutputFormat.label_studio, "--format", help="The tool OUTPUT is for"),
    input_format: Format = typer.Option(
        Format.auto, "--input-format", help="auto: .jsonl/.json by the first record, else text"
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    per_doc_cap: Optional[int] = typer.Option(
        None,
        "--per-doc-cap",
        min=1,
        help=f"diverse: at most this many records per document, see --group-field; default {DEFAULT_PER_DOC_CAP}",
    ),
    group_field: Optional[str] = typer.Option(
        None,
        "--group-field",
        help=f"diverse: the record field, or field of its 'meta', naming its document; default {DEFAULT_GROUP_FIELD}",
    ),
    rest_path: Optional[Path] = typer.Option(
        None,
        "--rest",
        dir_okay=False,
        help="JSONL of the records not selected; default: OUTPUT's name with .rest.jsonl",
    ),
    rejects_path: Optional[Path] = typer.Option(
        None,
        "--rejects",
        dir_okay=False,
        help="JSONL of the rejected records (line, id, reason); default: OUTPUT's name with .rejects.jsonl. "
        "Written only if there are any.",
    ),
) -> None:
    """Select the N records of POOL to annotate next and write them to OUTPUT,
    pre-annotated with MODEL's entities in the tool's import format.

    random: a shuffle by --seed, the baseline. uncertainty: the records MODEL
    is least sure of, by --score. diverse: the same ranking, with at most
    --per-doc-cap records per document (records with the same --group-field
    value) and no text twice (lowercased). Ties go by --seed, then pool order.
    The defaults (uncertainty, margin) are provisional: a simulation on
    labelled data will choose them."""
    if strategy != Strategy.diverse:
        for option, value in (("--per-doc-cap", per_doc_cap), ("--group-field", group_field)):
            if value is not None:
                raise typer.BadParameter(f"applies to --strategy diverse only, not {strategy.value}", param_hint=option)
    if str(output_path) == "-":
        fail("OUTPUT: must be a file path (the rest and rejects files are written beside it)", 2)
    if not pool_path.exists():
        fail(f"{pool_path}: no such file", 2)
    if pool_path.is_dir():
        fail(f"{pool_path}: is a folder, expected a text or JSONL file", 2)
    rest_path = default_rest_path(output_path) if rest_path is None else rest_path
    rejects_path = default_rejects_path(output_path) if rejects_path is None else rejects_path
    inputs = [pool_path, model_location(model)]
    check_output(output_path, inputs)
    check_output(rest_path, [*inputs, output_path])
    check_output(rejects_path, [*inputs, output_path, rest_path])
    with ExitStack() as stack:
        try:
            source = stack.enter_context(open(pool_path, "rb"))
        except OSError as error:
            fail(f"{pool_path}: cannot read: {error.strerror or error}", 2)
        # OUTPUT is entered first, so renamed into place last: once it is there, the set is complete.
        out = stack.enter_context(atomic_file(output_path))
        rest_file = stack.enter_context(atomic_file(rest_path))
        rejects = Rejects(rejects_path, stack)
        nlp = load_pipeline(model)
        try:
            pos_ner_component(nlp)
        except ValueError as error:
            fail(f"{model}: {error}")
        if input_format == Format.auto:
            input_format = detect_format(pool_path)

        def report(line_no: int, error: BadRecord) -> None:
            typer.echo(f"{pool_path}:{line_no}: {error}", err=True)
            rejects.add(line_no, str(error), error.record_id)

        candidates: List[Record] = []
        for record in read_records(source, input_format, nlp.max_length, report):
            if is_empty(record, input_format):
                report(record.line, BadRecord(EMPTY_TEXT, record.fields.get("id", NO_ID)))
            else:
                candidates.append(record)
        n_read = len(candidates) + rejects.count
        if not candidates:
            typer.echo(f"{pool_path}: no records to select from", err=True)
        elif n > len(candidates):
            typer.echo(f"--n {n}: the pool has only {len(candidates)} records to select from; selecting all", err=True)
        if strategy == Strategy.random:
            picked = random_order(len(candidates), seed)[:n]
            found = predictions(nlp, [candidates[i] for i in picked], input_format, batch_size, score)
        else:
            found = predictions(nlp, candidates, input_format, batch_size, score)
            order = uncertainty_order([prediction.score for prediction in found], seed)
            if strategy == Strategy.uncertainty:
                picked = order[:n]
            else:
                groups = [group_key(record.fields, group_field or DEFAULT_GROUP_FIELD) for record in candidates]
                texts = [prediction.text for prediction in found]
                picked = diverse_pick(order, n, groups, texts, per_doc_cap or DEFAULT_PER_DOC_CAP)
                if len(picked) < min(n, len(candidates)):
                    typer.echo(
                        f"--strategy diverse: {len(picked)} of --n {n} selected: the others are of documents "
                        "already picked (--per-doc-cap) or repeat a picked text",
                        err=True,
                    )
            found = [found[i] for i in picked]
        write_tasks(out, fmt, [candidates[i] for i in picked], found, model_version(nlp.meta))
        chosen = set(picked)
        rest = [record for i, record in enumerate(candidates) if i not in chosen]
        for record in rest:
            rest_file.write(dumps({"line": record.line, **own_fields(record)}) + b"\n")
        accounted = len(picked) + len(rest) + rejects.count
        if accounted != n_read:  # fails before anything is renamed into place
            fail(f"{pool_path}: {n_read} read but {accounted} accounted for; nothing written")
        out.flush()
        rest_file.flush()
        if rejects.file is not None:
            rejects.file.flush()
    if rejects.file is None and rejects_path.is_file():
        rejects_path.unlink()  # an earlier run's, paired with the outputs that have just been replaced
    where = f" (see {rejects_path})" if rejects.count else ""
    typer.echo(
        f"{n_read} read, {len(picked)} selected ({output_path}), {len(rest)} not selected ({rest_path}), "
        f"{rejects.count} rejected{where}",
        err=True,
    )
