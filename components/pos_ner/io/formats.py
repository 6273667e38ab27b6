"""One entry point for every annotated input: `read_docs` detects the format, reads
the file with the matching reader and says in one line what it read.

`pos-ner convert` and `pos-ner corpus` both call it, so a file that converts also
trains, and both report bad input the same way: `ConversionError` with
`path:line: message`. Options that do not apply to the detected format are
refused (`OptionError`) rather than ignored, so `--n-sents 1` on a JSONL file
does not quietly do nothing. A `ReadReport` passed in carries the options for
bad data (`--normalize`, `--skip-bad-records`) to every reader, and afterwards
says what they changed and left out.
"""

import re
from enum import Enum
from functools import cache
from pathlib import Path
from typing import List, Optional, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from . import conll
from .conll import BadDataOptions, ConversionError, ReadReport, Scheme, summarize, with_hint
from .spans import DECODER, READERS

__all__ = [
    "BadDataOptions",
    "ConversionError",
    "InputFormat",
    "OptionError",
    "ReadReport",
    "Scheme",
    "detect_format",
    "read_docs",
    "summarize",
    "with_hint",
]

JSONL_SUFFIXES = (".jsonl", ".ndjson")
# `[` alone or `[{` starts a Label Studio export; a CoNLL row like `[ ( O` does not match.
JSON_ARRAY_START = re.compile(r"\[\s*(\{|$)")


class InputFormat(str, Enum):
    """The formats `read_docs` reads; `auto` detects (see `detect_format`)."""

    auto = "auto"
    conll = "conll"
    columns = "columns"
    csv = "csv"
    jsonl = "jsonl"
    labelstudio = "labelstudio"


SPAN_FORMATS = frozenset({InputFormat.jsonl.value, InputFormat.labelstudio.value})


class OptionError(ValueError):
    """An option that does not fit the input (e.g. `--n-sents` for JSONL); one line."""


def first_content_line(text: str) -> str:
    """The first line that is not blank, stripped ("" for an empty file)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def is_json_object(line: str) -> bool:
    """Whether `line` is one complete JSON object (a JSONL record)."""
    if not line.startswith("{"):
        return False
    try:
        value, end = DECODER.raw_decode(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and not line[end:].strip()


def detect_span_format(path: Path, text: str) -> Optional[str]:
    """`jsonl` or `labelstudio` if `text` (the decoded file) is one (see `detect_format`), else None."""
    suffix = path.suffix.lower()
    first = first_content_line(text)
    if suffix in JSONL_SUFFIXES:
        return InputFormat.jsonl.value
    if suffix == ".json":
        return InputFormat.labelstudio.value if first.startswith("[") else InputFormat.jsonl.value
    if suffix != ".csv":
        if JSON_ARRAY_START.match(first):
            return InputFormat.labelstudio.value
        if is_json_object(first):
            return InputFormat.jsonl.value
    return None


def detect_format(path: Path, text: str, options: BadDataOptions = BadDataOptions()) -> str:
    """The format of `text` (the decoded file): by extension where it is unambiguous
    (`.jsonl`, `.csv`; `.json` is Label Studio if it is an array, else JSONL), else by
    content (a JSON array or object, a CSV header, else 2 or 4 whitespace columns, with
    `options` as `conll.detect_format` takes them)."""
    return detect_span_format(path, text) or conll.detect_format(path, conll.split_lines(text), options)


@cache
def blank_pipeline(lang: str) -> Language:
    """`spacy.blank(lang)`: its tokenizer splits texts without tokens, its vocab is shared by all docs.

    One per language and process (cached): it is built once, and the docs of
    successive calls (train, dev) then share one vocab too.
    """
    try:
        return spacy.blank(lang)
    except (ImportError, KeyError) as error:
        raise OptionError(f"--lang {lang!r}: spaCy has no such language code") from error


def check_choice(value: str, choices: type, option: str) -> None:
    allowed = [member.value for member in choices]  # type: ignore[attr-defined]
    if value not in allowed:
        raise OptionError(f"{option} {value!r}: expected one of {', '.join(allowed)}")


def read_docs(
    path: Path,
    fmt: str = "auto",
    scheme: str = "auto",
    n_sents: Optional[int] = None,
    lang: str = "en",
    text_field: Optional[str] = None,
    report: Optional[ReadReport] = None,
) -> Tuple[List[Doc], str]:
    """Read an annotated file into Docs, all sharing one vocab and all with sentence
    boundaries set, plus a one-line description of what was read (format, tag scheme or
    records skipped), e.g. `format: conll, tag scheme: iob1`.

    `scheme` and `n_sents` apply to CoNLL/columns/CSV, `text_field` to JSONL and Label
    Studio; `lang` picks the tokenizer for texts without tokens. `report` gives the options
    for bad data and then holds what they did (`ReadReport.describe`, `rejection_lines`);
    without it, bad data is refused. Raises `ConversionError` (`path:line: message`) for
    bad input and `OptionError` for options that do not fit.
    """
    path = Path(path)
    report = ReadReport() if report is None else report
    check_choice(fmt, InputFormat, "--format")
    check_choice(scheme, Scheme, "--scheme")
    nlp = blank_pipeline(lang)
    text = conll.read_text(path)
    if fmt == InputFormat.auto.value:
        fmt = detect_format(path, text, report.options)
    if fmt in SPAN_FORMATS:
        if scheme != Scheme.auto.value or n_sents is not None:
            raise OptionError(f"--scheme and --n-sents apply to CoNLL, columns and CSV input, not {fmt}")
        docs, stats = READERS[fmt](path, text, nlp, text_field, report)
        return docs, stats.describe(fmt)
    if text_field is not None:
        raise OptionError(f"--text-field applies to JSONL and Label Studio input, not {fmt}")
    documents = conll.read_documents(path, fmt, scheme, n_sents, lines=conll.split_lines(text), report=report)
    if scheme == Scheme.auto.value:
        scheme = conll.detect_scheme([sentence for document in documents for sentence in document])
    return conll.make_docs(documents, vocab=nlp.vocab), f"format: {fmt}, tag scheme: {scheme}"
