from pathlib import Path
from typing import Optional

import typer

from ..io.files import check_output
from ._util import OVERRIDES, app, check_outputs, fail, parse_overrides, require_extras


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
    --paths.dev) apply to every point. Resumable: run the same command again.
    The result files are checked against the inputs before any training and
    replaced atomically after each point."""
    require_extras("pos-ner grid", "grid", "evaluate")
    from ..experiments.grid import BEST_CFG, RESULTS_CSV, RESULTS_MD, run_grid
    from ..experiments.runner import RunFailed

    overrides = parse_overrides(ctx.args)
    inputs = [config_path, grid_path, *(overrides.get(key) for key in ("paths.train", "paths.dev"))]
    check_output(output, is_dir=True)
    check_outputs([output / name for name in (RESULTS_CSV, RESULTS_MD, BEST_CFG)], inputs)
    check_outputs([db or output / "grid.db"], inputs)
    try:
        run_grid(config_path, grid_path, output, overrides, db, gpu)
    except (ValueError, RunFailed) as error:
        fail(f"{error} (fix it and run the same command again to resume the search)")
    results = output / RESULTS_MD
    if results.is_file():
        typer.echo(results.read_text(encoding="utf8"))
    else:
        typer.echo(f"no grid point finished; nothing in {results}")
