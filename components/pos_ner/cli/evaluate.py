import json
import math
from pathlib import Path
from typing import Any, Optional

import typer

from ..backends import BACKEND_HELP, Backend
from ..io.files import write_text
from ._util import (
    app,
    check_outputs,
    fail,
    load_pipeline,
    model_location,
    one_line,
    read_docbin,
    require_extras,
    require_file,
)

REPORT = "report.md"
CONFUSION = "confusion.png"
RELIABILITY = "reliability.png"
TRAINING = "training.png"


def finite(value: Any) -> Any:
    """`value` with NaN and infinite floats as None: strict JSON has no NaN,
    and an undefined score (no gold entities of a type) should not cost the run."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


@app.command("evaluate")
def evaluate_cli(
    model: str = typer.Argument(
        ..., help="Pipeline directory or installed package name; for --backend onnx*: the export-onnx folder"
    ),
    data_path: Path = typer.Argument(..., help="DocBin (.spacy) with gold entities"),
    output_path: Path = typer.Option(..., "--output", "-o", help="Metrics JSON to write"),
    backend: Backend = typer.Option(Backend.pytorch, "--backend", help=BACKEND_HELP),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    report_dir: Optional[Path] = typer.Option(
        None,
        "--report-dir",
        file_okay=False,
        help="Write report.md, confusion.png and reliability.png (and training.png) here",
    ),
    training_log: Optional[Path] = typer.Option(
        None, "--training-log", dir_okay=False, help="JSONL log of the training (for training.png)"
    ),
    case_variants: bool = typer.Option(
        True, help="Also score the data lowercased and uppercased (case_variants; two more passes)"
    ),
    gold_tags: bool = typer.Option(
        False, "--gold-tags", help="Feed DATA_PATH's own POS tags to the pipeline (an upper bound, for experiments)"
    ),
) -> None:
    """Evaluate MODEL on DATA_PATH and write seqeval metrics, with the calibration
    of the entities' confidences, to OUTPUT_PATH.

    Every output is checked against the inputs before the model is loaded and
    written atomically after all of them are computed, so a failed run leaves
    earlier results as they were."""
    require_extras("pos-ner evaluate", "evaluate")
    if training_log is not None and report_dir is None:
        raise typer.BadParameter("needs --report-dir", param_hint="--training-log")
    require_file(data_path, "DocBin (.spacy) file")
    if training_log is not None:
        require_file(training_log, "training log")
    inputs = [model_location(model), data_path, training_log]
    report_files = []
    if report_dir is not None:
        names = [REPORT, CONFUSION, RELIABILITY] + ([TRAINING] if training_log is not None else [])
        report_files = [report_dir / name for name in names]
    check_outputs([output_path], inputs)
    check_outputs(report_files, [*inputs, output_path])
    from ..evaluation.plots import plot_confusion, plot_reliability, plot_training, read_training_log
    from ..evaluation.scores import check_keeps_tags, error_report, evaluate, format_table

    records = None
    if training_log is not None:
        try:
            records = read_training_log(training_log)
        except ValueError as error:
            fail(f"{training_log}: cannot read the training log: {one_line(error, 160)}")
        if not records:
            fail(f"{training_log}: no training records (expected spaCy's JSONL log, [training.logger] output_file)")
    nlp = load_pipeline(model, backend)
    gold_docs = read_docbin(data_path, nlp.vocab)
    if gold_tags:
        try:
            check_keeps_tags(nlp)
        except ValueError as error:
            fail(f"{model}: {error}")
    metrics, predicted = evaluate(
        nlp, gold_docs, batch_size=batch_size, case_variants=case_variants, gold_tags=gold_tags
    )
    metrics.update({"model": model, "data": str(data_path), "backend": backend.value})
    write_text(output_path, json.dumps(finite(metrics), indent=2, allow_nan=False))
    typer.echo(format_table(metrics))
    if report_dir is not None:
        markdown = error_report(metrics, gold_docs, predicted)
        plot_confusion(metrics["confusion"], report_dir / CONFUSION)
        variants = {name: v["calibration"] for name, v in (metrics.get("case_variants") or {}).items()}
        plot_reliability(metrics["calibration"], report_dir / RELIABILITY, variants, name=data_path.name)
        markdown += f"\n## Figures\n\n![Confusion matrices]({CONFUSION})\n"
        markdown += f"\n![Reliability diagram and precision against coverage]({RELIABILITY})\n"
        if records is not None:
            plot_training(records, report_dir / TRAINING)
            markdown += f"\n![Training curves]({TRAINING})\n"
        write_text(report_dir / REPORT, markdown)
        typer.echo(f"Report: {report_dir / REPORT}")
