import re
from pathlib import Path
from typing import Any, Dict, Optional

import typer

from ._util import OVERRIDES, app, fail, gpu_id, parse_overrides

MAX_STEPS = "training.max_steps"
TOTAL_STEPS = "training.optimizer.learn_rate.total_steps"
ENCODER = "components.transformer.model.name"


def sync_overrides(config_path: Path, overrides: Dict[str, Any], transformer: Optional[str]) -> Dict[str, Any]:
    """The overrides `train` passes to spaCy.

    - `--training.max_steps N` alone also ends the learning-rate schedule at N
      when the config's schedule ends where its training does (the shipped
      configs write both numbers, as spaCy's own configs do).
    - `transformer` names the encoder of the config's `transformer` component
      and is left out for a config without one (the CNN preset)."""
    from spacy.util import load_config

    config = load_config(config_path, interpolate=False)
    overrides = dict(overrides)
    schedule = config["training"]["optimizer"].get("learn_rate")
    if (
        MAX_STEPS in overrides
        and TOTAL_STEPS not in overrides
        and isinstance(schedule, dict)
        and schedule.get("total_steps") == config["training"]["max_steps"]
    ):
        overrides[TOTAL_STEPS] = overrides[MAX_STEPS]
        typer.echo(f"{MAX_STEPS} {overrides[MAX_STEPS]}: the learning-rate schedule ends there too ({TOTAL_STEPS})")
    if transformer is not None and ENCODER not in overrides and "transformer" in config["components"]:
        overrides[ENCODER] = transformer
    return overrides


def parse_pairs(text: str) -> Dict[str, Any]:
    """`section.key=value` pairs separated by whitespace (a value may hold
    spaces, e.g. JSON: a pair starts where a `section.key=` follows whitespace),
    as `--section.key value` overrides; values are read as spaCy reads them."""
    items = [item for item in re.split(r"\s+(?=[\w-]+(?:\.[\w-]+)+=)", text.strip()) if item]
    bad = [item for item in items if not re.match(r"[\w-]+(?:\.[\w-]+)+=", item)]
    if bad:
        fail(f"pos-ner train: --overrides: {bad[0]!r} is not section.key=value (e.g. training.max_steps=400)")
    return parse_overrides([f"--{item}" for item in items])


@app.command("train", context_settings=OVERRIDES)
def train_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config"),
    output_path: Path = typer.Option(..., "--output", "-o", help="Folder for model-best and model-last"),
    gpu: str = typer.Option("auto", "--gpu", help="'auto' (a GPU if there is one), -1 for the CPU, or a GPU id"),
    transformer: Optional[str] = typer.Option(
        None, "--transformer", help="Encoder (Hugging Face name or folder) of the config's transformer, if it has one"
    ),
    pairs: str = typer.Option(
        "",
        "--overrides",
        help="More overrides as 'section.key=value' pairs separated by spaces (what a project variable can hold)",
    ),
) -> None:
    """`spacy train` on the GPU when there is one, else on the CPU. Extra
    `--section.key value` options (and `--overrides 'section.key=value ...'`,
    which wins over them) override the config; `--training.max_steps` alone
    moves the end of the learning-rate schedule with it."""
    from spacy.cli.train import train

    overrides = sync_overrides(config_path, {**parse_overrides(ctx.args), **parse_pairs(pairs)}, transformer)
    use_gpu = gpu_id(gpu)
    typer.echo(f"Training on {'GPU ' + str(use_gpu) if use_gpu >= 0 else 'CPU'}")
    train(config_path, output_path, use_gpu=use_gpu, overrides=overrides)
