from pathlib import Path

import typer

from ._util import OVERRIDES, app, gpu_id, parse_overrides


@app.command("train", context_settings=OVERRIDES)
def train_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config"),
    output_path: Path = typer.Option(..., "--output", "-o", help="Folder for model-best and model-last"),
    gpu: str = typer.Option("auto", "--gpu", help="'auto' (a GPU if there is one), -1 for the CPU, or a GPU id"),
) -> None:
    """`spacy train` on the GPU when there is one, else on the CPU. Extra
    `--section.key value` options override the config."""
    from spacy.cli.train import train

    use_gpu = gpu_id(gpu)
    typer.echo(f"Training on {'GPU ' + str(use_gpu) if use_gpu >= 0 else 'CPU'}")
    train(config_path, output_path, use_gpu=use_gpu, overrides=parse_overrides(ctx.args))
