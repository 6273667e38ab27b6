import json
import os
import sys
from pathlib import Path

import typer

from ..io.records import BadRecord, Format, OnError, detect_format, doc_to_entities, read_records, to_input
from ._util import app


@app.command("predict")
def predict_cli(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    input_path: str = typer.Argument(..., help="Text or JSONL file, '-' for stdin"),
    output_path: str = typer.Argument(..., help="JSONL file to write, '-' for stdout"),
    fmt: Format = typer.Option(Format.auto, "--format", "-f", help="auto: .jsonl/.json by the first record, else text"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    on_error: OnError = typer.Option(OnError.skip, "--on-error", help="skip bad records or stop at the first one"),
) -> None:
    """Write the entities MODEL finds in each INPUT record to OUTPUT (JSONL)."""
    from_stdin = input_path == "-"
    if not from_stdin and not Path(input_path).is_file():
        typer.echo(f"{input_path}: no such file", err=True)
        raise typer.Exit(2)
    import spacy
    from tqdm import tqdm

    nlp = spacy.load(model)
    if fmt == Format.auto:
        fmt = Format.text if from_stdin else detect_format(Path(input_path))
    skipped = 0

    def report(line_no: int, reason: str) -> None:
        nonlocal skipped
        tqdm.write(f"{input_path}:{line_no}: {reason}", file=sys.stderr)
        if on_error == OnError.fail:
            raise BadRecord(reason)
        skipped += 1

    source = sys.stdin.buffer if from_stdin else open(input_path, "rb")
    to_stdout = output_path == "-"
    if not to_stdout:
        Path(output_path).parent.mkdir(parents=True, exist_ok=True)
        tmp_path = Path(output_path).with_name(f".{Path(output_path).name}.{os.getpid()}.tmp")
    out = sys.stdout.buffer if to_stdout else open(tmp_path, "xb")
    size = None if from_stdin else os.fstat(source.fileno()).st_size
    bar = tqdm(total=size, unit="B", unit_scale=True, disable=True if from_stdin else None, file=sys.stderr)
    written, done = 0, False
    try:
        records = read_records(source, fmt, nlp.max_length, report)
        inputs = ((to_input(nlp, record, fmt), (record, offset)) for record, offset in records)
        for doc, (record, offset) in nlp.pipe(inputs, batch_size=batch_size, as_tuples=True):
            record["entities"] = doc_to_entities(doc, with_tokens=fmt == Format.tokens)
            out.write(json.dumps(record, ensure_ascii=False).encode("utf8") + b"\n")
            written += 1
            bar.update(offset - bar.n)
        done = True
    except BadRecord:
        kept = "" if to_stdout else f"; {output_path} not written"
        typer.echo(f"stopped at the first bad record (--on-error fail){kept}", err=True)
        raise typer.Exit(1) from None
    finally:
        bar.close()
        if not from_stdin:
            source.close()
        if to_stdout:
            out.flush()
        else:
            out.close()
            if done:
                os.replace(tmp_path, output_path)
            else:
                tmp_path.unlink()
    typer.echo(f"wrote {written} records, skipped {skipped} bad records", err=True)
