"""Speed benchmark: the PyTorch spaCy pipeline vs its ONNX export (fp32, int8)
vs a Hugging Face token-classification pipeline on the same encoder, on one
machine, on the documents of a DocBin (plain texts of their gold tokens).

Per system (each in its own subprocess, so peak RSS is per system and the
systems don't share caches or thread pools):
- throughput: words/s over all documents (median, min and max of --repeats runs,
  after a warm-up), with `pipe(..., batch_size)`;
- latency: one call per sentence for a sample of the documents' sentences
  (after a warm-up), p50/p90/mean in milliseconds;
- peak memory: the child's ru_maxrss (MiB), i.e. model loading included.

The HF baseline is a BertForTokenClassification built from the pipeline's
fine-tuned encoder with a classifier made of the pos_ner softmax's weights for
the transformer part of its input. The POS-embedding part of that input cannot
be represented, and the tagger is not run, so the baseline measures speed only,
not accuracy (and it does less work than the spaCy/ONNX paths).

--random-bert-base adds the same measurement on a randomly initialised
bert-base-shaped encoder (12 layers, 768 wide, 12 heads, 3072 intermediate,
the pipeline's own wordpiece vocab): a spaCy pipeline is built from
configs/pos_ner.cfg, initialised on a few documents, saved and exported to ONNX
in a temporary folder. Speed only; its predictions are meaningless.

The spacy-torch row also carries the FLOP ceiling of its encoder on this
machine: a torch fp32 matmul probe (the shape of the encoder's feed-forward
layer, the same threads) gives the GFLOP/s the CPU reaches; the encoder's shape
gives the FLOPs per wordpiece (dense layers plus attention over one window);
its tokenizer gives the wordpieces per word of the documents. Ceiling words/s =
GFLOP/s / (FLOP per wordpiece x wordpieces per word), counting each wordpiece
once (no window overlap, no padding): the share of it the pipeline reaches is
what overlap, padding and everything outside the encoder's matmuls cost.

--pipelines NAME=PATH,... measures several spaCy pipelines side by side instead
(e.g. the accuracy and efficiency presets): the spacy-torch measurement of each,
in its own process, plus its size on disk.

The output JSON holds counts and timings only, no text.
"""

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

import typer
from spacy.util import is_package

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ["spacy-torch", "spacy-torch-bf16", "onnx-fp32", "onnx-int8", "hf-pipeline"]
# The PyTorch rows: the pipeline in float32, and with its encoder autocast to bfloat16 (`--backend pytorch-bf16`).
TORCH_SYSTEMS = {"spacy-torch": False, "spacy-torch-bf16": True}

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


# ---------------------------------------------------------------- data


def load_texts(data_path: Path, limit_docs: Optional[int], n_sentences: int, seed: int = 0):
    """(document texts, their word counts, sampled sentence texts), gold tokens joined by spaces."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    docs = list(DocBin().from_disk(data_path).get_docs(Vocab()))
    if limit_docs:
        docs = docs[:limit_docs]
    texts = [" ".join(t.text for t in doc) for doc in docs]
    n_words = [len(doc) for doc in docs]
    sents = []
    for doc in docs:
        if doc.has_annotation("SENT_START"):
            sents.extend(" ".join(t.text for t in s) for s in doc.sents)
        else:
            sents.append(" ".join(t.text for t in doc))
    sents = [s for s in sents if s.strip()]
    rng = random.Random(seed)
    if len(sents) > n_sentences:
        sents = rng.sample(sents, n_sentences)
    return texts, n_words, sents


# ---------------------------------------------------------------- systems


def make_runner(system: str, args):
    """(pipe(texts) -> consumes all results, call(text)) for one system."""
    threads = args.threads or os.cpu_count()
    if system in TORCH_SYSTEMS:
        import torch

        from pos_ner.backends import Backend, load

        torch.set_num_threads(threads)
        nlp = load(args.model, Backend.pytorch_bf16 if TORCH_SYSTEMS[system] else Backend.pytorch)

        def pipe(texts):
            for _ in nlp.pipe(texts, batch_size=args.batch_size):
                pass

        return pipe, nlp
    if system in ("onnx-fp32", "onnx-int8"):
        # the ONNX backend as `pos-ner predict --backend onnx|onnx-int8` runs it
        from pos_ner.onnx.runtime import onnx_pipeline

        ner = onnx_pipeline(
            args.onnx_dir,
            quantized=system == "onnx-int8",
            threads=threads,
            memory_arena=bool(args.onnx_memory_arena),
            memory_pattern=bool(args.onnx_memory_pattern),
        )

        def pipe(texts):
            for _ in ner.pipe(texts, batch_size=args.batch_size):
                pass

        return pipe, ner
    if system == "hf-pipeline":
        import torch
        from transformers import pipeline

        torch.set_num_threads(threads)
        hf = pipeline(
            "token-classification",
            model=args.hf_dir,
            aggregation_strategy="simple",
            device="cpu",
            stride=args.hf_stride,
        )

        def pipe(texts):
            for _ in hf(texts, batch_size=args.batch_size):
                pass

        return pipe, hf
    raise ValueError(f"unknown system {system!r}")


def measure(system: str, args) -> Dict:
    """Run in the child process: throughput, latency and peak RSS of one system."""
    texts, n_words, sents = load_texts(Path(args.data), args.limit_docs, args.n_sentences)
    start = time.perf_counter()
    pipe, call = make_runner(system, args)
    load_s = time.perf_counter() - start
    pipe(texts[: max(1, min(len(texts), 4))])  # warm-up
    total_words = sum(n_words)
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        pipe(texts)
        runs.append(total_words / (time.perf_counter() - start))
    for sent in sents[:10]:  # warm-up
        call(sent)
    latencies = []
    for sent in sents:
        start = time.perf_counter()
        call(sent)
        latencies.append(1000 * (time.perf_counter() - start))
    latencies.sort()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    hwm_kib = vm_hwm_kib()
    median = statistics.median(runs)
    bf16 = TORCH_SYSTEMS.get(system)
    ceiling = flop_ceiling(call, texts, median, args.threads or os.cpu_count(), bf16) if bf16 is not None else None
    split = latency_split(call, sents, bf16) if bf16 is not None else None
    return {
        "system": system,
        "n_docs": len(texts),
        "n_words": total_words,
        "n_sentences": len(sents),
        "threads": args.threads or os.cpu_count(),
        "batch_size": args.batch_size,
        "load_seconds": load_s,
        "words_per_second": median,
        "words_per_second_min": min(runs),
        "words_per_second_max": max(runs),
        "words_per_second_runs": runs,
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p90": latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))],
        "latency_ms_mean": statistics.fmean(latencies),
        # VmHWM: this process image's peak RSS; ru_maxrss also counts what the
        # parent held when it forked, so it is only a fallback.
        "peak_rss_mib": (hwm_kib or peak_kib) / 1024,
        "ru_maxrss_mib": peak_kib / 1024,
        **({"flop_ceiling": ceiling} if ceiling else {}),
        **({"latency_split": split} if split else {}),
    }


def latency_split(nlp, sents: List[str], bf16: bool = False) -> Optional[Dict]:
    """Where a single sentence's time goes: the pipeline's p50, its encoder's
    forward inside it (hooks on the Hugging Face module), and the same module
    called bare on the sentence's wordpieces (eval mode, `inference_mode`, and
    with `bf16` under the same bfloat16 autocast): the floor that no wrapper
    around the encoder can go below."""
    import contextlib

    import torch

    trf = next((p for _, p in nlp.pipeline if hasattr(getattr(p, "model", None), "transformer")), None)
    if trf is None:
        return None
    encoder, tokenizer = trf.model.transformer, trf.model.tokenizer
    inside: List[float] = []
    in_pipeline = [False]

    def before(module, args, kwargs):
        module.pos_ner_started = time.perf_counter()

    def after(module, args, kwargs, output):
        if in_pipeline[0]:
            inside[-1] += 1000 * (time.perf_counter() - module.pos_ner_started)

    handles = [
        encoder.register_forward_pre_hook(before, with_kwargs=True),
        encoder.register_forward_hook(after, with_kwargs=True),
    ]
    # Sentence by sentence, the pipeline then the bare encoder, so that the
    # machine's drift hits both alike.
    pipeline, bare = [], []
    was_training = encoder.training
    try:
        for sent in sents:
            inside.append(0.0)
            in_pipeline[0] = True
            start = time.perf_counter()
            nlp(sent)
            pipeline.append(1000 * (time.perf_counter() - start))
            in_pipeline[0] = False
            encoder.eval()
            inputs = tokenizer(sent.split(" "), is_split_into_words=True, truncation=True, return_tensors="pt")
            start = time.perf_counter()
            precision = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with torch.inference_mode(), precision:
                encoder(**inputs)
            bare.append(1000 * (time.perf_counter() - start))
            encoder.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
        encoder.train(was_training)
    return {
        "pipeline_ms_p50": statistics.median(pipeline),
        "encoder_in_pipeline_ms_p50": statistics.median(inside),
        "bare_encoder_ms_p50": statistics.median(bare),
    }


def flop_ceiling(nlp, texts, words_per_second: float, threads: int, bf16: bool = False) -> Optional[Dict]:
    """The encoder's FLOP ceiling in words/s on this machine, and the share
    reached: with a float32 matmul probe, or a bfloat16 one for the `bf16` row."""
    import torch

    name, trf = next(((n, p) for n, p in nlp.pipeline if hasattr(getattr(p, "model", None), "transformer")), (0, 0))
    if not name:  # a CNN pipeline: no encoder to bound
        return None
    config, tokenizer = trf.model.transformer.config, trf.model.tokenizer
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    getter = nlp.config["components"][name]["model"].get("get_spans", {})
    window = int(getter.get("window", config.max_position_embeddings))
    # per wordpiece and layer: Q, K, V and output projections (4 h^2 multiply-adds),
    # the feed-forward layer (2 h i), attention scores and their weighted sum (2 h w)
    flop_per_wordpiece = 2 * layers * (4 * hidden * hidden + 2 * hidden * inner + 2 * hidden * window)
    words = [text.split(" ") for text in texts]
    pieces = tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
    pieces_per_word = sum(map(len, pieces)) / sum(map(len, words))
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(4096, hidden, dtype=dtype), torch.randn(hidden, inner, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    gflops = 2 * 4096 * hidden * inner / best / 1e9
    ceiling = gflops * 1e9 / (flop_per_wordpiece * pieces_per_word)
    return {
        "matmul_gflops": gflops,
        "matmul_dtype": str(dtype).replace("torch.", ""),
        "encoder": {"layers": layers, "hidden": hidden, "intermediate": inner, "window": window},
        "mflop_per_wordpiece": flop_per_wordpiece / 1e6,
        "wordpieces_per_word": pieces_per_word,
        "ceiling_words_per_second": ceiling,
        "share_of_ceiling": words_per_second / ceiling,
    }


def vm_hwm_kib() -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def in_subprocess(func, *args):
    """Run func(*args) in a spawned process (model building stays out of the parent's memory)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(func, args)


# ---------------------------------------------------------------- HF baseline


def build_hf_model(model: str, output_dir: Path) -> Path:
    """A token-classification model from the spaCy pipeline's fine-tuned encoder,
    with the pos_ner softmax's weights for the transformer part of its input."""
    import spacy
    import torch
    from transformers import AutoModelForTokenClassification

    nlp = spacy.load(model)
    by_factory = {nlp.get_pipe_meta(name).factory: name for name in nlp.pipe_names}
    trf, ner = nlp.get_pipe(by_factory["transformer"]), nlp.get_pipe(by_factory["pos_ner"])
    # As pos_ner.onnx.export: the spacy-transformers model's HF model and tokenizer
    # (trf.model.transformer is the PyTorchShim's _model).
    encoder, tokenizer = trf.model.transformer.cpu().eval(), trf.model.tokenizer
    tags = list(ner.tag_names)
    config = encoder.config.__class__(**encoder.config.to_dict())
    config.num_labels = len(tags)
    config.id2label = dict(enumerate(tags))
    config.label2id = {tag: i for i, tag in enumerate(tags)}
    hf_model = AutoModelForTokenClassification.from_config(config).eval()
    missing, unexpected = hf_model.base_model.load_state_dict(encoder.state_dict(), strict=False)
    if missing:
        raise ValueError(f"encoder weights missing in the token-classification model: {missing}")
    layer = ner.model.get_ref("output_layer")
    W = layer.ops.to_numpy(layer.get_param("W"))
    b = layer.ops.to_numpy(layer.get_param("b"))
    width = config.hidden_size
    with torch.no_grad():
        hf_model.classifier.weight.copy_(torch.from_numpy(W[:, :width].copy()))
        hf_model.classifier.bias.copy_(torch.from_numpy(b.copy()))
    output_dir.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(str(output_dir))
    if not tokenizer.model_max_length or tokenizer.model_max_length > 10**6:
        tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.save_pretrained(str(output_dir))
    return output_dir


# ---------------------------------------------------------------- random bert-base


def build_random_bert_base(
    vocab_source: str, data_path: Path, workdir: Path, n_init_docs: int = 20, onnx: bool = True
) -> Tuple[Path, Optional[Path]]:
    """(spaCy pipeline dir, ONNX dir or None without `onnx`) for a random bert-base-shaped encoder."""
    import torch
    from spacy.tokens import DocBin
    from spacy.training import Example
    from spacy.util import load_config, load_model_from_config
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    bert_dir = workdir / "bert-base-random"
    tokenizer = AutoTokenizer.from_pretrained(vocab_source)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(str(bert_dir))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(str(bert_dir))
    cfg = load_config(ROOT / "configs" / "pos_ner.cfg", interpolate=True)
    cfg["components"]["transformer"]["model"]["name"] = str(bert_dir)
    nlp = load_model_from_config(cfg, auto_fill=True, validate=True)
    gold = list(DocBin().from_disk(data_path).get_docs(nlp.vocab))[:n_init_docs]
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in gold]
    nlp.initialize(lambda: examples)
    pipeline_dir = workdir / "pipeline"
    nlp.to_disk(pipeline_dir)
    del nlp
    if not onnx:
        return pipeline_dir, None
    from pos_ner.onnx.export import export

    onnx_dir = workdir / "onnx"
    export(str(pipeline_dir), onnx_dir, quantize=True)
    return pipeline_dir, onnx_dir


# ---------------------------------------------------------------- driver


def run_child(system: str, args, model: str, onnx_dir: str, hf_dir: str, limit_docs: Optional[int]) -> Dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.speed",
            "--system",
            system,
            "--model",
            model,
            "--onnx-dir",
            onnx_dir,
            "--hf-dir",
            hf_dir,
            "--data",
            args.data,
            "--repeats",
            str(args.repeats),
            "--batch-size",
            str(args.batch_size),
            "--n-sentences",
            str(args.n_sentences),
            "--threads",
            str(args.threads or 0),
            "--hf-stride",
            str(args.hf_stride),
            f"--onnx-memory-arena={int(args.onnx_memory_arena)}",
            f"--onnx-memory-pattern={int(args.onnx_memory_pattern)}",
            "--child-output",
            str(out),
        ]
        if limit_docs:
            cmd += ["--limit-docs", str(limit_docs)]
        subprocess.run(cmd, check=True, env=child_env())
        return json.loads(out.read_text())


def child_env() -> Dict[str, str]:
    """The environment of a child `python -m benchmarks.speed`: the checkout's root first on its import path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def run_suite(args, model: str, onnx_dir: str, limit_docs: Optional[int], tmp: Path) -> Dict:
    hf_dir = tmp / "hf_model"
    if "hf-pipeline" in args.systems:
        in_subprocess(build_hf_model, model, hf_dir)
    results = {}
    for system in args.systems:
        print(f"[speed] {system} ...", file=sys.stderr, flush=True)
        results[system] = run_child(system, args, model, onnx_dir, str(hf_dir), limit_docs)
    return results


def display_path(path) -> str:
    """`path` relative to the repository when it is inside it (the JSON is committed)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def format_table(title: str, results: Dict) -> str:
    rows = [("system", "words/s", "min", "max", "p50 ms", "p90 ms", "peak MiB")]
    for name, r in results.items():
        rows.append(
            (
                name,
                f"{r['words_per_second']:.0f}",
                f"{r['words_per_second_min']:.0f}",
                f"{r['words_per_second_max']:.0f}",
                f"{r['latency_ms_p50']:.1f}",
                f"{r['latency_ms_p90']:.1f}",
                f"{r['peak_rss_mib']:.0f}",
            )
        )
    first = next(iter(results.values()))
    head = (
        f"{title}: {first['n_docs']} docs, {first['n_words']} words, {first['n_sentences']} sentences, "
        f"threads={first['threads']}, batch_size={first['batch_size']}"
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [head] + [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows
    ]
    for name, r in results.items():
        if "flop_ceiling" in r:
            c = r["flop_ceiling"]
            lines.append(
                f"{name}: FLOP ceiling {c['ceiling_words_per_second']:.0f} words/s "
                f"({c.get('matmul_dtype', 'float32')} matmul probe "
                f"{c['matmul_gflops']:.0f} GFLOP/s, {c['mflop_per_wordpiece']:.1f} MFLOP per wordpiece, "
                f"{c['wordpieces_per_word']:.2f} wordpieces per word): {100 * c['share_of_ceiling']:.0f} % reached"
            )
        if "latency_split" in r:
            split = r["latency_split"]
            lines.append(
                f"{name}: one sentence, p50 {split['pipeline_ms_p50']:.1f} ms in the pipeline, of which "
                f"{split['encoder_in_pipeline_ms_p50']:.1f} ms in the encoder's forward; the bare encoder on the "
                f"same wordpieces {split['bare_encoder_ms_p50']:.1f} ms"
            )
    return "\n".join(lines)


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def compare_pipelines(args) -> Dict:
    """--pipelines: each pipeline's spacy-torch speed and memory, and its size on disk."""
    missing = [f"{name}={path}" for name, path in args.pipelines.items() if not Path(path).is_dir()]
    if missing:
        sys.exit(f"speed.py: not found: {'; '.join(missing)}: train them first")
    wall = time.perf_counter()
    results = {}
    for name, path in args.pipelines.items():
        print(f"[speed] {name} ...", file=sys.stderr, flush=True)
        results[name] = {**run_child("spacy-torch", args, path, "", "", args.limit_docs), "disk_mib": folder_mib(path)}
    table = format_table("pipelines", results)
    table += "\n" + "\n".join(f"{name}: {r['disk_mib']:.1f} MiB on disk" for name, r in results.items())
    print(table, flush=True)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "data": display_path(args.data),
        "argv": sys.argv[1:],
        "repeats": args.repeats,
        "pipelines": {name: {"model": display_path(path), **results[name]} for name, path in args.pipelines.items()},
        "wall_seconds": time.perf_counter() - wall,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2), encoding="utf8")
    print(f"wrote {args.output} ({report['wall_seconds']:.0f} s)")
    return report


@app.command(help=__doc__.split("\n\n")[0])
def main(
    model: str = typer.Option(str(ROOT / "training" / "pos_ner" / "model-best")),
    onnx_dir: str = typer.Option(str(ROOT / "training" / "pos_ner" / "onnx")),
    data: str = typer.Option(str(ROOT / "corpus" / "dev.spacy")),
    output: str = typer.Option(str(ROOT / "benchmarks" / "results" / "speed.json")),
    limit_docs: Optional[int] = typer.Option(None, help="use only the first N documents"),
    repeats: int = typer.Option(3),
    batch_size: int = typer.Option(32),
    n_sentences: int = typer.Option(200, help="sentences sampled for the latency test"),
    threads: int = typer.Option(0, help="torch / onnxruntime intra-op threads (0: all cores)"),
    hf_stride: int = typer.Option(32, help="HF pipeline chunk overlap for long documents"),
    onnx_memory_arena: int = typer.Option(
        1, min=0, max=1, help="onnxruntime's CPU memory arena (1, the backend's default) or plain allocations (0)"
    ),
    onnx_memory_pattern: int = typer.Option(
        0, min=0, max=1, help="onnxruntime's per-shape memory patterns (the backend's default: 0, off)"
    ),
    systems: str = typer.Option(",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS)),
    random_bert_base: bool = typer.Option(
        False, "--random-bert-base", help="also benchmark a random bert-base-shaped encoder"
    ),
    pipelines: str = typer.Option(
        "", help="NAME=PATH,...: compare these spaCy pipelines (spacy-torch, size on disk) instead of the systems"
    ),
    bert_base_limit_docs: Optional[int] = typer.Option(
        None, help="documents for the bert-base part (default: --limit-docs)"
    ),
    bert_base_init_docs: int = typer.Option(20, help="documents to initialise the labels from"),
    bert_base_only: bool = typer.Option(
        False, "--bert-base-only", help="skip the main model (with --random-bert-base)"
    ),
    # internal: run one system in this process
    system: Optional[str] = typer.Option(None, hidden=True),
    hf_dir: Optional[str] = typer.Option(None, hidden=True),
    child_output: Optional[str] = typer.Option(None, hidden=True),
) -> Dict:
    args = SimpleNamespace(**locals())
    args.systems = [s for s in systems.split(",") if s]
    try:
        args.pipelines = dict(item.split("=", 1) for item in pipelines.split(",") if item)
    except ValueError:
        raise typer.BadParameter("takes NAME=PATH,NAME=PATH", param_hint="--pipelines") from None
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        raise typer.BadParameter(f"unknown systems: {sorted(unknown)}", param_hint="--systems")
    if system is not None and system not in SYSTEMS:
        raise typer.BadParameter(f"{system!r} is not one of {', '.join(SYSTEMS)}", param_hint="--system")
    if args.system:  # child
        result = measure(args.system, args)
        Path(args.child_output).write_text(json.dumps(result), encoding="utf8")
        return result
    if args.pipelines:
        return compare_pipelines(args)
    needs_onnx = args.random_bert_base or any(system.startswith("onnx") for system in args.systems)
    needs = [
        (args.model, "spacy project run train"),
        *([(args.onnx_dir, "spacy project run export-onnx")] if needs_onnx else []),
        (args.data, "spacy project run convert"),
    ]
    missing = [
        f"{path} ({step})"
        for path, step in needs
        if not Path(path).exists() and not (path == args.model and is_package(path))
    ]
    if missing:  # one line, the step to run first: not a traceback from a child process
        sys.exit(f"speed.py: not found: {'; '.join(missing)}: run the step named first")
    wall = time.perf_counter()
    output = Path(args.output)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "data": display_path(args.data),
        "argv": sys.argv[1:],
        "repeats": args.repeats,
        "note": "speed only for hf-pipeline (no tagger, no POS features) and for random_bert_base",
    }
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.bert_base_only:
            res = run_suite(args, args.model, args.onnx_dir, args.limit_docs, tmp / "main")
            report["model"] = {
                "model": display_path(args.model),
                "onnx_dir": display_path(args.onnx_dir),
                "results": res,
            }
            tables.append(format_table(f"model {display_path(args.model)}", res))
            print(tables[-1], flush=True)
        if args.random_bert_base:
            print("[speed] building the random bert-base pipeline and its ONNX export ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            pipeline_dir, onnx_dir = in_subprocess(
                build_random_bert_base,
                str(Path(args.onnx_dir) / "hf_tokenizer"),
                Path(args.data),
                tmp / "bert_base",
                args.bert_base_init_docs,
                bool({"onnx-fp32", "onnx-int8"} & set(args.systems)),
            )
            build_s = time.perf_counter() - start
            limit = args.bert_base_limit_docs or args.limit_docs
            res = run_suite(args, str(pipeline_dir), str(onnx_dir), limit, tmp / "bert_base_run")
            report["random_bert_base"] = {
                "encoder": "random BertModel 12x768, 12 heads, 3072 intermediate",
                "build_seconds": build_s,
                "results": res,
            }
            tables.append(format_table("random bert-base", res))
            print(tables[-1], flush=True)
    report["wall_seconds"] = time.perf_counter() - wall
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2), encoding="utf8")
    print(f"wrote {output} ({report['wall_seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    app()
