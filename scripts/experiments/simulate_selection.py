"""Does selecting help? The annotation loop simulated on a labelled corpus
(`python -m scripts.experiments simulate-selection`; configs/select_simulation.yml).

The pool is the sentences of the training documents (corpus/train.spacy), in
document order: sentence i of the pool is the i-th sentence of the file (split as
`compare.sentences` splits). Gold labels of a sentence are used only once it is
selected. A *chain* is one strategy (random, uncertainty, diverse) and one seed:

- Round 0 labels `start` sentences drawn by `random_order(pool, seed)`, the same
  for every strategy of that seed, so chains pair up by seed.
- Each round trains the definition's config (`runner.run_experiment`, a fresh
  `pos-ner train` subprocess) on the labelled sentences for `steps_per_round`
  steps (warmup over `warmup_share` of them, linear decay to zero, spaCy's own
  evaluation on one dev document only, as `compare` budgets a run), scores
  model-last on dev and test (`pos-ner evaluate`: seqeval micro F1), then picks
  from the rest of the pool the sentences that bring the labelled count to the
  next round's (`step` more), with the code `pos-ner select` runs: each sentence
  a record of its gold tokens and its document as `doc_id`, `cli.select.predictions`
  for the model's scores (`scorer`), then `random_order`, `uncertainty_order` or
  `diverse_pick` (at most `per_doc_cap` per document, no text twice), ties by the
  seed. The selection is timed over the whole remaining pool, the model's loading
  included, on the CPU whatever `--gpu` says (the issue's goal: <= 60 s a round
  over CoNLL's 14,041 sentences on 2 cores with the CNN preset). Every round
  selects, the last one too, so a larger `max_sentences` later extends the chains.
- The labelled sentences train as documents: those of one document joined in
  document order (document context sees what is labelled of a document; a fully
  labelled pool is the training corpus itself).
- `diverse` may pick fewer than asked (documents already picked from, repeated
  texts, as `pos-ner select` does); the next round then asks for the difference.
  A round records the count it trained on (`labelled`) and its `target`.

A chain has a round per target count (start, start + step, ... up to
`max_sentences`, none above the pool); rounds run seed by seed, then round by
round, then strategy by strategy, so a seed's chains grow together. Each round
writes WORKDIR/<strategy>-seed<S>/round-<NN>/result.json atomically once it has
trained, scored and selected: labelled count, dev and test F1, train minutes,
selection seconds, the pool indices it selected (round 0 also those it started
from) and its chain's recipe (config, overrides, budget, strategy, scorer, seed,
corpus files, pool size; paths under the project's folder relative,
`compare.portable`). A round with a result is never run again, so an interrupted
simulation resumes at the next round; a stored round of another recipe is
refused, never reused. `max_sentences` is not part of the recipe. The rounds of
OUTPUT (the report as it was) missing from the workdir are written back into it
first ("restored"): the report is the record, the workdir is lost with the
machine; one of another recipe, or of no chain of the definition, is refused
(rewriting the report would drop it). A failed round (its subprocess exited
non-zero) stops its chain; the others go ahead.

The full-data reference is a stored F1 (`reference: {report: PATH, system: NAME}`:
the mean test F1 of that system's runs in a `compare` report) or a run per seed on
every pool sentence with the rounds' budget (`reference: {all_sentences: true}`,
optionally with its own `steps`), in WORKDIR/reference-seed<S>/.

The report (OUTPUT, JSON; `.md` table and `.png` figure beside it): the
definition, the machine, every finished round, the table (test F1 mean, min and
max over the seeds per round and strategy), and the read-off: per strategy and
seed the labelled count at which test F1 first reaches `target_share` (95 %) of
the reference's (its mean over its seeds), None if no finished round reaches it
(never extrapolated), and each strategy's ratio to random (goal: uncertainty /
random <= `goal_ratio`, 0.6).
"""

import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import spacy
import srsly
from spacy.tokens import Doc, DocBin

from pos_ner.cli.select import predictions
from pos_ner.evaluation.plots import save, series_label
from pos_ner.io.files import atomic_file, write_text
from pos_ner.io.records import Format, Record
from pos_ner.selection import Scorer, Strategy, diverse_pick, group_key, random_order, uncertainty_order
from scripts.experiments.compare import DefinitionError, portable, recipe_differences, sentences
from scripts.experiments.runner import RunFailed, micro_f1, run_experiment

REQUIRED = ("config", "steps_per_round", "start", "step", "max_sentences", "seeds", "strategies", "reference")
POSITIVE = ("steps_per_round", "start", "step", "max_sentences", "per_doc_cap", "batch_size")


class Sentence(NamedTuple):
    """One pool sentence: its document (index in the file) and token range there."""

    doc: int
    start: int
    end: int


class Pool(NamedTuple):
    docs: List[Doc]
    sentences: List[Sentence]
    tokens: List[List[str]]


def markdown_path(output: Path) -> Path:
    return output.with_suffix(".md")


def figure_path(output: Path) -> Path:
    return output.with_suffix(".png")


def load_definition(path: Path) -> Dict:
    """The definition with its defaults; DefinitionError naming the first problem."""
    definition = srsly.read_yaml(path)
    if not isinstance(definition, dict):
        raise DefinitionError(f"{path}: not a mapping of settings")
    missing = [key for key in REQUIRED if key not in definition]
    if missing:
        raise DefinitionError(f"{path}: missing {', '.join(repr(key) for key in missing)}")
    definition = {
        "overrides": {},
        "warmup_share": 0.1,
        "scorer": "margin",
        "per_doc_cap": 1,
        "batch_size": 64,
        "target_share": 0.95,
        "goal_ratio": 0.6,
        **definition,
    }
    if not isinstance(definition["overrides"], dict):
        raise DefinitionError(
            f"{path}: overrides must be a mapping of config paths to values, not {definition['overrides']!r}"
        )
    for key in POSITIVE:
        value = definition[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DefinitionError(f"{path}: {key} must be a positive whole number, not {value!r}")
    if definition["max_sentences"] < definition["start"]:
        raise DefinitionError(f"{path}: max_sentences ({definition['max_sentences']}) is below start")
    seeds = definition["seeds"]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise DefinitionError(f"{path}: seeds must be a list of whole numbers, not {seeds!r}")
    known = [strategy.value for strategy in Strategy]
    strategies = definition["strategies"]
    if not isinstance(strategies, list) or not strategies or any(s not in known for s in strategies):
        raise DefinitionError(f"{path}: strategies must be a list of {', '.join(known)}, not {strategies!r}")
    if len(set(strategies)) < len(strategies) or len(set(seeds)) < len(seeds):
        raise DefinitionError(f"{path}: a strategy or seed is listed twice")
    scorers = [scorer.value for scorer in Scorer]
    if definition["scorer"] not in scorers:
        raise DefinitionError(f"{path}: scorer must be one of {', '.join(scorers)}, not {definition['scorer']!r}")
    for key in ("warmup_share", "target_share", "goal_ratio"):
        value = definition[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise DefinitionError(f"{path}: {key} must be a number from 0 to 1, not {value!r}")
    reference = definition["reference"]
    stored = isinstance(reference, dict) and set(reference) == {"report", "system"}
    run = (
        isinstance(reference, dict)
        and reference.get("all_sentences") is True
        and set(reference) <= {"all_sentences", "steps"}
    )
    if not (stored or run):
        raise DefinitionError(
            f"{path}: reference must be {{report: PATH, system: NAME}} (a stored F1) or "
            f"{{all_sentences: true}} (a run per seed on the whole pool, optionally with steps), not {reference!r}"
        )
    steps = reference.get("steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise DefinitionError(f"{path}: reference steps must be a positive whole number, not {steps!r}")
    if not Path(definition["config"]).is_file():
        raise DefinitionError(f"{path}: config {definition['config']} does not exist")
    return definition


def load_pool(train_path: Path) -> Pool:
    docs = list(DocBin(store_user_data=True).from_disk(train_path).get_docs(spacy.blank("en").vocab))
    found = [Sentence(i, sent.start, sent.end) for i, doc in enumerate(docs) for sent in sentences(doc)]
    return Pool(docs, found, [[t.text for t in docs[s.doc][s.start : s.end]] for s in found])


def targets(definition: Dict, pool_size: int) -> List[int]:
    """The labelled count of each planned round: start, start + step, ... up to
    max_sentences, none above the pool."""
    counts = range(definition["start"], definition["max_sentences"] + 1, definition["step"])
    return sorted({min(count, pool_size) for count in counts})


def training_docs(pool: Pool, labelled: Sequence[int]) -> List[Doc]:
    """The labelled sentences as documents: those of one document joined in
    document order; a document with all its sentences labelled is itself."""
    by_doc: Dict[int, List[Sentence]] = {}
    for index in sorted(labelled):
        by_doc.setdefault(pool.sentences[index].doc, []).append(pool.sentences[index])
    per_doc = Counter(sentence.doc for sentence in pool.sentences)
    docs = []
    for number, chosen in sorted(by_doc.items()):
        doc = pool.docs[number]
        whole = per_doc[number] == len(chosen)
        docs.append(doc if whole else Doc.from_docs([doc[s.start : s.end].as_doc() for s in chosen]))
    return docs


def write_training_set(pool: Pool, labelled: Sequence[int], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as file:
        file.write(DocBin(store_user_data=True, docs=training_docs(pool, labelled)).to_bytes())
    return path


def train_overrides(definition: Dict, seed: int, train: Path, dev: Path, steps: int) -> Dict:
    """The round's budget as config overrides (as `compare.spacy_overrides`, in
    steps rather than epochs), then the definition's own."""
    return {
        "paths.train": str(train),
        "paths.dev": str(dev),
        "system.seed": seed,
        "training.max_epochs": 0,
        "training.max_steps": steps,
        # Scored after training; spaCy's own evaluation (at step 0 only) gets one dev document.
        "training.eval_frequency": steps + 1,
        "corpora.dev.limit": 1,
        "training.optimizer.learn_rate.total_steps": steps,
        "training.optimizer.learn_rate.warmup_steps": round(steps * definition["warmup_share"]),
        **definition["overrides"],
    }


def train_and_score(
    definition: Dict,
    pool: Pool,
    labelled: Sequence[int],
    seed: int,
    steps: int,
    corpus: Dict[str, Path],
    out: Path,
    gpu: str,
) -> Dict:
    train = write_training_set(pool, labelled, out / "train.spacy")
    overrides = train_overrides(definition, seed, train, corpus["dev"], steps)
    splits = {split: corpus[split] for split in ("dev", "test")}
    outcome = run_experiment(Path(definition["config"]), out, overrides, splits, gpu, model="model-last")
    return {
        "labelled": len(labelled),
        "dev_f1": micro_f1(outcome["dev"]),
        "test_f1": micro_f1(outcome["test"]),
        "train_minutes": outcome["train_seconds"] / 60,
    }


def select_next(
    model: Path, pool: Pool, remaining: List[int], n: int, strategy: str, definition: Dict, seed: int
) -> Tuple[List[int], Optional[float]]:
    """The pool indices of the `n` sentences of `remaining` that `pos-ner select`
    would pick (most informative first), and the seconds it took (None: nothing to pick)."""
    if n <= 0 or not remaining:
        return [], None
    begin = time.perf_counter()
    if strategy == Strategy.random.value:
        picked = random_order(len(remaining), seed)[:n]
    else:
        nlp = spacy.load(model)
        records = [
            Record({"tokens": pool.tokens[i], "doc_id": pool.sentences[i].doc}, line=number, offset=0)
            for number, i in enumerate(remaining, start=1)
        ]
        found = predictions(nlp, records, Format.tokens, definition["batch_size"], Scorer(definition["scorer"]))
        order = uncertainty_order([prediction.score for prediction in found], seed)
        if strategy == Strategy.uncertainty.value:
            picked = order[:n]
        else:
            groups = [group_key(record.fields) for record in records]
            picked = diverse_pick(order, n, groups, [p.text for p in found], definition["per_doc_cap"])
    return [remaining[i] for i in picked], time.perf_counter() - begin


def chain_name(strategy: str, seed: int) -> str:
    return f"{strategy}-seed{seed}"


def round_path(workdir: Path, strategy: str, seed: int, number: int) -> Path:
    return workdir / chain_name(strategy, seed) / f"round-{number:02d}" / "result.json"


def reference_path(workdir: Path, seed: int) -> Path:
    return workdir / f"reference-seed{seed}" / "result.json"


def chain_recipe(definition: Dict, strategy: Optional[str], seed: int, corpus: Dict[str, Path], pool_size: int) -> Dict:
    """What a chain's rounds train and select, as JSON (strategy None: the
    reference run); the scorer only where it selects, the cap only for diverse."""
    recipe: Dict[str, Any] = {
        "config": str(definition["config"]),
        "overrides": definition["overrides"],
        "warmup_share": definition["warmup_share"],
        "seed": seed,
        "corpus": {split: str(path) for split, path in corpus.items()},
        "pool_sentences": pool_size,
    }
    if strategy is None:
        recipe["steps"] = definition["reference"].get("steps", definition["steps_per_round"])
    else:
        recipe.update(steps_per_round=definition["steps_per_round"], start=definition["start"], step=definition["step"])
        recipe["strategy"] = strategy
        if strategy != Strategy.random.value:
            recipe["scorer"] = definition["scorer"]
        if strategy == Strategy.diverse.value:
            recipe["per_doc_cap"] = definition["per_doc_cap"]
    return portable(json.loads(json.dumps(recipe)))


def read_result(path: Path, recipe: Dict) -> Optional[Dict]:
    """The stored result at `path` (None if there is none); DefinitionError if it has another recipe."""
    if not path.exists():
        return None
    stored = json.loads(path.read_text(encoding="utf8"))
    changed = recipe_differences(recipe, stored.get("recipe", {}))
    if changed:
        raise DefinitionError(
            f"{path}: a run of another recipe is stored there (differs in {', '.join(changed)}); "
            "move it away or give another --workdir"
        )
    return stored


def labelled_before(rounds: List[Dict]) -> List[int]:
    """The pool indices labelled when the round after `rounds` trains."""
    return [*rounds[0]["start"], *(index for result in rounds for index in result["selected"])]


def run_round(
    strategy: str,
    seed: int,
    rounds: List[Dict],
    definition: Dict,
    pool: Pool,
    corpus: Dict[str, Path],
    recipe: Dict,
    gpu: str,
    workdir: Path,
) -> Dict:
    """Train, score and select round len(rounds) of a chain whose earlier rounds are `rounds`."""
    number = len(rounds)
    start = random_order(len(pool.sentences), seed)[: definition["start"]] if not rounds else None
    labelled = start if start is not None else labelled_before(rounds)
    path = round_path(workdir, strategy, seed, number)
    print(f"{chain_name(strategy, seed)} round {number}: training on {len(labelled)} sentences ...", flush=True)
    scores = train_and_score(definition, pool, labelled, seed, definition["steps_per_round"], corpus, path.parent, gpu)
    chosen = set(labelled)
    remaining = [i for i in range(len(pool.sentences)) if i not in chosen]
    wanted = min(definition["start"] + number * definition["step"] + definition["step"], len(pool.sentences))
    selected, seconds = select_next(
        path.parent / "model-last", pool, remaining, wanted - len(labelled), strategy, definition, seed
    )
    result = {
        "strategy": strategy,
        "seed": seed,
        "round": number,
        "target": min(definition["start"] + number * definition["step"], len(pool.sentences)),
        **scores,
        "pool": len(remaining),
        "selection_seconds": seconds,
        **({"start": start} if start is not None else {}),
        "selected": selected,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": recipe,
    }
    write_text(path, json.dumps(result, indent=2))
    took = "" if seconds is None else f" in {seconds:.1f} s"
    print(
        f"{chain_name(strategy, seed)} round {number}: {len(labelled)} labelled, dev F1 {100 * scores['dev_f1']:.2f}, "
        f"test F1 {100 * scores['test_f1']:.2f}, {scores['train_minutes']:.1f} min training, "
        f"{len(selected)} selected of {len(remaining)}{took}",
        flush=True,
    )
    return result


def run_reference(
    seed: int, definition: Dict, pool: Pool, corpus: Dict[str, Path], recipe: Dict, gpu: str, workdir: Path
):
    path = reference_path(workdir, seed)
    print(f"reference-seed{seed}: training on all {len(pool.sentences)} sentences ...", flush=True)
    steps = recipe["steps"]
    scores = train_and_score(definition, pool, range(len(pool.sentences)), seed, steps, corpus, path.parent, gpu)
    result = {
        "reference": True,
        "seed": seed,
        **scores,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": recipe,
    }
    write_text(path, json.dumps(result, indent=2))
    return result


def reference_summary(runs: List[Dict], source: str) -> Dict:
    """The full-data reference: the mean test (and dev) F1 of `runs`."""
    return {
        "source": source,
        "seeds": [run["seed"] for run in runs],
        "test_f1": statistics.fmean(run["test_f1"] for run in runs),
        "dev_f1": statistics.fmean(run["dev_f1"] for run in runs),
        "test_f1_per_seed": [run["test_f1"] for run in runs],
    }


def stored_reference(definition: Dict) -> Dict:
    """The reference from the named system's runs in a `compare` report."""
    report_path, system = Path(definition["reference"]["report"]), definition["reference"]["system"]
    if not report_path.is_file():
        raise DefinitionError(f"reference: {report_path} does not exist")
    try:
        runs = json.loads(report_path.read_text(encoding="utf8"))["runs"]
    except (ValueError, KeyError, TypeError) as error:
        raise DefinitionError(f"reference: {report_path}: not a comparison report ({error})") from error
    mine = [run for run in runs if run.get("system") == system]
    if not mine:
        raise DefinitionError(f"reference: {report_path} has no runs of system {system!r}")
    return reference_summary(mine, f"{portable(str(report_path.resolve()))}: {system}")


def first_reaching(rounds: List[Dict], threshold: float) -> Optional[int]:
    """The labelled count of the first round (in round order) whose test F1 is at least `threshold`."""
    return next((r["labelled"] for r in sorted(rounds, key=lambda r: r["round"]) if r["test_f1"] >= threshold), None)


def read_off(
    rounds: List[Dict], reference_f1: Optional[float], share: float, planned: int, goal: float, strategies: List[str]
) -> Dict:
    """Per strategy and seed the labelled count at which test F1 first reaches
    `share` of `reference_f1` (None: no finished round does; `complete` says
    whether the chain ran all `planned` rounds), and each strategy's ratio to
    random: per seed, and of the means over the seeds where every seed of both
    reached it (None otherwise). Nothing is extrapolated."""
    if reference_f1 is None:
        return {"threshold_f1": None, "reason": "no reference F1 yet", "chains": [], "ratios": {}}
    threshold = share * reference_f1
    chains: Dict[str, Dict[int, Dict]] = {}
    for strategy in strategies:
        for seed in sorted({r["seed"] for r in rounds if r["strategy"] == strategy}):
            mine = [r for r in rounds if r["strategy"] == strategy and r["seed"] == seed]
            chains.setdefault(strategy, {})[seed] = {
                "strategy": strategy,
                "seed": seed,
                "reached_at": first_reaching(mine, threshold),
                "rounds_run": len(mine),
                "complete": len(mine) >= planned,
            }
    ratios: Dict[str, Dict] = {}
    base = chains.get(Strategy.random.value, {})
    for strategy in strategies:
        if strategy == Strategy.random.value or strategy not in chains:
            continue
        mine = chains[strategy]
        per_seed = {
            seed: mine[seed]["reached_at"] / base[seed]["reached_at"]
            for seed in mine
            if seed in base and mine[seed]["reached_at"] is not None and base[seed]["reached_at"] is not None
        }
        seeds = sorted(set(mine) & set(base))
        reached = seeds and all(mine[s]["reached_at"] is not None and base[s]["reached_at"] is not None for s in seeds)
        of_means = (
            statistics.fmean(mine[s]["reached_at"] for s in seeds)
            / statistics.fmean(base[s]["reached_at"] for s in seeds)
            if reached
            else None
        )
        ratios[strategy] = {
            "per_seed": per_seed,
            "of_means": of_means,
            "seeds": seeds,
            "goal": goal,
            "meets_goal": None if of_means is None else of_means <= goal,
        }
    return {
        "share": share,
        "reference_f1": reference_f1,
        "threshold_f1": threshold,
        "chains": [chain for strategy in chains.values() for chain in strategy.values()],
        "ratios": ratios,
    }


def stats(values: Sequence[Optional[float]]) -> Optional[Dict]:
    """Mean, min and max of the values that are not None (None if there are none)."""
    known = [value for value in values if value is not None]
    return {"mean": statistics.fmean(known), "min": min(known), "max": max(known)} if known else None


def aggregate(rounds: List[Dict], strategies: List[str]) -> List[Dict]:
    """One row per strategy and round: test and dev F1 over the seeds that ran it."""
    rows = []
    for strategy in strategies:
        for number in sorted({r["round"] for r in rounds if r["strategy"] == strategy}):
            mine = [r for r in rounds if r["strategy"] == strategy and r["round"] == number]
            rows.append(
                {
                    "strategy": strategy,
                    "series": strategy,
                    "round": number,
                    "target": mine[0]["target"],
                    "labelled": [r["labelled"] for r in mine],
                    "seeds": [r["seed"] for r in mine],
                    "test_f1": stats([r["test_f1"] for r in mine]),
                    "dev_f1": stats([r["dev_f1"] for r in mine]),
                    "train_minutes": statistics.fmean(r["train_minutes"] for r in mine),
                    "selection_seconds": stats([r["selection_seconds"] for r in mine]),
                    "pool": max(r["pool"] for r in mine),
                }
            )
    return rows


def format_markdown(
    rows: List[Dict], strategies: List[str], seeds: List[int], reference: Optional[Dict], off: Dict
) -> str:
    """The table (labelled sentences x strategy: test F1 mean (min-max) over the
    seeds), the reference, the read-off and the selection times."""
    shown = [s for s in strategies if any(row["strategy"] == s for row in rows)]
    cells = {(row["target"], row["strategy"]): row for row in rows}
    lines = [
        "| labelled sentences | " + " | ".join(f"{s} test F1" for s in shown) + " |",
        "| ---: | " + " | ".join("---:" for _ in shown) + " |",
    ]
    short = False
    for target in sorted({row["target"] for row in rows}):
        line = [str(target)]
        for strategy in shown:
            row = cells.get((target, strategy))
            if row is None:
                line.append("")
                continue
            f1 = row["test_f1"]
            text = f"{100 * f1['mean']:.2f} ({100 * f1['min']:.2f}–{100 * f1['max']:.2f})"
            if len(row["seeds"]) < len(seeds):
                text += f" [seeds {','.join(map(str, row['seeds']))}]"
            if min(row["labelled"]) < target:
                text += " †"
                short = True
            line.append(text)
        lines.append("| " + " | ".join(line) + " |")
    lines += ["", f"Test micro F1 in %: mean (min–max) over seeds {', '.join(map(str, seeds))}."]
    if short:
        lines.append(
            "† Some seed trained on fewer sentences than the row's (diverse's per-document cap): see the report."
        )
    if reference is None:
        lines.append("Full-data reference: none yet (its runs have not finished).")
    else:
        lines.append(
            f"Full-data reference: {100 * reference['test_f1']:.2f} test F1 ({reference['source']}); "
            f"{100 * off['share']:.0f} % of it: {100 * off['threshold_f1']:.2f}."
        )
        lines += ["", "| strategy | seed | labelled sentences at the threshold |", "| --- | ---: | ---: |"]
        for chain in off["chains"]:
            reached = chain["reached_at"]
            if reached is None:
                reached = f"not reached in {chain['rounds_run']} rounds" + ("" if chain["complete"] else " (so far)")
            lines.append(f"| {chain['strategy']} | {chain['seed']} | {reached} |")
        lines.append("")
        for strategy, ratio in off["ratios"].items():
            value = (
                "n/a (not every seed reached the threshold)"
                if ratio["of_means"] is None
                else f"{ratio['of_means']:.2f}"
            )
            lines.append(
                f"- {strategy} / random, labelled sentences at the threshold: {value} (goal <= {ratio['goal']})"
            )
    lines += [
        "",
        "| strategy | selection s (mean) | selection s (max) | largest pool |",
        "| --- | ---: | ---: | ---: |",
    ]
    for strategy in shown:
        mine = [row for row in rows if row["strategy"] == strategy]
        times = [row["selection_seconds"] for row in mine if row["selection_seconds"]]
        mean = f"{statistics.fmean(t['mean'] for t in times):.1f}" if times else ""
        top = f"{max(t['max'] for t in times):.1f}" if times else ""
        lines.append(f"| {strategy} | {mean} | {top} | {max(row['pool'] for row in mine)} |")
    lines.append("")
    lines.append("Selection: the whole remaining pool, the model's loading included (random scores nothing).")
    return "\n".join(lines) + "\n"


def plot_simulation(rows: List[Dict], reference: Optional[Dict], share: float, path: Path) -> None:
    """Test F1 against labelled sentences, one line per strategy (mean over the
    seeds at each round's target), its band the seeds' min to max; the full-data
    reference and its `share` as horizontal lines."""
    import matplotlib.pyplot as plt  # after pos_ner.evaluation.plots chose the Agg backend

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy in dict.fromkeys(row["strategy"] for row in rows):
        points = sorted((row for row in rows if row["strategy"] == strategy), key=lambda row: row["target"])
        x = [row["target"] for row in points]
        ax.plot(x, [100 * row["test_f1"]["mean"] for row in points], marker="o", label=series_label(strategy, points))
        low, high = ([100 * row["test_f1"][key] for row in points] for key in ("min", "max"))
        ax.fill_between(x, low, high, alpha=0.2)
    if reference is not None:
        f1 = 100 * reference["test_f1"]
        ax.axhline(f1, color="black", linewidth=1, label=f"full data ({f1:.2f})")
        ax.axhline(share * f1, color="black", linewidth=1, linestyle="--", label=f"{100 * share:.0f} % of full data")
    ax.set(
        xlabel="labelled sentences", ylabel="test micro F1 (%)", title="Selection simulation (band: min-max over seeds)"
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, path)


def result_name(result: Dict) -> str:
    if result.get("reference"):
        return f"reference-seed{result['seed']}"
    return f"{chain_name(result['strategy'], result['seed'])} round {result['round']}"


def result_path(workdir: Path, result: Dict) -> Path:
    if result.get("reference"):
        return reference_path(workdir, result["seed"])
    return round_path(workdir, result["strategy"], result["seed"], result["round"])


def restore(earlier: Path, workdir: Path, recipes: Dict[Tuple[Optional[str], int], Dict]) -> None:
    """Write back into `workdir` the rounds (and reference runs) of the report
    `earlier` that it lacks; DefinitionError for one that is not of the
    definition or has another recipe (rewriting the report would lose it)."""
    if not earlier.exists():
        return
    try:
        report = json.loads(earlier.read_text(encoding="utf8"))
        stored = [*report["rounds"], *report["reference_runs"]]
    except (ValueError, KeyError, TypeError) as error:
        raise DefinitionError(f"{earlier}: not a selection simulation report ({error})") from error
    for result in stored:
        key = (None if result.get("reference") else result["strategy"], result["seed"])
        if key not in recipes:
            raise DefinitionError(
                f"{earlier}: {result_name(result)} is not of this definition; give another --output or move it away"
            )
        changed = recipe_differences(recipes[key], result["recipe"])
        if changed:
            raise DefinitionError(
                f"{earlier}: {result_name(result)} has another recipe (differs in {', '.join(changed)}); "
                "give another --output or move it away"
            )
        path = result_path(workdir, result)
        if not path.exists():
            write_text(path, json.dumps({**result, "recipe": recipes[key]}, indent=2))
            print(f"{result_name(result)}: restored from {earlier}", flush=True)


def stored_rounds(workdir: Path, strategy: str, seed: int, recipe: Dict) -> List[Dict]:
    """The chain's finished rounds in the workdir, from round 0 to the first missing."""
    rounds: List[Dict] = []
    while (result := read_result(round_path(workdir, strategy, seed, len(rounds)), recipe)) is not None:
        rounds.append(result)
    return rounds


def simulate(
    definition_path: Path,
    corpus_dir: Path,
    workdir: Path,
    output: Path,
    gpu: str = "auto",
    only: Optional[List[str]] = None,
    seeds: Optional[List[int]] = None,
    report_only: bool = False,
) -> Dict:
    """Run (or resume) the chains selected by `only` (strategies) and `seeds`
    (all by default; nothing with `report_only`), then write `output` (JSON), its
    .md table and .png figure of every finished round of the definition; returns
    the report, whose "failed" lists the chains a failed round stopped (and the
    reference runs that failed)."""
    definition = load_definition(definition_path)
    strategies, every_seed = definition["strategies"], definition["seeds"]
    if set(only or []) - set(strategies):
        raise DefinitionError(f"--only: {sorted(set(only or []) - set(strategies))} not in the strategies {strategies}")
    if set(seeds or []) - set(every_seed):
        raise DefinitionError(f"--seed: {sorted(set(seeds or []) - set(every_seed))} not in the seeds {every_seed}")
    corpus = {split: (corpus_dir / f"{split}.spacy").resolve() for split in ("train", "dev", "test")}
    missing = [str(path) for path in corpus.values() if not path.exists()]
    if missing:
        raise DefinitionError(f"{', '.join(missing)} do(es) not exist (run the convert step first)")
    pool = load_pool(corpus["train"])
    size = len(pool.sentences)
    if definition["start"] > size:
        raise DefinitionError(f"start {definition['start']}: {corpus['train']} has only {size} sentences")
    planned = targets(definition, size)
    workdir = workdir.resolve()
    runs_reference = bool(definition["reference"].get("all_sentences"))
    kinds: List[Optional[str]] = [*strategies, *([None] if runs_reference else [])]
    recipes = {
        (kind, seed): chain_recipe(definition, kind, seed, corpus, size) for seed in every_seed for kind in kinds
    }
    restore(output, workdir, recipes)
    reference = None if runs_reference else stored_reference(definition)
    chains = {(s, seed): stored_rounds(workdir, s, seed, recipes[(s, seed)]) for seed in every_seed for s in strategies}
    references = {
        seed: found
        for seed in every_seed
        if runs_reference and (found := read_result(reference_path(workdir, seed), recipes[(None, seed)])) is not None
    }
    failed: List[Dict] = []
    for seed in [] if report_only else [s for s in every_seed if not seeds or s in seeds]:
        if runs_reference and seed not in references:
            try:
                references[seed] = run_reference(seed, definition, pool, corpus, recipes[(None, seed)], gpu, workdir)
            except RunFailed as error:  # the chains still go ahead
                print(f"reference-seed{seed}: FAILED: {error}", file=sys.stderr, flush=True)
                failed.append({"reference": True, "seed": seed, "error": str(error)})
        running = [s for s in strategies if not only or s in only]
        for _ in planned:  # round by round, so that the seed's strategies grow together
            for strategy in list(running):
                rounds = chains[(strategy, seed)]
                if len(rounds) >= len(planned):
                    continue
                try:
                    rounds.append(
                        run_round(
                            strategy, seed, rounds, definition, pool, corpus, recipes[(strategy, seed)], gpu, workdir
                        )
                    )
                except RunFailed as error:  # the chain stops, the others go ahead; the exit status says so
                    print(f"{chain_name(strategy, seed)}: FAILED: {error}", file=sys.stderr, flush=True)
                    failed.append({"strategy": strategy, "seed": seed, "round": len(rounds), "error": str(error)})
                    running.remove(strategy)
    reference_runs = [references[seed] for seed in every_seed if seed in references]
    if runs_reference and reference_runs:
        steps = recipes[(None, every_seed[0])]["steps"]
        reference = reference_summary(reference_runs, f"a run per seed on all {size} pool sentences, {steps} steps")
    rounds = [result for chain in chains.values() for result in chain]
    rows = aggregate(rounds, strategies)
    reference_f1 = None if reference is None else reference["test_f1"]
    off = read_off(rounds, reference_f1, definition["target_share"], len(planned), definition["goal_ratio"], strategies)
    markdown = format_markdown(rows, strategies, every_seed, reference, off)
    report = {
        "definition": str(definition_path),
        "settings": definition,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "spacy": spacy.__version__,
            "cpus": os.cpu_count(),
        },
        "pool": {"file": portable(str(corpus["train"])), "documents": len(pool.docs), "sentences": size},
        "targets": planned,
        "reference": reference,
        "reference_runs": reference_runs,
        "rounds": rounds,
        "table": rows,
        "read_off": off,
        "failed": failed,
        "not_run": [chain_name(s, seed) for (s, seed), chain in chains.items() if not chain],
    }
    write_text(output, json.dumps(report, indent=2))
    write_text(markdown_path(output), markdown)
    if rows:
        plot_simulation(rows, reference, definition["target_share"], figure_path(output))
    report["markdown"] = markdown
    return report
