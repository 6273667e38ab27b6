from pathlib import Path
from typing import List, Optional

import typer

from ._util import app, check_outputs, fail, require_extras


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
    only: Optional[List[str]] = typer.Option(
        None, "--only", help="Train only these systems (repeatable); the table keeps every finished run"
    ),
    seeds: Optional[List[int]] = typer.Option(None, "--seed", help="Train only these seeds (repeatable)"),
    report_only: bool = typer.Option(
        False, "--report-only", help="Train nothing: tabulate the finished runs and list the others"
    ),
    stored: Optional[List[Path]] = typer.Option(
        None,
        "--stored",
        exists=True,
        dir_okay=False,
        help="Another report whose runs count as finished where their recipe matches (repeatable); "
        "OUTPUT's own runs always do",
    ),
) -> None:
    """Train, score and tabulate every system of DEFINITION_PATH; resumable.
    OUTPUT and its .md table are checked against the inputs before any
    training and written atomically at the end."""
    require_extras("pos-ner compare", "evaluate", "experiments")
    from ..experiments.compare import DefinitionError, compare, markdown_path

    table = markdown_path(output)
    if table == output:
        fail(f"{output}: --output must not end in .md (the .md table is written beside the JSON report)")
    corpora = [
        folder / f"{split}.spacy" for folder in (corpus_dir, sentences_dir) for split in ("train", "dev", "test")
    ]
    check_outputs([output, table], [definition_path, *corpora, corpus_dir, sentences_dir])
    try:
        report = compare(
            definition_path,
            transformer,
            corpus_dir,
            sentences_dir,
            workdir,
            output,
            gpu,
            only,
            seeds,
            report_only,
            stored,
        )
    except DefinitionError as error:
        fail(str(error))
    typer.echo(report["markdown"])
    if report["set_aside"]:
        typer.echo(f"set aside in {output}, not tabulated ({len(report['set_aside'])}):")
        for run in report["set_aside"]:
            typer.echo(f"  {run['system']}-seed{run['seed']}: {run['set_aside_because']}")
    if report["not_run"]:
        names = ", ".join(f"{r['system']}-seed{r['seed']}" for r in report["not_run"])
        typer.echo(f"not run yet ({len(report['not_run'])}): {names}")
    if report["failed"]:
        names = ", ".join(f"{f['system']}-seed{f['seed']}" for f in report["failed"])
        fail(f"{len(report['failed'])} run(s) failed: {names}")
