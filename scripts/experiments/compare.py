"""Train and score the systems of a comparison definition (configs/compare.yml)
on the same encoder, data, number of epochs and seeds, and make one table
(`python -m scripts.experiments compare`; project workflow `compare`).

spaCy systems run through the experiment runner (`runner.run_experiment`: their
config plus overrides, then `evaluate`'s seqeval scoring of model-last on the
gold tokens of dev and test); a `script` system (the Hugging Face baseline,
`script: scripts.hf_baseline`: a module, run as `python -m MODULE train|evaluate`
from the working directory) trains and scores itself with the same seqeval
functions. Paths in the definition are relative to the working directory (the
project's folder). A run
whose result file exists is not re-run, so an interrupted comparison resumes.
Each result keeps its run's recipe (config, the overrides as applied, script
arguments, corpus files, encoder); a stored result of another recipe under the
same name is refused, never silently reused. So definitions may share a workdir:
a run two of them define alike (same name, seed and recipe) trains once, since
CPU training is deterministic for a seed (a learning curve's full-size points
can be a comparison's runs). A stored run under another name with exactly a
run's recipe is that run too (a candidate of one definition that another then
adopts under its own name): it is restored under the new name, with
`same_run_as` naming it. See docs/experiments.md.
Paths under the project's folder are kept relative in a recipe, so it holds on
another checkout.

The workdir (not committed) is lost with the machine; the reports are the
record. So the runs of the output report, and of the `stored` reports, count as
finished when their recipe is the one the definition gives now: they are written
back into the workdir ("restored") and never trained again. A stored run that
cannot be checked (another recipe, or none: written before recipes were kept)
is not tabulated; it stays in the report under "set_aside" with the reason, so
re-running a comparison never drops a measurement from its report.

A learning curve is a definition whose systems train on part of the corpus:
`train_sentences: N` gives a system the first N sentences of the training
documents in a fixed shuffled order (whole documents, the last one cut at a
sentence boundary), the same subset for every system and seed with that N, so
runs pair up; `epochs` per system overrides the shared number (a small subset
needs more epochs for a comparable number of steps); `series` names the line
the system belongs to in the curve's figure (`<output>.png`, test F1 against the
training sentences, mean and min-max band over the seeds).

`gold_tags: true` feeds a config system the corpus' own POS tags, in training
and scoring: the upper bound of what the POS features can give.
"""

import json
import platform
import random
import re
import statistics
import sys
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

import spacy
import srsly
from spacy.tokens import DocBin
from spacy.util import load_config, registry

from pos_ner.evaluation.plots import plot_learning_curve
from pos_ner.io.files import atomic_file, write_text
from scripts.experiments.runner import RunFailed, micro_f1, run_command, run_experiment

TYPES = ("LOC", "MISC", "ORG", "PER")
# A `script` system's module, run with `python -m` (scripts.hf_baseline).
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class DefinitionError(ValueError):
    """A comparison definition or request that cannot be run; the message says why."""


def markdown_path(output: Path) -> Path:
    """The table written beside the JSON report."""
    return output.with_suffix(".md")


def load_definition(path: Path) -> Dict:
    definition = srsly.read_yaml(path)
    for key in ("epochs", "seeds", "systems"):
        if key not in definition:
            raise DefinitionError(f"{path}: missing '{key}'")
    for name, system in definition["systems"].items():
        if ("config" in system) == ("script" in system):
            raise DefinitionError(f"{path}: system '{name}' needs exactly one of 'config' or 'script'")
        script = system.get("script")
        if script is not None and not (isinstance(script, str) and MODULE_NAME.fullmatch(script)):
            raise DefinitionError(
                f"{path}: system '{name}': script names a module that `python -m` runs from the project's "
                f"folder (e.g. scripts.hf_baseline), not {script!r}"
            )
        if system.get("gold_tags") and "script" in system:
            raise DefinitionError(f"{path}: system '{name}': gold_tags works for 'config' systems only")
        for key in ("train_sentences", "epochs"):
            value = system.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise DefinitionError(f"{path}: system '{name}': {key} must be a positive whole number, not {value!r}")
    return definition


def epochs_of(system: Dict, definition: Dict) -> int:
    return system.get("epochs", definition["epochs"])


def sentences(doc) -> list:
    return list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]


def train_subset(train_path: Path, n_sentences: int, folder: Path) -> Path:
    """The first `n_sentences` sentences of the training documents in a fixed
    shuffled order (seed 0, whatever the run's seed): whole documents, the last
    one cut after its sentence that reaches the count. Written once to
    `folder/train-N.spacy` and reused, so every run with this N trains on it."""
    path = folder / f"train-{n_sentences}.spacy"
    if path.exists():
        return path
    vocab = spacy.blank("en").vocab
    docs = list(DocBin(store_user_data=True).from_disk(train_path).get_docs(vocab))
    available = sum(len(sentences(doc)) for doc in docs)
    if n_sentences > available:
        raise DefinitionError(f"train_sentences {n_sentences}: {train_path} has only {available} sentences")
    random.Random(0).shuffle(docs)
    chosen, count = [], 0
    for doc in docs:
        sents = sentences(doc)
        if count + len(sents) <= n_sentences:
            chosen.append(doc)
            count += len(sents)
        else:
            chosen.append(doc[: sents[n_sentences - count - 1].end].as_doc())
            count = n_sentences
        if count == n_sentences:
            break
    subset = DocBin(store_user_data=True, docs=chosen)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as file:
        file.write(subset.to_bytes())
    return path


def corpus_sentences(path: Path) -> int:
    return sum(len(sentences(doc)) for doc in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def runs(definition: Dict, only: Optional[List[str]], seeds: Optional[List[int]] = None) -> List[Dict]:
    """The (system, seed) pairs to run, seed-major so each system gets a first result early."""
    names = list(definition["systems"])
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise DefinitionError(f"--only: unknown systems {unknown}; known: {names}")
    selected = [n for n in names if not only or n in only]
    return [
        {"system": name, "seed": seed}
        for i, seed in enumerate(definition["seeds"])
        for name in selected
        if (i == 0 or definition["systems"][name].get("all_seeds")) and (not seeds or seed in seeds)
    ]


def corpus_words(path: Path) -> int:
    return sum(len(doc) for doc in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


@lru_cache(maxsize=64)
def steps_per_epoch(config_path: Path, train_path: Path) -> int:
    """How many batches the config's batcher makes of the training corpus."""
    batcher = registry.resolve({"batcher": load_config(config_path)["training"]["batcher"]})["batcher"]
    docs = DocBin().from_disk(train_path).get_docs(spacy.blank("en").vocab)
    return sum(1 for _ in batcher(docs))


def has_transformer(config_path: Path) -> bool:
    return "transformer" in load_config(config_path)["components"]


def spacy_overrides(system: Dict, seed: int, corpus: Dict[str, Path], definition: Dict, transformer: str) -> Dict:
    """The shared budget as config overrides, then the system's own."""
    config = Path(system["config"])
    epochs = epochs_of(system, definition)
    steps = steps_per_epoch(config, corpus["train"]) * epochs
    # A config without a transformer (the CNN preset) has no encoder to set.
    encoder = {"components.transformer.model.name": transformer} if has_transformer(config) else {}
    return {
        "paths.train": str(corpus["train"]),
        "paths.dev": str(corpus["dev"]),
        **encoder,
        "system.seed": seed,
        "training.max_epochs": epochs,
        "training.max_steps": 0,
        # The runs are scored after training; spaCy's own evaluation (at step 0
        # and never again) only has to run, so it gets one dev document.
        "training.eval_frequency": steps + 1,
        "corpora.dev.limit": 1,
        "training.optimizer.learn_rate.total_steps": steps,
        "training.optimizer.learn_rate.warmup_steps": round(steps * definition.get("warmup_share", 0.1)),
        **system.get("overrides", {}),
    }


def run_script(
    system: Dict, seed: int, corpus: Dict[str, Path], definition: Dict, transformer: str, gpu: str, out: Path
) -> Dict[str, Any]:
    """Train and score a `script` system (`python -m MODULE train`, then `evaluate`
    on dev and test, from the working directory); the same result shape as `run_experiment`."""
    command = [
        sys.executable,
        "-m",
        system["script"],
        "train",
        transformer,
        str(corpus["train"]),
        str(out / "model"),
        "--epochs",
        str(epochs_of(system, definition)),
        "--seed",
        str(seed),
        "--warmup-share",
        str(definition.get("warmup_share", 0.1)),
        "--gpu",
        gpu,
    ]
    for key, value in system.get("args", {}).items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    result: Dict[str, Any] = {"train_seconds": run_command(command, out / "train.log")}
    for split in ("dev", "test"):
        metrics_path = out / f"{split}.json"
        command = [
            sys.executable,
            "-m",
            system["script"],
            "evaluate",
            str(out / "model"),
            str(corpus[split]),
            "--output",
            str(metrics_path),
        ]
        run_command(command, metrics_path.with_suffix(".log"))
        result[split] = json.loads(metrics_path.read_text(encoding="utf8"))
    return result


def summary(metrics: Dict) -> Dict:
    entities = metrics["entities"]
    return {
        "f1": micro_f1(metrics),
        "per_type": {t: entities["per_type"][t]["f1-score"] for t in TYPES if t in entities["per_type"]},
        "words_per_second": metrics["words_per_second"],
    }


def portable(value: Any) -> Any:
    """`value` (JSON) with every absolute path under the working directory (the
    project's folder) made relative to it, so that recipes compare across checkouts."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [portable(item) for item in value]
    if isinstance(value, str):
        root = f"{Path.cwd().resolve()}/"
        return value[len(root) :] if value.startswith(root) else value
    return value


def recipe_of(system: Dict, seed: int, corpus: Dict[str, Path], definition: Dict, transformer: str) -> Dict:
    """What a run trains and scores, as JSON: two runs with the same recipe give
    the same result. Edits inside a config file are not part of it."""
    encoder = str(Path(transformer).resolve()) if Path(transformer).exists() else transformer
    files = {split: str(path) for split, path in corpus.items()}
    if "script" in system:
        shared = {"epochs": epochs_of(system, definition), "warmup_share": definition.get("warmup_share", 0.1)}
        recipe = {"script": system["script"], "args": system.get("args", {}), "seed": seed, **shared}
    else:
        overrides = spacy_overrides(system, seed, corpus, definition, encoder)
        recipe = {"config": str(system["config"]), "overrides": overrides, "gold_tags": bool(system.get("gold_tags"))}
    return portable(json.loads(json.dumps({**recipe, "corpus": files, "transformer": encoder})))


def recipe_differences(recipe: Dict, stored: Dict) -> List[str]:
    """The keys in which a stored recipe differs from `recipe` (none: the same run)."""
    stored = portable(stored)
    return sorted(key for key in {*recipe, *stored} if recipe.get(key) != stored.get(key))


def run_recipe(run: Dict, definition: Dict, corpora: Dict[str, Dict[str, Path]], transformer: str, workdir: Path):
    """The corpus files a run trains and scores on (its training subset made if
    needed) and its recipe."""
    system = definition["systems"][run["system"]]
    kind = system.get("corpus", "documents")
    corpus = corpora[kind]
    if system.get("train_sentences"):
        subset = train_subset(corpus["train"], system["train_sentences"], workdir / "subsets" / kind)
        corpus = {**corpus, "train": subset}
    return corpus, recipe_of(system, run["seed"], corpus, definition, transformer)


def run_name(run: Dict) -> str:
    return f"{run['system']}-seed{run['seed']}"


def stored_runs(reports: List[Path]) -> List[Dict]:
    """Every run recorded in these reports (those that exist), tabulated or set
    aside, each with the report it came from."""
    found = []
    for path in reports:
        if not path.exists():
            continue
        try:
            report = json.loads(path.read_text(encoding="utf8"))
            recorded = [*report["runs"], *report.get("set_aside", [])]
        except (ValueError, KeyError, TypeError) as error:
            raise DefinitionError(f"{path}: not a comparison report ({error})") from error
        found += [{**run, "source": str(portable(str(path.resolve())))} for run in recorded]
    return found


def restore(
    every: List[Dict],
    stored: List[Dict],
    own: str,
    definition: Dict,
    corpora: Dict[str, Dict[str, Path]],
    transformer: str,
    workdir: Path,
) -> List[Dict]:
    """Write back into `workdir` each run of the definition that has no result
    there but one in `stored` with the recipe the definition gives it now; returns
    the runs of the report `own` (the output) not used, each with the reason, to be
    set aside in the new report. Other reports' runs that do not apply are ignored."""
    wanted = {run_name(run): run for run in every}
    used, aside = set(), []
    lent = lend_alike(every, stored, definition, corpora, transformer, workdir)
    for index, result in enumerate(stored):
        name = run_name(result)
        run = wanted.get(name)
        result_path = workdir / name / "result.json"
        if run is None:
            if result["source"] == own:
                aside.append((index, "not a run of this definition"))
            continue
        if name in lent:
            if result["source"] == own:
                aside.append((index, f"superseded by {lent[name]}, which has the recipe this run has now"))
            continue
        if "recipe" not in result:
            reason = "no recipe stored (written before recipes were kept), so it cannot be checked"
        elif result_path.exists():
            existing = json.loads(result_path.read_text(encoding="utf8"))
            if existing.get("finished") == result.get("finished"):
                used.add(index)  # the workdir holds this very run
                continue
            reason = f"{result_path} holds another run of {name}"
        else:
            _, recipe = run_recipe(run, definition, corpora, transformer, workdir)
            changed = recipe_differences(recipe, result["recipe"])
            if changed:
                reason = f"another recipe (differs in {', '.join(changed)})"
            else:
                kept = {key: value for key, value in result.items() if key not in ("source", "set_aside_because")}
                write_text(result_path, json.dumps({**kept, "recipe": recipe}, indent=2))
                print(f"{name}: restored from {result['source']}", flush=True)
                used.add(index)
                continue
        aside.append((index, reason))
    # One entry per stored run (the same run may be in several reports).
    seen = {(run_name(stored[i]), stored[i].get("finished")) for i in used}
    set_aside = []
    for index, reason in aside:
        result = stored[index]
        if result["source"] != own:
            continue
        key = (run_name(result), result.get("finished"))
        if key in seen:
            continue
        seen.add(key)
        kept = {k: v for k, v in result.items() if k not in ("source", "set_aside_because")}
        set_aside.append({**kept, "set_aside_because": reason})
    return set_aside


def lend_alike(
    every: List[Dict],
    stored: List[Dict],
    definition: Dict,
    corpora: Dict[str, Dict[str, Path]],
    transformer: str,
    workdir: Path,
) -> Dict[str, str]:
    """Write into `workdir` each run of the definition that has no result there and
    no stored result of its own name with its recipe, but a stored result under
    another name with exactly its recipe (the seed is part of it): the same run,
    which CPU training makes deterministic (e.g. a candidate of one definition that
    another adopted under its own name). Returns {run name: where its result came from}."""
    by_recipe: Dict[str, Dict] = {}
    for result in stored:
        if "recipe" in result:
            by_recipe.setdefault(json.dumps(portable(result["recipe"]), sort_keys=True), result)
    lent = {}
    for run in every:
        name = run_name(run)
        result_path = workdir / name / "result.json"
        system = definition["systems"][run["system"]]
        # The recipe needs the run's corpus (a finished run's only: see `compare`), and
        # only a stored run of the same config (or script) and seed can have it.
        if result_path.exists() or not corpora[system.get("corpus", "documents")]["train"].exists():
            continue
        code = {"config": str(system["config"])} if "config" in system else {"script": system["script"]}
        if not any(
            r["seed"] == run["seed"] and all(r["recipe"].get(k) == v for k, v in code.items())
            for r in by_recipe.values()
        ):
            continue
        _, recipe = run_recipe(run, definition, corpora, transformer, workdir)
        if any(run_name(r) == name and "recipe" in r and not recipe_differences(recipe, r["recipe"]) for r in stored):
            continue  # its own name's result restores it
        alike = by_recipe.get(json.dumps(recipe, sort_keys=True))
        if alike is None:
            continue
        origin = f"{run_name(alike)} in {alike['source']}"
        kept = {key: value for key, value in alike.items() if key not in ("source", "set_aside_because")}
        write_text(result_path, json.dumps({**kept, **run, "recipe": recipe, "same_run_as": origin}, indent=2))
        print(f"{name}: restored from {origin} (the same recipe)", flush=True)
        lent[name] = origin
    return lent


def run_one(
    run: Dict, definition: Dict, corpora: Dict[str, Dict[str, Path]], transformer: str, gpu: str, workdir: Path
) -> Dict:
    system = definition["systems"][run["system"]]
    name = run_name(run)
    out = workdir / name
    result_path = out / "result.json"
    corpus, recipe = run_recipe(run, definition, corpora, transformer, workdir)
    if result_path.exists():
        stored = json.loads(result_path.read_text(encoding="utf8"))
        # results written before recipes were kept have none: kept as they are
        if "recipe" in stored:
            changed = recipe_differences(recipe, stored["recipe"])
            if changed:
                raise DefinitionError(
                    f"{result_path}: a run of {name} with another recipe is stored there (differs in "
                    f"{', '.join(changed)}); move it away or give another --workdir"
                )
            stored["recipe"] = recipe
        print(f"{name}: done before, kept ({result_path})", flush=True)
        return stored
    print(f"{name}: training ...", flush=True)
    if "script" in system:
        outcome = run_script(system, run["seed"], corpus, definition, transformer, gpu, out)
    else:
        overrides = spacy_overrides(system, run["seed"], corpus, definition, transformer)
        splits = {split: corpus[split] for split in ("dev", "test")}
        outcome = run_experiment(
            Path(system["config"]),
            out,
            overrides,
            splits,
            gpu,
            model="model-last",
            gold_tags=system.get("gold_tags", False),
        )
    seconds = outcome["train_seconds"]
    train_words = corpus_words(corpus["train"]) * epochs_of(system, definition)
    dev, test = summary(outcome["dev"]), summary(outcome["test"])
    result = {
        **run,
        "epochs": epochs_of(system, definition),
        "train_sentences": corpus_sentences(corpus["train"]),
        "train_minutes": seconds / 60,
        "train_words_per_second": train_words / seconds,
        "dev_f1": dev["f1"],
        "test_f1": test["f1"],
        "test_per_type_f1": test["per_type"],
        "inference_words_per_second": test["words_per_second"],
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": recipe,
    }
    # Atomic: a result file that exists is a finished run (see above), never a half-written one.
    write_text(result_path, json.dumps(result, indent=2))
    print(
        f"{name}: dev F1 {100 * dev['f1']:.2f}, test F1 {100 * test['f1']:.2f}, {result['train_minutes']:.1f} min",
        flush=True,
    )
    return result


def aggregate(results: List[Dict], definition: Dict) -> List[Dict]:
    """One row per system: the mean over its seeds, with the standard deviation and range."""
    rows = []
    for name, system in definition["systems"].items():
        mine = [r for r in results if r["system"] == name]
        if not mine:
            continue
        columns = {
            "test_f1": [r["test_f1"] for r in mine],
            "dev_f1": [r["dev_f1"] for r in mine],
            "train_minutes": [r["train_minutes"] for r in mine],
            "train_words_per_second": [r["train_words_per_second"] for r in mine],
            "inference_words_per_second": [r["inference_words_per_second"] for r in mine],
            **{f"test_{t}_f1": [r["test_per_type_f1"].get(t, 0.0) for r in mine] for t in TYPES},
        }
        row = {
            "system": name,
            "help": system.get("help", ""),
            "seeds": [r["seed"] for r in mine],
            "series": system.get("series", name),
            "epochs": epochs_of(system, definition),
            # runs finished before the count was recorded have none
            "train_sentences": next((r["train_sentences"] for r in mine if "train_sentences" in r), None),
        }
        for key, values in columns.items():
            row[key] = {
                "mean": statistics.fmean(values),
                "stdev": statistics.stdev(values) if len(values) > 1 else None,
                "min": min(values),
                "max": max(values),
            }
        rows.append(row)
    return rows


def format_markdown(rows: List[Dict]) -> str:
    def cell(stat: Dict, scale: float = 1.0, digits: int = 2) -> str:
        text = f"{stat['mean'] * scale:.{digits}f}"
        if stat["stdev"] is not None:
            text += f" ± {stat['stdev'] * scale:.{digits}f}"
        return text

    header = (
        ["system", "seeds", "test F1", "dev F1"]
        + [f"test {t}" for t in TYPES]
        + ["train min", "train words/s", "inference words/s"]
    )
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |"]
    for row in rows:
        cells = [row["system"], ",".join(map(str, row["seeds"])), cell(row["test_f1"], 100), cell(row["dev_f1"], 100)]
        cells += [cell(row[f"test_{t}_f1"], 100) for t in TYPES]
        cells += [
            cell(row["train_minutes"], digits=1),
            cell(row["train_words_per_second"], digits=0),
            cell(row["inference_words_per_second"], digits=0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Mean ± sample standard deviation over the seeds listed; F1 in %.")
    lines += [f"- `{row['system']}`: {row['help']}" for row in rows]
    return "\n".join(lines) + "\n"


def compare(
    definition_path: Path,
    transformer: str,
    corpus_dir: Path,
    sentences_dir: Path,
    workdir: Path,
    output: Path,
    gpu: str = "auto",
    only: Optional[List[str]] = None,
    seeds: Optional[List[int]] = None,
    report_only: bool = False,
    stored: Optional[List[Path]] = None,
) -> Dict:
    """Run (or resume) the runs selected by `only` and `seeds` (all by default),
    then write `output` (JSON) and its .md table of every finished run of the
    definition, selected or not; returns the report, whose "failed" lists the runs
    that failed and "not_run" those without a result. With `report_only`, nothing
    is trained. Runs recorded in `output` (as it was) and in the `stored` reports
    are restored first (see the module's docstring)."""
    definition = load_definition(definition_path)
    corpora = {
        kind: {split: (folder / f"{split}.spacy").resolve() for split in ("train", "dev", "test")}
        for kind, folder in (("documents", corpus_dir), ("sentences", sentences_dir))
    }
    planned = [] if report_only else runs(definition, only, seeds)
    # The selection says what trains; the report covers every finished run of the
    # definition, so that `--only` or `--seed` never drops a row from the table.
    # A finished run needs its corpus too: its recipe is checked against it.
    every = runs(definition, None, None)
    workdir = workdir.resolve()
    earlier = stored_runs([output, *(stored or [])])
    recorded = {run_name(r) for r in earlier}
    finished = [r for r in every if (workdir / run_name(r) / "result.json").exists()]
    # Training, checking a result's recipe or restoring one reads the run's corpus.
    relevant = [r for r in every if r in planned or r in finished or run_name(r) in recorded]
    needed = {definition["systems"][r["system"]].get("corpus", "documents") for r in relevant}
    missing = [str(path) for kind in corpora if kind in needed for path in corpora[kind].values() if not path.exists()]
    if missing:
        raise DefinitionError(f"{', '.join(missing)} do(es) not exist (run the convert steps first)")
    own = str(portable(str(output.resolve())))
    set_aside = restore(every, earlier, own, definition, corpora, transformer, workdir)
    results, failures, not_run = [], [], []
    for run in every:
        # Checked when the run's turn comes, not before the first: a result moved away
        # meanwhile makes an unselected run "not run", never one that trains.
        if run not in planned and not (workdir / run_name(run) / "result.json").exists():
            not_run.append(run)
            continue
        try:
            results.append(run_one(run, definition, corpora, transformer, gpu, workdir))
        except RunFailed as error:  # the other runs still go ahead; the caller's exit status says so
            print(f"{run['system']}-seed{run['seed']}: FAILED: {error}", file=sys.stderr, flush=True)
            failures.append({**run, "error": str(error)})
    rows = aggregate(results, definition)
    markdown = format_markdown(rows)
    report = {
        "definition": str(definition_path),
        "transformer": transformer,
        "epochs": definition["epochs"],
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "spacy": spacy.__version__,
        },
        "runs": results,
        "failed": failures,
        "not_run": not_run,
        "systems": rows,
        "set_aside": set_aside,
    }
    write_text(output, json.dumps(report, indent=2))
    write_text(markdown_path(output), markdown)
    if any(system.get("train_sentences") for system in definition["systems"].values()) and rows:
        plot_learning_curve(rows, output.with_suffix(".png"))
    report["markdown"] = markdown
    return report
