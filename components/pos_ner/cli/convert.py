from pathlib import Path
from typing import Optional

import typer

from ..io.conll import DEFAULT_N_SENTS, ConversionError, Scheme, docs_to_docbin, write_docbin
from ..io.files import OutputError, check_output, handle_termination
from ..io.formats import InputFormat, OptionError, read_docs, summarize
from ._util import app, fail


@app.command("convert")
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
) -> None:
    """Convert CoNLL-2003, two-column, CSV, span JSONL or Label Studio NER data to a spaCy DocBin.

    Bad input stops with one line `INPUT:LINE: reason` and exit status 1; OUTPUT is
    written only when everything converted, and never over INPUT.
    """
    handle_termination()
    try:
        check_output(output_file, [input_file])
        docs, description = read_docs(input_file, fmt.value, scheme.value, n_sents, lang, text_field)
        write_docbin(docs_to_docbin(docs), output_file)
    except (ConversionError, OutputError, OptionError) as error:
        fail(str(error))
    typer.echo(f"Wrote {output_file}")
    typer.echo(summarize(docs, description))
