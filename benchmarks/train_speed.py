"""Training speed side by side: the spaCy pipeline's optimizer steps (spaCy's own
training loop, `train_while_improving`, on a config) against the Hugging Face
`Trainer` baseline (scripts/hf_baseline.py's setup: single
sentences, batch 32) on the same encoder and training corpus, in one process, in
alternating rounds. Prints a table and writes JSON.

    python -m benchmarks.train_speed --transformer assets/all-MiniLM-L6-v2 \
        --train corpus/train.spacy --output benchmarks/results/train_speed.json

Words/s counts the corpus words of the batches each system trains on (spaCy: the
gold tokens of the batch's documents; HF: the labelled first subwords, one per
word) over the wall time from one optimizer step's end to the next, so batch
making, forward, backward and the optimizer are all inside; the first
`--warmup-steps` of each round are not counted. Each step is also split into
backward (time inside `torch.autograd.backward`, which both reach), optimizer
(spaCy: the components' `finish_update`; HF: `optimizer.step`) and the rest
(forward, loss, batch making, framework code). Weights change during the
rounds (real updates at the configured learning rate), which does not change a
step's cost.
"""

import json
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Iterator, List, Optional

import torch
import typer

from scripts.hf_baseline import IGNORED, labelled_dataset, training_arguments

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ("spacy", "spacy-bf16", "hf-trainer")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


class Clock:
    """Seconds spent inside torch.autograd.backward and inside optimizer steps,
    read as differences around each training step."""

    def __init__(self) -> None:
        self.backward = 0.0
        self.optimizer = 0.0
        self._backward = torch.autograd.backward

        def timed_backward(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self._backward(*args, **kwargs)
            finally:
                self.backward += time.perf_counter() - start

        torch.autograd.backward = timed_backward

    @contextmanager
    def optimizing(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.optimizer += time.perf_counter() - start

    def reading(self):
        return self.backward, self.optimizer


class SpacySteps:
    """spaCy's training loop on `config_path`; `run(n)` takes its next n optimizer steps."""

    def __init__(self, config_path: Path, transformer: str, train: Path, clock: Clock, bf16: bool) -> None:
        from spacy.schemas import ConfigSchemaTraining
        from spacy.training.initialize import init_nlp
        from spacy.training.loop import create_train_batches, train_while_improving
        from spacy.util import load_config, registry, resolve_dot_names

        overrides = {
            "paths.train": str(train),
            "paths.dev": str(train),
            "components.transformer.model.name": transformer,
            "components.transformer.model.mixed_precision": bf16,
        }
        nlp = init_nlp(load_config(config_path, overrides=overrides, interpolate=False), use_gpu=-1)
        config = nlp.config.interpolate()
        T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
        (train_corpus,) = resolve_dot_names(config, [T["train_corpus"]])
        for _, component in nlp.pipeline:
            if hasattr(component, "finish_update"):
                component.finish_update = self._timed(component.finish_update, clock)
        self.steps = train_while_improving(
            nlp,
            T["optimizer"],
            create_train_batches(nlp, train_corpus, T["batcher"], 0),  # 0: epochs without end
            lambda: (0.0, {}),  # no evaluation: only the steps are timed
            dropout=T["dropout"],
            eval_frequency=10**9,
            accumulate_gradient=T["accumulate_gradient"],
            patience=0,
            max_steps=0,
            exclude=T["frozen_components"],
            annotating_components=T["annotating_components"],
            before_update=T["before_update"],
        )

    @staticmethod
    def _timed(method, clock: Clock):
        def finish_update(*args, **kwargs):
            with clock.optimizing():
                return method(*args, **kwargs)

        return finish_update

    def run(self, steps: int, clock: Clock) -> List[Dict]:
        records = []
        start = time.perf_counter()
        for _ in range(steps):
            backward, optimizer = clock.reading()
            batch, _, _ = next(self.steps)
            end = time.perf_counter()
            records.append(step_record(sum(len(eg.reference) for eg in batch), start, end, clock, backward, optimizer))
            start = end
        return records


def step_record(words: int, start: float, end: float, clock: Clock, backward: float, optimizer: float) -> Dict:
    return {
        "words": words,
        "seconds": end - start,
        "backward": clock.backward - backward,
        "optimizer": clock.optimizer - optimizer,
    }


class HFSteps:
    """The HF baseline's Trainer (same arguments as scripts/hf_baseline.py's
    `train`), `steps` optimizer steps per `run()`: a new Trainer each round on the
    same model, so each round has its own warm-up."""

    def __init__(self, transformer: str, train: Path, batch_size: int, learning_rate: float) -> None:
        from transformers import DataCollatorForTokenClassification

        self.tokenizer, self.model, self.dataset, _ = labelled_dataset(transformer, train)
        self.collator = DataCollatorForTokenClassification(self.tokenizer)
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.rounds = 0

    def run(self, steps: int, clock: Clock, workdir: Path) -> List[Dict]:
        from transformers import Trainer, TrainerCallback

        words: List[int] = []
        records: List[Dict] = []

        class CountingTrainer(Trainer):
            def training_step(self, model, inputs, *args, **kwargs):
                words.append(int((inputs["labels"] != IGNORED).sum()))
                return super().training_step(model, inputs, *args, **kwargs)

        class Steps(TrainerCallback):
            def __init__(self) -> None:
                self.start = self.backward = self.optimizer = self.optimizing = 0.0

            def on_train_begin(self, *args, **kwargs):
                self.start = time.perf_counter()
                self.backward, self.optimizer = clock.reading()

            def on_pre_optimizer_step(self, *args, **kwargs):
                self.optimizing = time.perf_counter()

            def on_optimizer_step(self, *args, **kwargs):
                clock.optimizer += time.perf_counter() - self.optimizing

            def on_step_end(self, *args, **kwargs):
                end = time.perf_counter()
                records.append(step_record(words[-1], self.start, end, clock, self.backward, self.optimizer))
                self.start = end
                self.backward, self.optimizer = clock.reading()

        self.rounds += 1
        arguments = training_arguments(
            workdir / "hf-checkpoints",
            max_steps=steps,
            seed=self.rounds,
            per_device_train_batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            weight_decay=0.01,
            max_grad_norm=1.0,
            warmup_ratio=0.1,
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
        )
        trainer = CountingTrainer(
            model=self.model,
            args=arguments,
            train_dataset=self.dataset,
            data_collator=self.collator,
            callbacks=[Steps()],
        )
        trainer.train()
        return records


def summarise(rounds: List[List[Dict]], warmup: int) -> Dict:
    """Per round, words/s over the steps after warm-up; the median over rounds; the split."""
    per_round, split = [], {"backward": 0.0, "optimizer": 0.0, "seconds": 0.0}
    words = steps = 0
    for records in rounds:
        timed = records[warmup:]
        per_round.append(sum(r["words"] for r in timed) / sum(r["seconds"] for r in timed))
        for key in split:
            split[key] += sum(r[key] for r in timed)
        words += sum(r["words"] for r in timed)
        steps += len(timed)
    total = split["seconds"]
    return {
        "words_per_second": statistics.median(per_round),
        "words_per_second_rounds": per_round,
        "timed_steps": steps,
        "words_per_step": words / steps,
        "seconds_per_step": total / steps,
        "share_backward": split["backward"] / total,
        "share_optimizer": split["optimizer"] / total,
        "share_rest": (total - split["backward"] - split["optimizer"]) / total,
    }


@app.command(help=__doc__.split("\n\n")[0])
def main(
    config: Path = typer.Option(ROOT / "configs" / "pos_ner.cfg"),
    transformer: str = typer.Option(..., help="the encoder (a local folder here)"),
    train: Path = typer.Option(ROOT / "corpus" / "train.spacy"),
    systems: str = typer.Option(",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}"),
    steps: int = typer.Option(40, help="optimizer steps per system and round, warm-up included"),
    warmup_steps: int = typer.Option(5),
    rounds: int = typer.Option(3),
    hf_batch_size: int = typer.Option(32, help="sentences per step (the baseline's)"),
    hf_learning_rate: float = typer.Option(2e-4, help="the baseline's best rate (RESULTS.md)"),
    workdir: Path = typer.Option(Path("/tmp/train_speed")),
    output: Optional[Path] = typer.Option(None),
) -> None:
    args = SimpleNamespace(**locals())
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        raise typer.BadParameter(
            f"unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SYSTEMS)}", param_hint="--systems"
        )
    if args.steps <= args.warmup_steps:
        raise typer.BadParameter("must be larger than --warmup-steps", param_hint="--steps")
    for path in (args.config, args.train):
        if not path.exists():
            raise typer.BadParameter(f"not found: {path}")

    clock = Clock()
    runners = {}
    for system in systems:
        if system == "hf-trainer":
            runners[system] = HFSteps(args.transformer, args.train, args.hf_batch_size, args.hf_learning_rate)
        else:
            runners[system] = SpacySteps(args.config, args.transformer, args.train, clock, system == "spacy-bf16")
    records: Dict[str, List[List[Dict]]] = {system: [] for system in systems}
    for round_ in range(args.rounds):
        for system in systems:
            runner = runners[system]
            if isinstance(runner, HFSteps):
                steps = runner.run(args.steps, clock, args.workdir)
            else:
                steps = runner.run(args.steps, clock)
            records[system].append(steps)
            wps = summarise([steps], args.warmup_steps)["words_per_second"]
            print(f"round {round_ + 1}: {system}: {wps:,.0f} words/s", flush=True)

    results = {system: summarise(records[system], args.warmup_steps) for system in systems}
    reference = results.get("hf-trainer")
    print()
    print(
        "| system | words/s (median of rounds) | rounds | words/step | s/step "
        "| backward | optimizer | rest | × HF Trainer |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for system, r in results.items():
        ratio = f"{r['words_per_second'] / reference['words_per_second']:.2f}" if reference else "-"
        rounds = ", ".join(f"{w:,.0f}" for w in r["words_per_second_rounds"])
        print(
            f"| {system} | {r['words_per_second']:,.0f} | {rounds} | {r['words_per_step']:.0f} | "
            f"{r['seconds_per_step']:.2f} | {r['share_backward']:.0%} | {r['share_optimizer']:.0%} | "
            f"{r['share_rest']:.0%} | {ratio} |"
        )
    if args.output:
        report = {
            "command": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
            "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "results": results,
            "steps": records,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2), encoding="utf8")
        print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    app()
