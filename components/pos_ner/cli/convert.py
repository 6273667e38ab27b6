from pathlib import Path
from typing import Optional

import typer

from ..io.conll import (
    DEFAULT_N_SENTS,
    ConversionError,
    InputFormat,
    Scheme,
    detect_scheme,
    docs_to_docbin,
    make_docs,
    read_documents,
    summarize,
    write_docbin,
)
from ._util import app, fail


@app.command("convert")
def convert_cli(
    input_file: Path = typer.Argument(..., metavar="INPUT", help="Annotated input file."),
    output_file: Path = typer.Argument(..., metavar="OUTPUT", help="Output .spacy file."),
    fmt: InputFormat = typer.Option(
        InputFormat.auto, "--format", help="Input format; auto detects from extension/content."
    ),
    scheme: Scheme = typer.Option(
        Scheme.auto,
        "--scheme",
        help="Tag scheme; iob2 rejects an I- tag that starts an entity, auto detects.",
    ),
    n_sents: Optional[int] = typer.Option(
        None,
        "--n-sents",
        min=1,
        help=f"Sentences per document. Without -DOCSTART- lines: default {DEFAULT_N_SENTS}. "
        "With them: documents follow -DOCSTART-, split into chunks of N only if given.",
    ),
) -> None:
    """Convert CoNLL-2003, two-column or CSV NER data to a spaCy DocBin."""
    try:
        documents = read_documents(input_file, fmt.value, scheme.value, n_sents)
        docs = make_docs(documents)
        write_docbin(docs_to_docbin(docs), output_file)
    except ConversionError as error:
        fail(str(error))
    except OSError as error:
        fail(f"{output_file}: {error.strerror or error}")
    sentences = [sentence for document in documents for sentence in document]
    used_scheme = detect_scheme(sentences) if scheme == Scheme.auto else scheme.value
    typer.echo(f"Wrote {output_file}")
    typer.echo(summarize(docs, used_scheme))
