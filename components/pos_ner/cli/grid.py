from pathlib import Path
from typing import Optional

import typer

from ._util import OVERRIDES, app, fail, parse_overrides


@app.command("grid", context_settings=OVERRIDES)
def grid_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Base training config"),
    grid_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Grid definition (YAML)"),
    output: Path = typer.Option(Path("training/grid"), "--output", "-o", help="Folder for the trials and results"),
    db: Optional[Path] = typer.Option(None, "--db", help="Optuna SQLite file (default: OUTPUT/grid.db)"),
    gpu: str = typer.Option("auto", "--gpu", help="'auto', -1 for the CPU, or a GPU id"),
) -> None:
    """Grid-search CONFIG_PATH over GRID_PATH, ranking the points by dev F1
    (seqeval). Extra `--section.key value` options (at least --paths.train and
    --paths.dev) apply to every point. Resumable: run the same command again."""
    from ..experiments.grid import run_grid
    from ..experiments.runner import RunFailed

    try:
        run_grid(config_path, grid_path, output, parse_overrides(ctx.args), db, gpu)
    except (ValueError, RunFailed) as error:
        fail(f"{error}\nFix it and run the same command again to resume the search.")
    typer.echo((output / "results.md").read_text(encoding="utf8"))
