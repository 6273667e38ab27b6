"""Throughput of `pos-ner annotate` (Ray Data, an actor pool) against plain
`nlp.pipe` in one process, on the same machine and the same texts: the
documents of a DocBin (their gold tokens joined by spaces, as speed.py) or the
"text" fields of a JSONL file.

Systems:
- nlp.pipe: one process (spawned), torch on --num-cpus threads. Each repeat
  loads the model (after an untimed warm-up load) and pipes every text:
  words/s without the load (steady) and with it (end to end).
- ray-N: `pos_ner.batch.annotate` (what `pos-ner annotate` runs) with N actors
  on a local Ray cluster of --num-cpus CPUs, each actor with --num-cpus / N
  CPUs and as many torch threads, JSONL in, Parquet out. The cluster is
  started once (ray_start_seconds, reported apart and not in any words/s);
  each repeat starts its actors afresh, so its end-to-end words/s include the
  actors' start and model load, and reading the input and writing the output.
  "steady" is an estimate without them: the words after the first annotated
  block over the time after it. A warm-up run (a few batches) comes first.

Medians over --repeats; min and max of the end-to-end words/s too. The entity
count of every system is compared with nlp.pipe's (same_entities). The output
JSON holds counts and timings only, no text.
"""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

import typer

ROOT = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


# ---------------------------------------------------------------- data


def load_texts(data_path: Path, limit_docs, text_field: str = "text") -> List[str]:
    """The texts of a DocBin (gold tokens joined by spaces) or of a JSONL file's `text_field`."""
    if data_path.suffix == ".spacy":
        from spacy.tokens import DocBin
        from spacy.vocab import Vocab

        texts = [" ".join(t.text for t in doc) for doc in DocBin().from_disk(data_path).get_docs(Vocab())]
    else:
        texts = []
        with data_path.open(encoding="utf8") as file:
            for line in file:
                if line.strip():
                    value = json.loads(line).get(text_field)
                    if isinstance(value, str):
                        texts.append(value)
    return texts[:limit_docs] if limit_docs else texts


def write_jsonl(texts: List[str], path: Path) -> Path:
    with path.open("w", encoding="utf8") as file:
        for i, text in enumerate(texts):
            file.write(json.dumps({"id": i, "text": text}, ensure_ascii=False) + "\n")
    return path


# ---------------------------------------------------------------- systems


def measure_pipe(model: str, texts: List[str], batch_size: int, threads: int, repeats: int) -> Dict:
    """In a spawned child: nlp.pipe over all texts, `repeats` times, each with a fresh model load."""
    import spacy
    import torch

    torch.set_num_threads(threads)
    warm = spacy.load(model)  # imports, file cache
    for _ in warm.pipe(texts[: max(1, min(len(texts), 2 * batch_size))], batch_size=batch_size):
        pass
    del warm
    loads, pipes, n_words, n_ents = [], [], 0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        nlp = spacy.load(model)
        loaded = time.perf_counter()
        n_words = n_ents = 0
        for doc in nlp.pipe(texts, batch_size=batch_size):
            n_words += len(doc)
            n_ents += len(doc.ents)
        pipes.append(time.perf_counter() - loaded)
        loads.append(loaded - start)
        del nlp
    return {"n_words": n_words, "n_entities": n_ents, "load_seconds": loads, "pipe_seconds": pipes}


def in_subprocess(func, *args):
    """func(*args) in a spawned process (its model and threads stay out of this one)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(func, args)


def annotate_once(model: str, source: Path, output: Path, batch_size: int, actors: int) -> Dict:
    """One `pos-ner annotate` run through pos_ner.batch (on the Ray session this process holds)."""
    import pyarrow.parquet as pq

    from pos_ner import batch

    timings: Dict[str, float] = {}
    rejects: List[batch.Bad] = []
    job = batch.Job(model=model, batch_size=batch_size, actors=actors, gpu=False)
    start = time.perf_counter()
    with source.open("rb") as file, output.open("wb") as out:
        counts = batch.annotate(
            batch.read_jsonl(file, "text", "id"),
            job,
            lambda kind: batch.ParquetWriter(out, "id", kind),
            rejects.append,
            timings,
        )
    timings["total_s"] = time.perf_counter() - start
    if counts.rejected:
        raise SystemExit(f"annotate_ray.py: {counts.rejected} records rejected, e.g. {rejects[0]}")
    entities = pq.read_table(output, columns=["entities"]).column("entities").to_pylist()
    timings["n_entities"] = sum(len(row) for row in entities)
    timings["n_records"] = counts.written
    return timings


def summarise_pipe(raw: Dict) -> Dict:
    n_words = raw["n_words"]
    steady = [n_words / s for s in raw["pipe_seconds"]]
    e2e = [n_words / (load + pipe) for load, pipe in zip(raw["load_seconds"], raw["pipe_seconds"])]
    return {
        "words_per_second": statistics.median(e2e),
        "words_per_second_min": min(e2e),
        "words_per_second_max": max(e2e),
        "words_per_second_runs": e2e,
        "steady_words_per_second": statistics.median(steady),
        "model_load_seconds": statistics.median(raw["load_seconds"]),
        "startup_seconds": statistics.median(raw["load_seconds"]),
        "n_entities": raw["n_entities"],
    }


def summarise_ray(runs: List[Dict], n_words: int) -> Dict:
    e2e = [n_words / run["total_s"] for run in runs]
    steady = []
    for run in runs:
        rest = 1 - run["first_batch_rows"] / run["n_records"]
        after = run["annotate_s"] - run["first_batch_s"]
        if rest > 0 and after > 0:
            steady.append(n_words * rest / after)
    return {
        "words_per_second": statistics.median(e2e),
        "words_per_second_min": min(e2e),
        "words_per_second_max": max(e2e),
        "words_per_second_runs": e2e,
        "steady_words_per_second": statistics.median(steady) if steady else None,
        # actors' start and model load, plus the first block's annotation
        "startup_seconds": statistics.median(run["first_batch_s"] for run in runs),
        "read_seconds": statistics.median(run["read_s"] for run in runs),
        "total_seconds": statistics.median(run["total_s"] for run in runs),
        "n_entities": runs[-1]["n_entities"],
    }


# ---------------------------------------------------------------- report


def display_path(path) -> str:
    """`path` relative to the repository when it is inside it (the JSON is committed)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def format_table(report: Dict) -> str:
    head = (
        f"{report['n_docs']} docs, {report['n_words']} words, num_cpus={report['num_cpus']}, "
        f"batch_size={report['batch_size']}, repeats={report['repeats']}, "
        f"Ray start {report['ray_start_seconds']:.1f} s (not in words/s)"
    )
    columns = ["system", "actors", "threads/actor", "words/s (end to end)", "min", "max", "steady words/s"]
    columns += ["startup s", "same entities"]
    rows = ["| " + " | ".join(columns) + " |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in report["systems"].items():
        steady = "" if r["steady_words_per_second"] is None else f"{r['steady_words_per_second']:.0f}"
        rows.append(
            f"| {name} | {r['actors']} | {r['threads_per_actor']} | {r['words_per_second']:.0f} | "
            f"{r['words_per_second_min']:.0f} | {r['words_per_second_max']:.0f} | {steady} | "
            f"{r['startup_seconds']:.1f} | {r['same_entities']} |"
        )
    note = (
        "end to end: nlp.pipe with its model load; ray-N with its actors' start and model load, reading and "
        "writing. startup: nlp.pipe's model load; ray-N's time to the first annotated block."
    )
    return "\n".join([head, "", *rows, "", note])


@app.command(help=__doc__.split("\n\n")[0])
def main(
    model: str = typer.Option(str(ROOT / "training" / "pos_ner" / "model-best")),
    data: str = typer.Option(str(ROOT / "corpus" / "dev.spacy"), help="a DocBin (.spacy) or a JSONL file"),
    text_field: str = typer.Option("text", help="the text field of a JSONL --data"),
    output: str = typer.Option(str(ROOT / "benchmarks" / "results" / "annotate_ray.json")),
    limit_docs: Optional[int] = typer.Option(None, help="use only the first N documents"),
    repeats: int = typer.Option(3),
    batch_size: int = typer.Option(64),
    actors: str = typer.Option("1,2", help="comma-separated actor counts to measure"),
    num_cpus: int = typer.Option(os.cpu_count(), help="the local Ray cluster's CPUs; nlp.pipe's threads"),
) -> Dict:
    args = SimpleNamespace(**locals())
    try:
        args.actors = [int(n) for n in actors.split(",") if n]
    except ValueError:
        raise typer.BadParameter("takes numbers, e.g. 1,2", param_hint="--actors") from None
    if not args.actors or min(args.actors) < 1 or max(args.actors) > num_cpus:
        raise typer.BadParameter(f"from 1 to --num-cpus ({num_cpus}) each", param_hint="--actors")
    from spacy.util import is_package

    missing = [
        f"{path} ({step})"
        for path, step in [(args.model, "spacy project run train"), (args.data, "spacy project run convert")]
        if not Path(path).exists() and not (path == args.model and is_package(path))
    ]
    if missing:
        sys.exit(f"annotate_ray.py: not found: {'; '.join(missing)}: run the step named first")
    import ray

    from pos_ner import batch

    wall = time.perf_counter()
    texts = load_texts(Path(args.data), args.limit_docs, args.text_field)
    if not texts:
        sys.exit(f"annotate_ray.py: {args.data}: no texts")
    print(f"[annotate_ray] nlp.pipe, {len(texts)} docs ...", file=sys.stderr, flush=True)
    raw = in_subprocess(measure_pipe, args.model, texts, args.batch_size, args.num_cpus, args.repeats)
    n_words = raw["n_words"]
    systems = {"nlp.pipe": {"actors": 0, "threads_per_actor": args.num_cpus, **summarise_pipe(raw)}}
    with tempfile.TemporaryDirectory() as tmp:
        source = write_jsonl(texts, Path(tmp) / "input.jsonl")
        warm_source = write_jsonl(texts[: 2 * args.batch_size], Path(tmp) / "warm.jsonl")
        start = time.perf_counter()
        with batch.ray_session(num_cpus=args.num_cpus):
            ray_start = time.perf_counter() - start
            batch.configure_data_context()
            for actors in args.actors:
                print(f"[annotate_ray] ray, {actors} actor(s) ...", file=sys.stderr, flush=True)
                output = Path(tmp) / f"out_{actors}.parquet"
                annotate_once(args.model, warm_source, output, args.batch_size, actors)
                runs = [annotate_once(args.model, source, output, args.batch_size, actors) for _ in range(args.repeats)]
                systems[f"ray-{actors}"] = {
                    "actors": actors,
                    "threads_per_actor": max(1, args.num_cpus // actors),
                    **summarise_ray(runs, n_words),
                    "runs": runs,
                }
    for result in systems.values():
        result["same_entities"] = result["n_entities"] == raw["n_entities"]
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "ray": ray.__version__},
        "model": display_path(args.model),
        "data": display_path(args.data),
        "argv": sys.argv[1:],
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "num_cpus": args.num_cpus,
        "n_docs": len(texts),
        "n_words": n_words,
        "ray_start_seconds": ray_start,
        "model_load_included": "nlp.pipe: in words_per_second, not in steady_words_per_second; ray-N: in "
        "words_per_second (each run starts its actors, which load the model), not in steady_words_per_second",
        "systems": systems,
    }
    table = format_table(report)
    print(table, flush=True)
    report["wall_seconds"] = time.perf_counter() - wall
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2), encoding="utf8")
    print(f"wrote {output} ({report['wall_seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    app()
