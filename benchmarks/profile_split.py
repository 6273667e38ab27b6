"""Where a pipeline's inference time goes: py-spy samples `nlp.pipe` over dev
documents and each sample is put in one part of the pipeline (the innermost
frame of its stack that belongs to a part), so the split covers the whole
run and nothing is counted twice. Prints a table and writes JSON.

    python -m benchmarks.profile_split --model training/pos_ner/model-best \
        --data corpus/dev.spacy --limit-docs 60 --output benchmarks/results/profile_split.json

Needs py-spy (`pip install py-spy`; it samples the child process, which
runs `nlp.pipe` as `speed.py` does: raw texts in, batch size 32, after one
warm-up pass). Only samples taken inside the timed passes are counted.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

import typer

ROOT = Path(__file__).resolve().parent.parent
# (part, pattern on "function (file:line)"), tried on each frame from the innermost outwards: the first
# frame that matches names the part. Order matters only within one frame.
PARTS: List[Tuple[str, str]] = [
    ("encoder forward (torch)", r"torch/nn/|torch/_tensor|torch/functional"),
    ("wordpiece tokenizer (HF)", r"transformers/tokenization_|tokenizers/"),
    ("wordpiece alignment", r"spacy_transformers/align|spacy_transformers/layers/hf_wrapper|_align|alignment"),
    ("span windows", r"pos_ner/windows|pos_ner/span_getters|spacy_transformers/span_getters"),
    ("transformer wrapper (spacy-transformers)", r"spacy_transformers/"),
    ("pos_ner decoding", r"pos_ner/decoding|set_entities|set_annotations \(.*pos_ner"),
    ("pos_ner classifier", r"pos_ner/architectures|pos_ner/layers|pos_ner/pipeline_component"),
    ("tagger", r"spacy/pipeline/tagger|spacy/ml/models/tagger"),
    ("thinc layers", r"thinc/"),
    ("spaCy tokenizer and Doc", r"spacy/tokenizer|make_doc|_ensure_doc|spacy/tokens"),
    ("spaCy pipeline loop", r"spacy/language|spacy/util"),
]
FRAME = re.compile(r"^(.*) \((.*)\)$")
TIMED = "timed_passes"

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def classify(stack: List[str]) -> str:
    for frame in reversed(stack):
        for part, pattern in PARTS:
            if re.search(pattern, frame):
                return part
    return "other"


def split(raw_path: Path) -> Tuple[Dict[str, int], int]:
    """Samples per part, of the stacks inside the timed passes; and their total."""
    counts: Counter = Counter()
    for line in raw_path.read_text(encoding="utf8", errors="replace").splitlines():
        stack_text, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        stack = stack_text.split(";")
        # py-spy writes stacks outermost first; keep the frames below the timed function only
        inside = [i for i, frame in enumerate(stack) if frame.startswith(TIMED + " ")]
        if not inside:
            continue
        counts[classify(stack[inside[0] + 1 :])] += int(n)
    return dict(counts), sum(counts.values())


def timed_passes(nlp, texts: List[str], repeats: int, batch_size: int) -> List[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _doc in nlp.pipe(texts, batch_size=batch_size):
            pass
        seconds.append(time.perf_counter() - start)
    return seconds


def child(args) -> None:
    import spacy
    import torch
    from spacy.tokens import DocBin

    if args.threads:
        torch.set_num_threads(args.threads)
    nlp = spacy.load(args.model)
    docs = list(DocBin().from_disk(args.data).get_docs(nlp.vocab))[: args.limit_docs]
    texts = [doc.text for doc in docs]
    for _doc in nlp.pipe(texts[:8], batch_size=args.batch_size):  # warm-up, not sampled (outside timed_passes)
        pass
    padding = count_padding(nlp)
    seconds = timed_passes(nlp, texts, args.repeats, args.batch_size)
    words = sum(len(doc) for doc in docs)
    result = {"words": words, "docs": len(docs), "seconds": seconds, "threads": torch.get_num_threads()}
    if padding["calls"]:
        result["padding"] = {**padding, "share": 1 - padding["real"] / padding["positions"]}
    Path(args.child_output).write_text(json.dumps(result))


def count_padding(nlp) -> Dict[str, int]:
    """Counts, over the encoder's forward calls, its input positions and the
    real (attention mask 1) ones: the share of the encoder's work spent on
    padding, which grows when windows of very different lengths share a batch."""
    counts = {"calls": 0, "positions": 0, "real": 0, "windows": 0}

    def hook(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is None:
            return
        counts["calls"] += 1
        counts["positions"] += int(mask.numel())
        counts["real"] += int(mask.sum())
        counts["windows"] += int(mask.shape[0])

    for _name, component in nlp.pipeline:
        for node in getattr(component, "model", None).walk() if hasattr(component, "model") else []:
            for shim in getattr(node, "shims", []):
                module = getattr(shim, "_model", None)
                if module is not None and hasattr(module, "register_forward_pre_hook"):
                    module.register_forward_pre_hook(hook, with_kwargs=True)
    return counts


@app.command(help=__doc__.split("\n\n")[0])
def main(
    model: str = typer.Option(str(ROOT / "training" / "pos_ner" / "model-best")),
    data: str = typer.Option(str(ROOT / "corpus" / "dev.spacy")),
    limit_docs: int = typer.Option(60),
    repeats: int = typer.Option(3),
    batch_size: int = typer.Option(32),
    threads: int = typer.Option(0, help="torch threads (0: torch's default)"),
    rate: int = typer.Option(100, help="py-spy samples per second"),
    output: str = typer.Option(str(ROOT / "benchmarks" / "results" / "profile_split.json")),
    child_output: Optional[str] = typer.Option(None, hidden=True),
) -> Dict:
    args = SimpleNamespace(**locals())
    if args.child_output:
        child(args)
        return {}
    for path, step in [(args.model, "spacy project run train"), (args.data, "spacy project run convert")]:
        if not Path(path).exists():
            sys.exit(f"profile_split.py: not found: {path} ({step}): run that step first")
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        sys.exit("profile_split.py: needs py-spy (pip install py-spy)")
    with tempfile.TemporaryDirectory() as tmp:
        raw, timing = Path(tmp) / "stacks.txt", Path(tmp) / "timing.json"
        command = [py_spy, "record", "--format", "raw", "--rate", str(args.rate), "--output", str(raw), "--"]
        command += [sys.executable, "-m", "benchmarks.profile_split", *sys.argv[1:], "--child-output", str(timing)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=child_env())
        counts, total = split(raw)
        run = json.loads(timing.read_text())
    words_per_s = sorted(run["words"] / s for s in run["seconds"])[len(run["seconds"]) // 2]
    parts = sorted(counts.items(), key=lambda kv: -kv[1])
    report = {
        "model": args.model,
        "data": args.data,
        "docs": run["docs"],
        "words": run["words"],
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "threads": run["threads"],
        "cpus": os.cpu_count(),
        "words_per_second_median": words_per_s,
        "samples": total,
        "rate": args.rate,
        "split": {part: n / total for part, n in parts},
        "encoder_padding": run.get("padding"),
    }
    print(f"{run['docs']} docs, {run['words']} words, median {words_per_s:.0f} words/s under py-spy, {total} samples")
    print(f"{'part':<42} {'share':>7}")
    for part, n in parts:
        print(f"{part:<42} {100 * n / total:6.1f}%")
    if run.get("padding"):
        pad = run["padding"]
        print(
            f"encoder input: {pad['windows']} windows in {pad['calls']} calls, "
            f"{100 * pad['share']:.1f}% of its positions are padding"
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    return report


def child_env() -> Dict[str, str]:
    """The environment of a child `python -m benchmarks.profile_split`: the checkout's root first on its path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


if __name__ == "__main__":
    app()
