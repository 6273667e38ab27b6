"""Grid search over training hyperparameters: one spaCy training run
(scripts/train.py in a subprocess) per grid point, bookkept by Optuna's
GridSampler in SQLite. Run the same command again to resume an interrupted
search: finished points are never trained again, crashed or interrupted ones are.

Writes OUTPUT/trial_NNN/ (one training each), OUTPUT/results.md and
OUTPUT/results.csv (finished points ranked by dev entity F1, rewritten as each
point finishes) and OUTPUT/best.cfg (the base config with the best point's values).
"""
import csv
import json
import subprocess
import sys
from math import prod
from pathlib import Path
from typing import Dict, List, Optional

import optuna
import srsly
import typer
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState
from spacy.util import load_config

TRAIN = Path(__file__).parent / "train.py"
app = typer.Typer(add_completion=False)


def load_grid(path: Path) -> Dict:
    """`grid`: config path → list of values; `overrides`: config path → value for every run."""
    data = srsly.read_yaml(path)
    grid = data.get("grid") if isinstance(data, dict) else None
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError(f"{path}: needs `grid`, a mapping of config paths to non-empty lists of values")
    return {"grid": grid, "overrides": data.get("overrides") or {}}


def open_study(db: Path, definition: Dict) -> optuna.Study:
    """The search's study: created, or resumed if `db` holds one with the same definition."""
    db.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name="grid",
        storage=f"sqlite:///{db}",
        sampler=optuna.samplers.GridSampler(definition["grid"], seed=0),
        direction="maximize",
        load_if_exists=True,
    )
    stored = study.user_attrs.get("definition")
    if stored is None:
        study.set_user_attr("definition", definition)
    elif stored != definition:
        raise ValueError(f"{db} holds a search with another grid, overrides or base config: "
                         "use another --output (or --db)")
    return study


def requeue_failed(study: optuna.Study) -> None:
    """Queue a retry of each grid point whose run failed (crashed or interrupted) and
    that has no finished, queued or running trial."""
    def key(trial: FrozenTrial) -> str:
        return json.dumps(trial.params, sort_keys=True)

    settled = {key(t) for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING))}
    for trial in study.get_trials(states=(TrialState.FAIL,)):
        if key(trial) not in settled:
            # A WAITING copy of the trial, GridSampler's grid point included.
            RetryHeartbeatStaleTrialCallback()(study, trial)
            settled.add(key(trial))


def train_point(trial: Trial, config: Path, output: Path, definition: Dict, train_args: List[str]) -> float:
    """Train the trial's grid point; its dev entity F1 from model-best/meta.json."""
    params = {name: trial.suggest_categorical(name, values) for name, values in definition["grid"].items()}
    folder = output / f"trial_{trial.number:03d}"
    trial.set_user_attr("output", str(folder))
    overrides = {**definition["overrides"], **params, "paths.log": str(folder / "log.jsonl")}
    command = [sys.executable, str(TRAIN), str(config), "--output", str(folder), *train_args]
    for name, value in overrides.items():
        command += [f"--{name}", json.dumps(value)]
    subprocess.run(command, check=True)
    performance = srsly.read_json(folder / "model-best" / "meta.json")["performance"]
    trial.set_user_attr("ents_p", performance["ents_p"])
    trial.set_user_attr("ents_r", performance["ents_r"])
    return performance["ents_f"]


def write_results(study: optuna.Study, config: Path, output: Path, definition: Dict) -> None:
    """results.csv and results.md: finished points ranked by dev F1; best.cfg: the best point's config."""
    trials = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: (-t.value, t.number))
    if not trials:
        return
    names = list(definition["grid"])
    header = ["rank", "trial", "ents_f", "ents_p", "ents_r", *names, "minutes", "output"]
    rows = [[rank, t.number, t.value, t.user_attrs["ents_p"], t.user_attrs["ents_r"], *(t.params[n] for n in names),
             round(t.duration.total_seconds() / 60, 1), t.user_attrs["output"]] for rank, t in enumerate(trials, 1)]
    with (output / "results.csv").open("w", newline="", encoding="utf8") as file:
        csv.writer(file).writerows([header, *rows])
    n_points = prod(len(values) for values in definition["grid"].values())
    cells = [[f"{100 * v:.2f}" if i in (2, 3, 4) else str(v) for i, v in enumerate(row)] for row in rows]
    lines = [f"# Grid search: {config}", "", f"{len(trials)} of {n_points} points finished, "
             "ranked by dev entity F1 (%, from model-best/meta.json).", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
             *["| " + " | ".join(row) + " |" for row in cells], ""]
    (output / "results.md").write_text("\n".join(lines), encoding="utf8")
    load_config(config, overrides=trials[0].params).to_disk(output / "best.cfg")


def run_grid(config: Path, grid_path: Path, output: Path, db: Optional[Path] = None,
             train_args: List[str] = ()) -> None:
    """Train every grid point that has not finished yet, writing the results after each."""
    definition = {**load_grid(grid_path), "config": str(config)}
    study = open_study(db or output / "grid.db", definition)
    requeue_failed(study)
    while not study.sampler.is_exhausted(study) or study.get_trials(states=(TrialState.WAITING,)):
        study.optimize(lambda trial: train_point(trial, config, output, definition, list(train_args)), n_trials=1)
        write_results(study, config, output, definition)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Base training config"),
    grid_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Grid definition (YAML)"),
    output: Path = typer.Option(Path("training/grid"), "--output", "-o", help="Folder for the trials and results"),
    db: Optional[Path] = typer.Option(None, "--db", help="Optuna SQLite file (default: OUTPUT/grid.db)"),
):
    """Grid-search CONFIG_PATH over GRID_PATH. Other options (--code, --gpu,
    --paths.train, --section.key value ...) are passed to scripts/train.py."""
    try:
        run_grid(config_path, grid_path, output, db, ctx.args)
    except (ValueError, subprocess.CalledProcessError) as error:
        typer.echo(f"{error}\nFix it and run the same command again to resume the search.", err=True)
        raise typer.Exit(1)
    typer.echo((output / "results.md").read_text(encoding="utf8"))


if __name__ == "__main__":
    app()
