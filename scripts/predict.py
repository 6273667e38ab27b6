"""Run a trained pipeline over plain text or JSONL and write one JSONL record
of entities per input record, streaming (constant memory).

Inputs: plain text (one document per line; an empty line is an empty document
with no entities, so output line N is input line N), JSONL with a "text" field,
or JSONL with a pre-tokenized "tokens" list. JSONL records keep their other
fields; blank JSONL lines are not records and are ignored. Bad records are
reported on stderr as INPUT:LINE: reason, then skipped or fatal (--on-error).
"""
import codecs
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import spacy
import typer
from spacy.language import Language
from spacy.tokens import Doc, Span
from tqdm import tqdm

app = typer.Typer(add_completion=False)


class Format(str, Enum):
    auto = "auto"
    text = "text"
    jsonl = "jsonl"
    tokens = "tokens"


class OnError(str, Enum):
    skip = "skip"
    fail = "fail"


class BadRecord(ValueError):
    """An input record that cannot be processed; the message says why."""


def load_pipeline(model: str, code_path: Optional[Path] = None) -> Language:
    """`spacy.load` a directory or package, importing custom code first."""
    if code_path is not None:
        spacy.util.import_file(code_path.stem, code_path)
    return spacy.load(model)


def doc_to_entities(doc: Doc, with_tokens: bool = False) -> List[Dict]:
    """The entities of `doc` as JSON-ready dicts (confidence is None for
    pipelines without `span._.confidence`); `with_tokens` adds token indices."""
    has_confidence = Span.has_extension("confidence")
    entities = []
    for ent in doc.ents:
        entity = {
            "start_char": ent.start_char,
            "end_char": ent.end_char,
            "text": ent.text,
            "label": ent.label_,
            "confidence": ent._.confidence if has_confidence else None,
        }
        if with_tokens:
            entity.update(start=ent.start, end=ent.end)
        entities.append(entity)
    return entities


def json_type(value) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")


def detect_format(path: Path) -> Format:
    """tokens or jsonl for .jsonl/.json files (by the first record's fields), else text."""
    if path.suffix.lower() not in (".jsonl", ".json"):
        return Format.text
    with path.open("rb") as file:
        for line in file:
            if line.strip():
                try:
                    first = json.loads(line.removeprefix(codecs.BOM_UTF8))
                except (ValueError, RecursionError):
                    break
                return Format.tokens if isinstance(first, dict) and "tokens" in first else Format.jsonl
    return Format.jsonl


def parse_record(line: bytes, fmt: Format, max_length: int) -> Dict:
    """One input line as a record with a valid "text" or "tokens" field."""
    try:
        line = line.decode("utf8").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise BadRecord(f"invalid UTF-8 (byte {err.start})")
    if fmt == Format.text:
        record = {"text": line}
    else:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise BadRecord(f"invalid JSON: {err}")
        if not isinstance(record, dict):
            raise BadRecord(f"expected a JSON object, got {json_type(record)}")
        try:
            json.dumps(record, ensure_ascii=False).encode("utf8")
        except UnicodeEncodeError:
            raise BadRecord("unpaired surrogate escape (\\ud800-\\udfff), not valid Unicode")
        field = "tokens" if fmt == Format.tokens else "text"
        if field not in record:
            raise BadRecord(f"missing field {field!r}")
    if fmt == Format.tokens:
        tokens = record["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(token, str) and token for token in tokens):
            raise BadRecord("'tokens' must be an array of non-empty strings")
    elif not isinstance(record["text"], str):
        raise BadRecord(f"'text' must be a string, got {json_type(record['text'])}")
    elif len(record["text"]) > max_length:
        raise BadRecord(f"'text' has {len(record['text'])} characters, more than nlp.max_length ({max_length})")
    return record


def read_records(
    lines: Iterator[bytes], fmt: Format, max_length: int, report: Callable[[int, str], None]
) -> Iterator[Tuple[Dict, int]]:
    """(record, bytes read so far) for each good line, lazily; bad lines go
    to `report(line_number, reason)`."""
    offset = 0
    for line_no, line in enumerate(lines, 1):
        offset += len(line)
        if line_no == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        if fmt != Format.text and not line.strip():
            continue
        try:
            record = parse_record(line, fmt, max_length)
        except BadRecord as err:
            report(line_no, str(err))
            continue
        yield record, offset


def to_input(nlp: Language, record: Dict, fmt: Format):
    """What `nlp.pipe` takes for a record: its text, or a Doc of its tokens."""
    return Doc(nlp.vocab, words=record["tokens"]) if fmt == Format.tokens else record["text"]


@app.command()
def main(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    input_path: str = typer.Argument(..., help="Text or JSONL file, '-' for stdin"),
    output_path: str = typer.Argument(..., help="JSONL file to write, '-' for stdout"),
    code_path: Optional[Path] = typer.Option(None, "--code", "-c", exists=True, dir_okay=False, help="Custom component code"),
    fmt: Format = typer.Option(Format.auto, "--format", "-f", help="auto: .jsonl/.json by their first record, else text"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    on_error: OnError = typer.Option(OnError.skip, "--on-error", help="skip bad records or stop at the first one"),
):
    """Write the entities MODEL finds in each INPUT record to OUTPUT (JSONL)."""
    from_stdin = input_path == "-"
    if not from_stdin and not Path(input_path).is_file():
        typer.echo(f"{input_path}: no such file", err=True)
        raise typer.Exit(2)
    nlp = load_pipeline(model, code_path)
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
        raise typer.Exit(1)
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


if __name__ == "__main__":
    app()
