"""Grid search over training hyperparameters (`python -m scripts.experiments grid`;
project command `grid`): one run of the experiment runner
(`runner.run_experiment`) per grid point, bookkept by Optuna's GridSampler in
SQLite. Run the same command again to resume an interrupted search: finished
points are never trained again, crashed or interrupted ones are.

Points are ranked by the seqeval micro F1 of model-best on the gold tokens of
the dev corpus (`paths.dev`), the same number `evaluate` and `compare` report.
Writes OUTPUT/trial_NNN/ (one training each), OUTPUT/results.md and
OUTPUT/results.csv (finished points ranked by dev entity F1, rewritten as each
point finishes) and OUTPUT/best.cfg (the base config with the best point's values).
"""

import csv
import io
import json
from datetime import timedelta
from math import prod
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, cast

import optuna
import srsly
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState
from spacy.util import load_config

from pos_ner.io.files import atomic_file, write_text
from scripts.experiments.runner import micro_f1, run_experiment

RESULTS_CSV, RESULTS_MD, BEST_CFG = "results.csv", "results.md", "best.cfg"


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
        raise ValueError(
            f"{db} holds a search with another grid, overrides or base config: use another --output (or --db)"
        )
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


def train_point(
    trial: Trial, config: Path, output: Path, definition: Dict, overrides: Mapping[str, Any], gpu: str
) -> float:
    """Train the trial's grid point; its dev micro F1 (seqeval, gold tokens)."""
    params = {name: trial.suggest_categorical(name, values) for name, values in definition["grid"].items()}
    folder = output / f"trial_{trial.number:03d}"
    trial.set_user_attr("output", str(folder))
    dev = Path(overrides["paths.dev"])
    result = run_experiment(config, folder, {**definition["overrides"], **overrides, **params}, {"dev": dev}, gpu)
    micro = result["dev"]["entities"]["micro"]
    trial.set_user_attr("ents_p", micro["precision"])
    trial.set_user_attr("ents_r", micro["recall"])
    return micro_f1(result["dev"])


def write_results(study: optuna.Study, config: Path, output: Path, definition: Dict) -> None:
    """results.csv and results.md: finished points ranked by dev F1; best.cfg: the best point's config."""
    trials = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: (-cast(float, t.value), t.number))
    if not trials:
        return
    names = list(definition["grid"])
    header = ["rank", "trial", "ents_f", "ents_p", "ents_r", *names, "minutes", "output"]
    rows = [
        [
            rank,
            t.number,
            t.value,
            t.user_attrs["ents_p"],
            t.user_attrs["ents_r"],
            *(t.params[n] for n in names),
            round((t.duration or timedelta()).total_seconds() / 60, 1),
            t.user_attrs["output"],
        ]
        for rank, t in enumerate(trials, 1)
    ]
    table = io.StringIO()
    csv.writer(table).writerows([header, *rows])
    n_points = prod(len(values) for values in definition["grid"].values())
    cells = [[f"{100 * v:.2f}" if i in (2, 3, 4) else str(v) for i, v in enumerate(row)] for row in rows]
    lines = [
        f"# Grid search: {config}",
        "",
        f"{len(trials)} of {n_points} points finished, "
        "ranked by dev entity micro F1 (%, seqeval on the gold tokens, model-best).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *["| " + " | ".join(row) + " |" for row in cells],
        "",
    ]
    # Each file is replaced atomically: an interrupted search leaves the previous, complete tables.
    with atomic_file(output / RESULTS_CSV) as file:  # bytes: the csv module's own \r\n line ends, untranslated
        file.write(table.getvalue().encode("utf8"))
    write_text(output / RESULTS_MD, "\n".join(lines))
    write_text(output / BEST_CFG, load_config(config, overrides=trials[0].params).to_str())


def run_grid(
    config: Path,
    grid_path: Path,
    output: Path,
    overrides: Mapping[str, Any],
    db: Optional[Path] = None,
    gpu: str = "auto",
) -> None:
    """Train every grid point that has not finished yet, writing the results after each.
    `overrides` apply to every point and must name the dev corpus (`paths.dev`)."""
    if "paths.dev" not in overrides:
        raise ValueError("the grid ranks by dev F1: give the dev corpus with --paths.dev")
    definition = {**load_grid(grid_path), "config": str(config)}
    study = open_study(db or output / "grid.db", definition)
    requeue_failed(study)
    sampler = cast(optuna.samplers.GridSampler, study.sampler)
    while not sampler.is_exhausted(study) or study.get_trials(states=(TrialState.WAITING,)):
        study.optimize(lambda trial: train_point(trial, config, output, definition, overrides, gpu), n_trials=1)
        write_results(study, config, output, definition)
