"""`spacy train` that uses the GPU when one is present and the CPU otherwise."""
from pathlib import Path

import typer
from spacy.cli._util import parse_config_overrides
from spacy.cli.train import train
from thinc.util import gpu_is_available

app = typer.Typer(add_completion=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False),
    output_path: Path = typer.Option(..., "--output", "-o"),
    code_path: Path = typer.Option(None, "--code", "-c", exists=True),
    gpu: str = typer.Option("auto", "--gpu", help="'auto', -1 for the CPU, or a GPU id"),
):
    """Train a pipeline. Extra `--section.key value` options override the config."""
    if code_path is not None:
        from spacy.util import import_file

        import_file(code_path.stem, code_path)
    gpu_id = (0 if gpu_is_available() else -1) if gpu == "auto" else int(gpu)
    typer.echo(f"Training on {'GPU ' + str(gpu_id) if gpu_id >= 0 else 'CPU'}")
    train(config_path, output_path, use_gpu=gpu_id, overrides=parse_config_overrides(ctx.args))


if __name__ == "__main__":
    app()
