"""`python -m scripts.experiments grid` (scripts/experiments/grid.py): a 2-point grid on the
tiny BERT whose first run crashes, then resumes; finished points are never trained again."""

import csv
import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from spacy.util import load_config
from typer.testing import CliRunner

from scripts.experiments import grid
from scripts.experiments.cli import app
from scripts.experiments.runner import RunFailed

from conftest import ROOT

CONFIG = ROOT / "configs" / "pos_ner.cfg"
WIDTH = "components.ner.model.feature_width"
GRID = f"""
grid:
  {WIDTH}: [0, 8]
overrides:
  training.max_steps: 4
  training.eval_frequency: 2
  training.optimizer.learn_rate.warmup_steps: 1
"""


def overrides(tiny_bert, train, dev):
    return {"paths.train": str(train), "paths.dev": str(dev), "components.transformer.model.name": str(tiny_bert)}


def cli_args(overrides):
    return ["--gpu", "-1", *(arg for key, value in overrides.items() for arg in (f"--{key}", value))]


def trials(output):
    return optuna.load_study(study_name="grid", storage=f"sqlite:///{output / 'grid.db'}").get_trials()


def snapshot(output):
    """Each trial folder with the modification time of its model-best/meta.json."""
    return {
        p.name: (p / "model-best" / "meta.json").stat().st_mtime_ns
        for p in output.glob("trial_*")
        if (p / "model-best" / "meta.json").exists()
    }


@pytest.fixture(scope="module")
def search(tmp_path_factory, tiny_bert, toy_corpus):
    """(grid file, output folder, CLI args): the first run crashes on missing dev
    data, the second (with the data) resumes and finishes."""
    folder = tmp_path_factory.mktemp("grid")
    grid_file = folder / "grid.yml"
    grid_file.write_text(GRID, encoding="utf8")
    output = folder / "search"
    train, dev = toy_corpus
    with pytest.raises(RunFailed):
        grid.run_grid(CONFIG, grid_file, output, overrides(tiny_bert, train, folder / "missing.spacy"), gpu="-1")
    assert [t.state for t in trials(output)] == [TrialState.FAIL]
    grid.run_grid(CONFIG, grid_file, output, overrides(tiny_bert, train, dev), gpu="-1")
    return grid_file, output, cli_args(overrides(tiny_bert, train, dev))


@pytest.mark.slow
def test_crashed_point_is_retried_and_every_point_finishes(search):
    _, output, _ = search
    states = [t.state for t in trials(output)]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    failed, *finished = trials(output)
    assert finished[0].params == failed.params, "the crashed point runs first"
    assert sorted(t.params[WIDTH] for t in finished) == [0, 8]
    assert sorted(snapshot(output)) == ["trial_001", "trial_002"]


@pytest.mark.slow
def test_results_rank_both_points(search):
    _, output, _ = search
    with (output / "results.csv").open(encoding="utf8") as file:
        rows = list(csv.DictReader(file))
    assert [row["rank"] for row in rows] == ["1", "2"]
    assert sorted(row["trial"] for row in rows) == ["1", "2"]
    assert sorted(row[WIDTH] for row in rows) == ["0", "8"]
    scores = [float(row["ents_f"]) for row in rows]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    # Ranked by the same seqeval number `evaluate` writes, on the dev corpus' gold tokens.
    for row in rows:
        dev = json.loads((Path(row["output"]) / "dev.json").read_text(encoding="utf8"))
        assert float(row["ents_f"]) == pytest.approx(dev["entities"]["micro"]["f1-score"])
        assert dev["model"].endswith("model-best")
    markdown = (output / "results.md").read_text(encoding="utf8")
    assert "2 of 2 points finished" in markdown
    assert all(row["output"] in markdown for row in rows)


@pytest.mark.slow
def test_best_config_is_the_base_config_with_the_best_point(search):
    _, output, _ = search
    with (output / "results.csv").open(encoding="utf8") as file:
        best = next(csv.DictReader(file))
    config = load_config(output / "best.cfg", interpolate=True)
    base = load_config(CONFIG, interpolate=True)
    assert config["components"]["ner"]["model"]["feature_width"] == int(best[WIDTH])
    # Only the searched values change: the search's step budget is not part of it.
    assert config["training"]["max_steps"] == base["training"]["max_steps"]
    config["components"]["ner"]["model"]["feature_width"] = base["components"]["ner"]["model"]["feature_width"]
    assert config == base


@pytest.mark.slow
def test_rerun_trains_nothing(search):
    grid_file, output, args = search
    before = snapshot(output)
    n_trials = len(trials(output))
    result = CliRunner().invoke(app, ["grid", str(CONFIG), str(grid_file), "--output", str(output), *args])
    assert result.exit_code == 0, result.output
    assert "| 1 |" in result.output and "| 2 |" in result.output
    assert snapshot(output) == before
    assert len(trials(output)) == n_trials


@pytest.mark.slow
def test_another_grid_in_the_same_folder_is_refused(search, tmp_path):
    grid_file, output, args = search
    other = tmp_path / "grid.yml"
    other.write_text(GRID.replace("[0, 8]", "[0, 16]"), encoding="utf8")
    n_trials = len(trials(output))
    result = CliRunner().invoke(app, ["grid", str(CONFIG), str(other), "--output", str(output), *args])
    assert result.exit_code == 1 and "another --output" in result.output
    assert len(trials(output)) == n_trials


def test_interrupted_point_is_trained_again(tmp_path, monkeypatch):
    """A point left RUNNING by a killed search is trained again on resume (here
    with a stand-in for the experiment runner)."""
    grid_file = tmp_path / "grid.yml"
    grid_file.write_text(GRID, encoding="utf8")
    output = tmp_path / "search"
    trained = []

    def fake_experiment(config, folder, overrides, score_on, gpu):
        trained.append(overrides[WIDTH])
        return {
            "train_seconds": 1.0,
            "dev": {"entities": {"micro": {"f1-score": 0.5, "precision": 0.5, "recall": 0.5}}},
        }

    monkeypatch.setattr(grid, "run_experiment", fake_experiment)
    study = grid.open_study(output / "grid.db", {**grid.load_grid(grid_file), "config": str(CONFIG)})
    study.ask()  # a trial that never finishes, as after `kill -9`
    paths = {"paths.dev": str(tmp_path / "dev.spacy")}
    grid.run_grid(CONFIG, grid_file, output, paths)
    assert sorted(trained) == [0, 8]
    grid.run_grid(CONFIG, grid_file, output, paths)
    assert sorted(trained) == [0, 8]
    assert len((output / "results.csv").read_text().splitlines()) == 3
