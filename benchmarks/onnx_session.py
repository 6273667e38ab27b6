"""onnxruntime's CPU session options for the ONNX backend: the memory arena and
the per-shape memory patterns, on and off, for the fp32 and int8 models of an
export. Each of the 8 settings runs in its own process (`pos_ner.onnx.runtime.
onnx_pipeline` with those options, `nlp.pipe` over the documents of a DocBin,
batch size 32): words/s (median of --repeats passes after a warm-up) and the
process's peak RSS (VmHWM). Prints a table and writes JSON (counts and timings only).

    python -m benchmarks.onnx_session --onnx-dir training/pos_ner/onnx --data corpus/dev.spacy
"""

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict

import typer

ROOT = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def measure(args) -> dict:
    """In the child: one setting."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    from pos_ner.onnx.runtime import onnx_pipeline

    docs = list(DocBin().from_disk(args.data).get_docs(Vocab()))[: args.limit_docs]
    texts = [" ".join(t.text for t in doc) for doc in docs]
    words = sum(len(doc) for doc in docs)
    nlp = onnx_pipeline(
        args.onnx_dir,
        quantized=bool(args.int8),
        threads=args.threads,
        memory_arena=bool(args.arena),
        memory_pattern=bool(args.pattern),
    )
    list(nlp.pipe(texts[:4]))  # warm-up
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        list(nlp.pipe(texts, batch_size=32))
        runs.append(words / (time.perf_counter() - start))
    status = Path("/proc/self/status").read_text().splitlines()
    hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return {
        "model": "int8" if args.int8 else "fp32",
        "memory_arena": bool(args.arena),
        "memory_pattern": bool(args.pattern),
        "n_docs": len(texts),
        "n_words": words,
        "words_per_second": statistics.median(runs),
        "words_per_second_runs": runs,
        "peak_rss_mib": hwm_kib / 1024,
    }


@app.command(help=__doc__.split("\n\n")[0])
def main(
    onnx_dir: str = typer.Option(str(ROOT / "training" / "pos_ner" / "onnx")),
    data: str = typer.Option(str(ROOT / "corpus" / "dev.spacy")),
    limit_docs: int = typer.Option(60),
    repeats: int = typer.Option(3),
    threads: int = typer.Option(0, help="onnxruntime intra-op threads (0: one per core)"),
    output: str = typer.Option(str(ROOT / "benchmarks" / "results" / "onnx_session.json")),
    # internal: one setting in this process
    child: bool = typer.Option(False, "--child", hidden=True),
    int8: int = typer.Option(0, hidden=True),
    arena: int = typer.Option(0, hidden=True),
    pattern: int = typer.Option(0, hidden=True),
) -> None:
    args = SimpleNamespace(**locals())
    if args.child:
        print(json.dumps(measure(args)))
        return
    for path, step in ((args.onnx_dir, "spacy project run export-onnx"), (args.data, "spacy project run convert")):
        if not Path(path).exists():
            sys.exit(f"onnx_session.py: not found: {path}: run `{step}` first")
    results = []
    for int8, arena, pattern in itertools.product((0, 1), repeat=3):
        command = [sys.executable, "-m", "benchmarks.onnx_session", "--child"]
        command += ["--onnx-dir", args.onnx_dir, "--data", args.data]
        command += ["--limit-docs", str(args.limit_docs), "--repeats", str(args.repeats)]
        command += ["--threads", str(args.threads)]
        command += ["--int8", str(int8), "--arena", str(arena), "--pattern", str(pattern)]
        done = subprocess.run(command, check=True, capture_output=True, text=True, env=child_env())
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"{r['model']:5} arena={int(r['memory_arena'])} pattern={int(r['memory_pattern'])}  "
            f"{r['words_per_second']:6.0f} words/s  peak {r['peak_rss_mib']:5.0f} MiB",
            flush=True,
        )
    report = {"argv": sys.argv[1:], "results": results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2), encoding="utf8")
    print(f"wrote {args.output}")


def child_env() -> Dict[str, str]:
    """The environment of a child `python -m benchmarks.onnx_session`: the checkout's root first on its path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


if __name__ == "__main__":
    app()
