"""onnxruntime's CPU session options for the ONNX backend: the memory arena and
the per-shape memory patterns, on and off, for the fp32 and int8 models of an
export. Each of the 8 settings runs in its own process (`pos_ner.onnx.runtime.
onnx_pipeline` with those options, `nlp.pipe` over the documents of a DocBin,
batch size 32): words/s (median of --repeats passes after a warm-up) and the
process's peak RSS (VmHWM). Prints a table and writes JSON (counts and timings only).

    python benchmarks/onnx_session.py --onnx-dir training/pos_ner/onnx --data corpus/dev.spacy
"""

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx-dir", default=str(ROOT / "training" / "pos_ner" / "onnx"))
    p.add_argument("--data", default=str(ROOT / "corpus" / "dev.spacy"))
    p.add_argument("--limit-docs", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: one per core)")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "onnx_session.json"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("int8", "arena", "pattern"):
        p.add_argument(f"--{name}", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    for path, step in ((args.onnx_dir, "spacy project run export-onnx"), (args.data, "spacy project run convert")):
        if not Path(path).exists():
            sys.exit(f"onnx_session.py: not found: {path}: run `{step}` first")
    results = []
    for int8, arena, pattern in itertools.product((0, 1), repeat=3):
        command = [sys.executable, __file__, "--child", "--onnx-dir", args.onnx_dir, "--data", args.data]
        command += ["--limit-docs", str(args.limit_docs), "--repeats", str(args.repeats)]
        command += ["--threads", str(args.threads)]
        command += ["--int8", str(int8), "--arena", str(arena), "--pattern", str(pattern)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
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


if __name__ == "__main__":
    main()
