"""`pos-ner model-card`: the meta.json (with the model card) for `spacy package --meta-path`."""

import json
from pathlib import Path
from typing import Optional

import typer

from ..io.files import write_text
from ._util import app, check_outputs, fail, one_line, require_file


@app.command("model-card")
def model_card_cli(
    model: Path = typer.Argument(..., file_okay=False, help="The trained pipeline's folder (e.g. model-best)"),
    metrics_path: Path = typer.Argument(..., dir_okay=False, help="Its metrics from `pos-ner evaluate` (test.json)"),
    output_path: Path = typer.Option(..., "--output", "-o", dir_okay=False, help="meta.json to write"),
    data_name: str = typer.Option(..., "--data-name", help="What the model was trained on, in words"),
    data_url: Optional[str] = typer.Option(None, "--data-url"),
    data_license: Optional[str] = typer.Option(None, "--data-license", help="The training data's terms, in words"),
    license: Optional[str] = typer.Option(None, "--license", help="The model's licence (meta.json `license`)"),
    author: Optional[str] = typer.Option(None, "--author", help="meta.json `author`"),
    email: Optional[str] = typer.Option(None, "--email", help="meta.json `email`"),
    url: Optional[str] = typer.Option(None, "--url", help="meta.json `url`"),
    wheels: str = typer.Option(
        "packages/wheels", "--wheels", help="The folder of the model's and spacy-pos-ner's wheels, for the card"
    ),
    name: Optional[str] = typer.Option(None, "--name", help="Package name (as `spacy package --name`)"),
    version: Optional[str] = typer.Option(None, "--version", help="Package version (as `spacy package --version`)"),
    training_log: Optional[Path] = typer.Option(None, "--training-log", dir_okay=False, help="spaCy's JSONL log"),
    command: Optional[str] = typer.Option(None, "--command", help="How it was trained, for the card"),
) -> None:
    """Write MODEL's meta.json with its model card (description, sources,
    performance from METRICS_PATH, and the card's text in `notes`) to OUTPUT_PATH;
    `spacy package MODEL ... --meta-path OUTPUT_PATH` makes the package's
    README.md from it. The model folder itself is not changed."""
    for path, what in ((model / "meta.json", "pipeline meta.json"), (model / "config.cfg", "pipeline config")):
        require_file(path, what)
    require_file(metrics_path, "metrics JSON")
    if training_log is not None:
        require_file(training_log, "training log")
    check_outputs([output_path], [model, metrics_path, training_log])
    from ..evaluation.log import read_training_log
    from ..model_card import model_card_meta

    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf8"))
        metrics["entities"]["micro"]["f1-score"]
        if metrics.get("calibration") is not None:  # older metrics have none: the card says so
            metrics["calibration"]["ece"], metrics["calibration"]["thresholds"]
    except (ValueError, KeyError, TypeError) as error:
        fail(f"{metrics_path}: not the metrics of `pos-ner evaluate`: {one_line(error, 160)}")
    log = None
    if training_log is not None:
        try:
            log = read_training_log(training_log)
        except ValueError as error:
            fail(f"{training_log}: cannot read the training log: {one_line(error, 160)}")
    meta = model_card_meta(
        model,
        metrics,
        data_name=data_name,
        data_url=data_url,
        data_license=data_license,
        license=license,
        author=author,
        email=email,
        url=url,
        wheels=wheels,
        package_name=name,
        version=version,
        training_log=log,
        command=command,
    )
    write_text(output_path, json.dumps(meta, indent=2, allow_nan=False))
    typer.echo(f"Model card: {output_path} (spacy package --meta-path {output_path})")
