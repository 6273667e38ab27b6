from pathlib import Path
from typing import List, Optional

import typer

from ._util import app, fail


@app.command("compare")
def compare_cli(
    definition_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="configs/compare.yml"),
    transformer: str = typer.Option(..., "--transformer", help="Encoder: Hugging Face name or local folder"),
    corpus_dir: Path = typer.Option(Path("corpus"), "--corpus", help="train/dev/test.spacy (documents)"),
    sentences_dir: Path = typer.Option(
        Path("corpus/sentences"), "--sentences", help="train/dev/test.spacy with one sentence per doc"
    ),
    workdir: Path = typer.Option(Path("training/compare"), "--workdir", help="One folder per run"),
    output: Path = typer.Option(
        Path("benchmarks/results/compare.json"), "--output", "-o", help="JSON to write (and a .md table beside it)"
    ),
    gpu: str = typer.Option("auto", "--gpu"),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Run only these systems (repeatable)"),
    seeds: Optional[List[int]] = typer.Option(None, "--seed", help="Run only these seeds (repeatable)"),
) -> None:
    """Train, score and tabulate every system of DEFINITION_PATH; resumable."""
    from ..experiments.compare import DefinitionError, compare

    try:
        report = compare(definition_path, transformer, corpus_dir, sentences_dir, workdir, output, gpu, only, seeds)
    except DefinitionError as error:
        fail(str(error))
    typer.echo(report["markdown"])
    if report["failed"]:
        names = ", ".join(f"{f['system']}-seed{f['seed']}" for f in report["failed"])
        fail(f"{len(report['failed'])} run(s) failed: {names}")
