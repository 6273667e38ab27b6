from contextlib import ExitStack
from pathlib import Path
from typing import Any, List, Optional, Sequence

import typer
from typer.core import TyperCommand

from ..io.conll import DEFAULT_N_SENTS, ConversionError, Scheme, docs_to_docbin
from ..io.files import OutputError, atomic_file, check_output, handle_termination
from ..io.formats import BadDataOptions, InputFormat, OptionError, ReadReport, read_docs, summarize, with_hint
from ._util import app, fail

NORMALIZE_HELP = (
    "Remove invisible and control characters (zero-width spaces, word joiners, BOMs, soft hyphens, "
    "control characters) instead of refusing them; line separators and other control whitespace become "
    "spaces. Says how many of which characters changed on which lines."
)
SKIP_HELP = (
    "Leave out each bad sentence (JSONL: record, Label Studio: task) instead of stopping: each one is "
    "listed as FILE:LINE: reason in the rejects file, and the summary counts them and the entities they "
    "held. Fails if nothing is left."
)


# The values `--flag=VALUE` takes (as project variables give them: true/false, 1/0, ...).
FLAG_VALUES = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


class BoolValueFlags(TyperCommand):
    """A command whose boolean flags also take `--flag=true` or `--flag=false`, so that
    a project variable can switch one (`--normalize=${vars.normalize}`)."""

    def parse_args(self, ctx: Any, args: List[str]) -> List[str]:
        flags = {
            name
            for param in self.params
            if getattr(param, "is_bool_flag", False) and not getattr(param, "secondary_opts", None)
            for name in param.opts
        }
        rewritten: List[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                rewritten += args[i:]
                break
            name, equals, value = arg.partition("=")
            if equals and name in flags:
                if value.lower() not in FLAG_VALUES:
                    raise typer.BadParameter(f"expected true or false, got {value!r}", ctx, param_hint=name)
                if FLAG_VALUES[value.lower()]:
                    rewritten.append(name)
                continue
            rewritten.append(arg)
        return super().parse_args(ctx, rewritten)


def default_rejects(output: Path) -> Path:
    """out.spacy → out.rejects.txt (beside the output)."""
    return output.with_name(f"{output.stem if output.suffix else output.name}.rejects.txt")


def write_rejects(files: Any, path: Path, reports: Sequence[ReadReport]) -> int:
    """Write each report's rejections (`FILE:LINE: reason`, one a line) to `path` through
    `files` (an ExitStack: renamed with the other outputs); returns how many."""
    lines = [line for report in reports for line in report.rejection_lines()]
    files.enter_context(atomic_file(path, "w", encoding="utf-8")).write("".join(f"{line}\n" for line in lines))
    return len(lines)


def rejects_path(rejects: Optional[Path], default: Path, options: BadDataOptions) -> Optional[Path]:
    """Where --skip-bad-records writes its rejects (None without the option, which --rejects needs)."""
    if rejects is not None and not options.skip_bad_records:
        raise OptionError("--rejects names the rejects file of --skip-bad-records; pass both or neither")
    return (rejects or default) if options.skip_bad_records else None


def rejects_line(n_rejected: int, path: Path, units: Sequence[str]) -> str:
    """`Wrote 2 rejected sentences to out.rejects.txt` (`units`: those of the files read)."""
    names = " and ".join(sorted({unit if n_rejected != 1 else unit[:-1] for unit in units}))
    return f"Wrote {n_rejected} rejected {names} to {path}"


@app.command("convert", cls=BoolValueFlags)
def convert_cli(
    input_file: Path = typer.Argument(..., metavar="INPUT", help="Annotated input file."),
    output_file: Path = typer.Argument(..., metavar="OUTPUT", help="Output .spacy file."),
    fmt: InputFormat = typer.Option(
        InputFormat.auto,
        "--format",
        help="Input format; auto detects: .jsonl → span JSONL (Prodigy/spaCy), .json → Label Studio "
        "(or JSONL), .csv → CSV, else CoNLL/columns by content.",
    ),
    scheme: Scheme = typer.Option(
        Scheme.auto,
        "--scheme",
        help="Tag scheme of CoNLL/columns/CSV input; iob2 rejects an I- tag that starts an entity, auto detects.",
    ),
    n_sents: Optional[int] = typer.Option(
        None,
        "--n-sents",
        min=1,
        help=f"Sentences per document (CoNLL/columns/CSV). Without -DOCSTART- lines: default {DEFAULT_N_SENTS}. "
        "With them: documents follow -DOCSTART-, split into chunks of N only if given.",
    ),
    lang: str = typer.Option("en", "--lang", help="spaCy language whose tokenizer splits texts without tokens."),
    text_field: Optional[str] = typer.Option(
        None,
        "--text-field",
        help="Field holding the text (JSONL: default 'text'; Label Studio: 'text' or the only string field of 'data').",
    ),
    normalize: bool = typer.Option(False, "--normalize", help=NORMALIZE_HELP),
    skip_bad_records: bool = typer.Option(False, "--skip-bad-records", help=SKIP_HELP),
    rejects: Optional[Path] = typer.Option(
        None, "--rejects", help="Rejects file of --skip-bad-records (default: OUTPUT with the suffix .rejects.txt)."
    ),
) -> None:
    """Convert CoNLL-2003, two-column, CSV, span JSONL or Label Studio NER data to a spaCy DocBin.

    Bad input stops with one line `INPUT:LINE: reason` and exit status 1; OUTPUT is
    written only when everything converted, and never over INPUT. --normalize and
    --skip-bad-records let such input through, and say what they changed or left out.
    """
    handle_termination()
    options = BadDataOptions(normalize=normalize, skip_bad_records=skip_bad_records)
    report = ReadReport(options)
    try:
        rejects_file = rejects_path(rejects, default_rejects(output_file), options)
        check_output(output_file, [input_file])
        if rejects_file is not None:
            check_output(rejects_file, [input_file, output_file])
        docs, description = read_docs(input_file, fmt.value, scheme.value, n_sents, lang, text_field, report)
        data = docs_to_docbin(docs).to_bytes()
        with ExitStack() as files:  # both renamed into place together, at the end
            files.enter_context(atomic_file(output_file)).write(data)
            n_rejected = write_rejects(files, rejects_file, [report]) if rejects_file is not None else 0
    except (ConversionError, OutputError, OptionError) as error:
        fail(with_hint(error, options))
    typer.echo(f"Wrote {output_file}")
    if rejects_file is not None:
        typer.echo(rejects_line(n_rejected, rejects_file, [report.unit]))
    typer.echo(summarize(docs, "\n".join([description, *report.describe()])))
