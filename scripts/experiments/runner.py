"""The one experiment runner behind `grid` and `compare`: train a config with
overrides into a folder (`pos-ner train` in a subprocess, so each run starts
fresh and its time is its own), then score the model with the same seqeval
evaluator as `pos-ner evaluate` on the gold tokens of each corpus given."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping

MODULE = [sys.executable, "-m", "pos_ner"]


class RunFailed(RuntimeError):
    """A training or scoring subprocess exited non-zero; the message names its log."""


def run_command(command: List[str], log_path: Path) -> float:
    """Run `command` with its output in `log_path`; the wall seconds it took."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log_path.open("w", encoding="utf8") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RunFailed(f"{' '.join(command)} failed (exit {result.returncode}); see {log_path}")
    return time.perf_counter() - start


def override_args(overrides: Mapping[str, Any]) -> List[str]:
    """`--section.key value` options (values as JSON, which spaCy's parser reads)."""
    args: List[str] = []
    for key, value in overrides.items():
        args += [f"--{key}", json.dumps(value)]
    return args


def train(config: Path, output: Path, overrides: Mapping[str, Any], gpu: str = "auto") -> float:
    """Train `config` with `overrides` into `output` (log: output/train.log); the seconds it took."""
    command = [*MODULE, "train", str(config), "--output", str(output), "--gpu", gpu, *override_args(overrides)]
    return run_command(command, output / "train.log")


def score(model: Path, data: Path, metrics_path: Path, gold_tags: bool = False) -> Dict:
    """`pos-ner evaluate` of `model` on `data` (with `--gold-tags` if asked); the
    metrics it wrote to `metrics_path`."""
    command = [*MODULE, "evaluate", str(model), str(data), "--output", str(metrics_path)]
    if gold_tags:
        command.append("--gold-tags")
    run_command(command, metrics_path.with_suffix(".log"))
    return json.loads(metrics_path.read_text(encoding="utf8"))


def micro_f1(metrics: Dict) -> float:
    """The headline number: seqeval's micro-averaged entity F1."""
    return float(metrics["entities"]["micro"]["f1-score"])


def run_experiment(
    config: Path,
    output: Path,
    overrides: Mapping[str, Any],
    score_on: Mapping[str, Path],
    gpu: str = "auto",
    model: str = "model-best",
    gold_tags: bool = False,
) -> Dict:
    """Train, then score output/`model` on each corpus of `score_on` (name →
    DocBin), writing output/<name>.json. Returns {"train_seconds", <name>: metrics}.
    `gold_tags`: the corpora's own POS tags are fed to the pipeline, in training
    (the readers' `gold_tags`) and in scoring (an upper bound, for experiments)."""
    if gold_tags:
        overrides = {**overrides, "corpora.train.gold_tags": True, "corpora.dev.gold_tags": True}
    (output / "log.jsonl").unlink(missing_ok=True)  # spaCy's logger does not overwrite a log
    overrides = {"paths.log": str(output / "log.jsonl"), **overrides}
    result: Dict[str, Any] = {"train_seconds": train(config, output, overrides, gpu)}
    for name, data in score_on.items():
        result[name] = score(output / model, data, output / f"{name}.json", gold_tags)
    return result
