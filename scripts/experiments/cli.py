"""The command line of the project's experiments, one typer app:

    python -m scripts.experiments compare DEFINITION --transformer ENCODER ...
    python -m scripts.experiments grid CONFIG GRID --paths.train ... --paths.dev ...

Built on the package's CLI helpers (pos_ner.cli._util), so that every failure is
one line on stderr and a non-zero exit status, as for `pos-ner`: usage errors
(exit 2), the errors the commands anticipate (exit 1), and the last resort
`python -m scripts.experiments COMMAND: error: Type: message` (POS_NER_DEBUG=1
gives the traceback)."""

import importlib.util
from pathlib import Path
from typing import List, Optional

import typer

from pos_ner.cli._util import OVERRIDES, Group, check_outputs, fail, parse_overrides, require_extras, run_cli
from pos_ner.io.files import check_output

PROG = "python -m scripts.experiments"
app = typer.Typer(
    name=PROG,
    cls=Group,
    help="The project's experiments: compare systems on one budget, grid-search hyperparameters.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def require_modules(command: str, *modules: str) -> None:
    """Exit 1 with one line naming the first of `modules` (the project's
    requirements, not an extra of the package) that is not installed."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            fail(f"{command}: needs {module}, one of the project's requirements: pip install -r requirements.txt")


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
    training and written atomically at the end. Run from the project's folder:
    the definition's paths are relative to it."""
    require_extras(f"{PROG} compare", "evaluate")
    require_modules(f"{PROG} compare", "accelerate")
    from scripts.experiments.compare import DefinitionError, compare, markdown_path

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


@app.command("grid", context_settings=OVERRIDES)
def grid_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Base training config"),
    grid_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Grid definition (YAML)"),
    output: Path = typer.Option(Path("training/grid"), "--output", "-o", help="Folder for the trials and results"),
    db: Optional[Path] = typer.Option(None, "--db", help="Optuna SQLite file (default: OUTPUT/grid.db)"),
    gpu: str = typer.Option("auto", "--gpu", help="'auto', -1 for the CPU, or a GPU id"),
) -> None:
    """Grid-search CONFIG_PATH over GRID_PATH, ranking the points by dev F1
    (seqeval). Extra `--section.key value` options (at least --paths.train and
    --paths.dev) apply to every point. Resumable: run the same command again.
    The result files are checked against the inputs before any training and
    replaced atomically after each point."""
    require_modules(f"{PROG} grid", "optuna")
    require_extras(f"{PROG} grid", "evaluate")
    from scripts.experiments.grid import BEST_CFG, RESULTS_CSV, RESULTS_MD, run_grid
    from scripts.experiments.runner import RunFailed

    overrides = parse_overrides(ctx.args)
    inputs = [config_path, grid_path, *(overrides.get(key) for key in ("paths.train", "paths.dev"))]
    check_output(output, is_dir=True)
    check_outputs([output / name for name in (RESULTS_CSV, RESULTS_MD, BEST_CFG)], inputs)
    check_outputs([db or output / "grid.db"], inputs)
    try:
        run_grid(config_path, grid_path, output, overrides, db, gpu)
    except (ValueError, RunFailed) as error:
        fail(f"{error} (fix it and run the same command again to resume the search)")
    results = output / RESULTS_MD
    if results.is_file():
        typer.echo(results.read_text(encoding="utf8"))
    else:
        typer.echo(f"no grid point finished; nothing in {results}")


@app.command("simulate-selection")
def simulate_selection_cli(
    definition_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="configs/select_simulation.yml"),
    corpus_dir: Path = typer.Option(
        Path("corpus"), "--corpus", help="train.spacy (the pool: documents, split into sentences), dev and test.spacy"
    ),
    workdir: Path = typer.Option(
        Path("training/select_simulation"), "--workdir", help="One folder per strategy and seed, a round in each"
    ),
    output: Path = typer.Option(
        Path("benchmarks/results/select_simulation.json"),
        "--output",
        "-o",
        help="JSON to write (and a .md table and .png figure beside it)",
    ),
    gpu: str = typer.Option("auto", "--gpu", help="Training: 'auto', -1 for the CPU, or a GPU id; selection: the CPU"),
    only: Optional[List[str]] = typer.Option(
        None, "--only", help="Run only these strategies (repeatable); the report keeps every finished round"
    ),
    seeds: Optional[List[int]] = typer.Option(None, "--seed", help="Run only these seeds (repeatable)"),
    report_only: bool = typer.Option(False, "--report-only", help="Train nothing: report the finished rounds"),
) -> None:
    """Simulate the annotation loop on a labelled corpus: per strategy and seed,
    rounds of train, score, select the next sentences with `pos-ner select`'s
    code; resumable (a finished round is never run again). OUTPUT, its .md table
    and .png figure are checked against the inputs before any training and written
    atomically at the end. Run from the project's folder: the definition's paths
    are relative to it."""
    require_extras(f"{PROG} simulate-selection", "evaluate")
    from scripts.experiments.simulate_selection import DefinitionError, figure_path, markdown_path, simulate

    if output.suffix in (".md", ".png"):
        fail(f"{output}: --output must not end in .md or .png (the table and figure are written beside the JSON)")
    corpora = [corpus_dir / f"{split}.spacy" for split in ("train", "dev", "test")]
    check_outputs([output, markdown_path(output), figure_path(output)], [definition_path, *corpora, corpus_dir])
    try:
        report = simulate(definition_path, corpus_dir, workdir, output, gpu, only, seeds, report_only)
    except DefinitionError as error:
        fail(str(error))
    typer.echo(report["markdown"])
    if report["not_run"]:
        typer.echo(f"not run yet ({len(report['not_run'])}): {', '.join(report['not_run'])}")
    if report["failed"]:
        names = ", ".join(f"{f.get('strategy', 'reference')}-seed{f['seed']}" for f in report["failed"])
        fail(f"{len(report['failed'])} chain(s) stopped by a failed run: {names} (run the same command to retry)")


def main(args: Optional[List[str]] = None) -> None:
    """The entry point of `python -m scripts.experiments`."""
    run_cli(app, PROG, args)
