import json
from pathlib import Path
from typing import Optional

import typer

from ._util import app


@app.command("evaluate")
def evaluate_cli(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    data_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="DocBin (.spacy) with gold entities"),
    output_path: Path = typer.Option(..., "--output", "-o", help="Metrics JSON to write"),
    batch_size: int = typer.Option(32, "--batch-size"),
    report_dir: Optional[Path] = typer.Option(
        None, "--report-dir", file_okay=False, help="Write report.md and confusion.png (and training.png) here"
    ),
    training_log: Optional[Path] = typer.Option(
        None, "--training-log", exists=True, dir_okay=False, help="JSONL log of the training (for training.png)"
    ),
) -> None:
    """Evaluate MODEL on DATA_PATH and write seqeval metrics to OUTPUT_PATH."""
    if training_log is not None and report_dir is None:
        raise typer.BadParameter("needs --report-dir", param_hint="--training-log")
    import spacy
    from spacy.tokens import DocBin

    from ..evaluation.plots import plot_confusion, plot_training
    from ..evaluation.scores import error_report, evaluate, format_table

    nlp = spacy.load(model)
    gold_docs = list(DocBin().from_disk(data_path).get_docs(nlp.vocab))
    metrics, predicted = evaluate(nlp, gold_docs, batch_size=batch_size)
    metrics.update({"model": model, "data": str(data_path)})
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(json.dumps(metrics, indent=2), encoding="utf8")
    typer.echo(format_table(metrics))
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        markdown = error_report(metrics, gold_docs, predicted)
        plot_confusion(metrics["confusion"], report_dir / "confusion.png")
        markdown += "\n## Figures\n\n![Confusion matrices](confusion.png)\n"
        if training_log is not None:
            plot_training(training_log, report_dir / "training.png")
            markdown += "\n![Training curves](training.png)\n"
        (report_dir / "report.md").write_text(markdown, encoding="utf8")
        typer.echo(f"Report: {report_dir / 'report.md'}")
