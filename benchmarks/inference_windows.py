"""What the encoder windows' overlap costs and buys at prediction (issue 12).

The default cuts documents into windows of 160 wordpieces, one every 120, so
the encoder computes about a quarter of the text twice. This benchmark loads one
trained pipeline once per setting of `[components.transformer.model.get_spans]`
(`window/stride`, nothing retrained), scores each on the same gold documents
with the project's seqeval evaluator, counts the encoder's input positions and
times `nlp.pipe` over raw texts, the settings interleaved within each repeat so
that the machine's drift hits them alike. Prints a table and writes JSON.

    python -m benchmarks.inference_windows --model training/pos_ner/model-best \
        --score corpus/dev.spacy --score corpus/test.spacy --speed corpus/dev.spacy --settings 160/120,160/140,160/160 \
        --output benchmarks/results/inference_windows.json
"""

import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Tuple

import typer

from benchmarks.profile_split import count_padding
from benchmarks.speed import load_texts

SPANS = "components.transformer.model.get_spans"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def parse_setting(text: str) -> Tuple[int, int]:
    try:
        window, stride = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"{text!r}: a setting is WINDOW/STRIDE, e.g. 160/120") from None
    if window < 1 or not 0 < stride <= window:
        raise ValueError(f"{text!r}: need window >= 1 and 0 < stride <= window")
    return window, stride


def load(model: str, window: int, stride: int):
    import spacy

    nlp = spacy.load(model, config={f"{SPANS}.window": window, f"{SPANS}.stride": stride})
    getter = nlp.config["components"]["transformer"]["model"]["get_spans"]
    if getter.get("@span_getters") != "pos_ner.wordpiece_windows.v1":
        raise SystemExit(f"{model}: its span getter is {getter.get('@span_getters')}, not pos_ner.wordpiece_windows.v1")
    return nlp


def scores(nlp, gold_docs) -> Dict:
    from pos_ner.evaluation.scores import evaluate

    counts = count_padding(nlp)
    metrics, _ = evaluate(nlp, gold_docs)
    entities = metrics["entities"]
    return {
        "f1": entities["micro"]["f1-score"],
        "per_type": {label: entities["per_type"][label]["f1-score"] for label in sorted(entities["per_type"])},
        "positions": counts["positions"],
        "real_positions": counts["real"],
        "windows": counts["windows"],
        "words": metrics["n_words"],
    }


@app.command(help=__doc__.split("\n\n")[0])
def main(
    model: str = typer.Option(..., help="A trained pipeline with pos_ner.wordpiece_windows.v1"),
    score: List[Path] = typer.Option(..., help="Gold DocBin to score each setting on (repeatable)"),
    speed: Path = typer.Option(..., help="DocBin whose raw texts are timed"),
    limit_docs: int = typer.Option(60),
    settings: str = typer.Option("160/120,160/140,160/160", help="WINDOW/STRIDE,... (first: baseline)"),
    repeats: int = typer.Option(5),
    batch_size: int = typer.Option(32),
    threads: int = typer.Option(0, help="torch threads (0: all cores)"),
    output: Path = typer.Option(...),
) -> Dict:
    try:
        windows = [parse_setting(part) for part in settings.split(",")]
    except ValueError as error:  # one line, not wrapped in a panel
        typer.echo(f"inference_windows: --settings: {error}", err=True)
        raise typer.Exit(2) from None

    import spacy
    import torch
    from spacy.tokens import DocBin

    torch.set_num_threads(threads or os.cpu_count() or 1)
    pipelines = {f"{w}/{s}": load(model, w, s) for w, s in windows}
    vocab = next(iter(pipelines.values())).vocab
    gold = {str(path): list(DocBin().from_disk(path).get_docs(vocab)) for path in score}
    texts, n_words, _ = load_texts(speed, limit_docs, n_sentences=0)
    results: Dict[str, Dict] = {}
    for name, nlp in pipelines.items():
        results[name] = {"scores": {}}
        for path, docs in gold.items():
            print(f"scoring {name} on {path} ...", flush=True)
            results[name]["scores"][path] = scores(nlp, docs)
    seconds: Dict[str, List[float]] = {name: [] for name in pipelines}
    for nlp in pipelines.values():  # warm-up
        for _ in nlp.pipe(texts[:8], batch_size=batch_size):
            pass
    for repeat in range(repeats):
        order = list(pipelines) if repeat % 2 == 0 else list(reversed(pipelines))
        for name in order:
            start = time.perf_counter()
            for _ in pipelines[name].pipe(texts, batch_size=batch_size):
                pass
            seconds[name].append(time.perf_counter() - start)
    words = sum(n_words)
    baseline = next(iter(pipelines))
    for name in pipelines:
        rates = [words / s for s in seconds[name]]
        results[name]["words_per_second"] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
    base = results[baseline]
    header = " | ".join(f"F1 {Path(path).name} | Δ" for path in gold)
    lines = [
        f"| window/stride | {header} | encoder positions per word | words/s median (min–max) | × {baseline} |",
        "| --- | " + "---: | ---: | " * len(gold) + "---: | ---: | ---: |",
    ]
    for name, row in results.items():
        rate = row["words_per_second"]
        f1s = [(row["scores"][path]["f1"], base["scores"][path]["f1"]) for path in gold]
        cells = [f"{100 * f1:.2f} | {100 * (f1 - base_f1):+.2f}" for f1, base_f1 in f1s]
        first = row["scores"][next(iter(gold))]
        lines.append(
            f"| {name} | {' | '.join(cells)} | {first['positions'] / first['words']:.3f} | "
            f"{rate['median']:,.0f} ({rate['min']:,.0f}–{rate['max']:,.0f}) | "
            f"{rate['median'] / base['words_per_second']['median']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    report = {
        "command": " ".join(["python", "-m", "benchmarks.inference_windows", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "spacy": spacy.__version__,
        "model": model,
        "score_data": list(gold),
        "speed_data": {"path": str(speed), "docs": len(texts), "words": words},
        "repeats": repeats,
        "batch_size": batch_size,
        "settings": results,
        "table": table,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2), encoding="utf8")
    return report


if __name__ == "__main__":
    app()
