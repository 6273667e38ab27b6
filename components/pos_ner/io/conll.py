"""Read NER-annotated files (CoNLL-2003, two-column or CSV; IOB1 or IOB2) into
spaCy Docs, with `path:line: reason` errors for bad input."""

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Optional, Union

from spacy.tokens import Doc, DocBin
from spacy.training.iob_utils import biluo_tags_to_spans, iob_to_biluo
from spacy.vocab import Vocab

DOCSTART = "-DOCSTART-"
DEFAULT_N_SENTS = 10
COLUMNS = {"conll": 4, "columns": 2}
FORMAT_BY_COLUMNS = {n: fmt for fmt, n in COLUMNS.items()}
CSV_SENTENCE, CSV_WORD, CSV_POS, CSV_TAG = "Sentence #", "Word", "POS", "Tag"
TAG_PATTERN = re.compile(r"O|[BI]-\S+")
FIELD_PATTERN = re.compile(r"[^ \t]+")


class InputFormat(str, Enum):
    auto = "auto"
    conll = "conll"
    columns = "columns"
    csv = "csv"


class Scheme(str, Enum):
    auto = "auto"
    iob1 = "iob1"
    iob2 = "iob2"


class ConversionError(Exception):
    """Bad input, located as `path:line: message` (or `path: message` without a line)."""

    def __init__(self, path: Path, line: Optional[int], message: str):
        location = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{location}: {message}")
        self.path, self.line = path, line


@dataclass
class Sentence:
    """One sentence: words, POS tags ("" when absent), IOB tags and source line numbers."""

    words: list[str] = field(default_factory=list)
    pos: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


Document = list[Sentence]


def read_lines(path: Path) -> list[str]:
    """Read a file as UTF-8 text lines, failing on the first line that does not decode."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConversionError(path, None, error.strerror or str(error)) from error
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    lines = []
    for number, raw in enumerate(raw_lines, 1):
        try:
            lines.append(raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r"))
        except UnicodeDecodeError as error:
            raise ConversionError(path, number, f"invalid UTF-8 ({error.reason})") from error
    return lines


def detect_format(path: Path, lines: list[str]) -> str:
    """Guess the format from the extension, the CSV header or the column count."""
    if path.suffix.lower() == ".csv":
        return "csv"
    for number, line in enumerate(lines, 1):
        fields = FIELD_PATTERN.findall(line)
        if not fields or fields[0] == DOCSTART:
            continue
        if line.startswith(CSV_SENTENCE + ","):
            return "csv"
        if len(fields) in FORMAT_BY_COLUMNS:
            return FORMAT_BY_COLUMNS[len(fields)]
        raise ConversionError(path, number, f"expected 2 or 4 columns, got {len(fields)}")
    raise ConversionError(path, max(len(lines), 1), "no tokens found")


def check_tag(path: Path, line: int, tag: str) -> None:
    """Accept only `O`, `B-TYPE` and `I-TYPE`."""
    if not TAG_PATTERN.fullmatch(tag):
        raise ConversionError(path, line, f"unknown tag {tag!r}")


def parse_columns(path: Path, lines: list[str], n_columns: int) -> tuple[list[Document], bool]:
    """Parse whitespace-separated columns; return the -DOCSTART- parts and whether any was seen."""
    parts: list[Document] = [[]]
    sentence = Sentence()
    for number, line in enumerate(lines, 1):
        fields = FIELD_PATTERN.findall(line)
        if not fields or fields[0] == DOCSTART:
            if sentence.words:
                parts[-1].append(sentence)
                sentence = Sentence()
            if fields:
                parts.append([])
            continue
        if len(fields) != n_columns:
            raise ConversionError(path, number, f"expected {n_columns} columns, got {len(fields)}")
        check_tag(path, number, fields[-1])
        sentence.words.append(fields[0])
        sentence.pos.append(fields[1] if n_columns == 4 else "")
        sentence.tags.append(fields[-1])
        sentence.lines.append(number)
    if sentence.words:
        parts[-1].append(sentence)
    return [part for part in parts if part], len(parts) > 1


def parse_csv(path: Path, lines: list[str]) -> list[Sentence]:
    """Parse a `Sentence #,Word,POS,Tag` CSV; a non-empty `Sentence #` starts a sentence."""
    reader = csv.reader(lines)
    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in (CSV_SENTENCE, CSV_WORD, CSV_TAG) if name not in header]
    if missing:
        raise ConversionError(path, 1, f"missing CSV columns: {', '.join(missing)}")
    column = {name: header.index(name) for name in header}
    sentences: list[Sentence] = []
    for row in reader:
        number = reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            raise ConversionError(path, number, f"expected {len(header)} columns, got {len(row)}")
        word, tag = row[column[CSV_WORD]], row[column[CSV_TAG]]
        if not word:
            raise ConversionError(path, number, "empty word")
        check_tag(path, number, tag)
        if row[column[CSV_SENTENCE]].strip() or not sentences:
            sentences.append(Sentence())
        sentence = sentences[-1]
        sentence.words.append(word)
        sentence.pos.append(row[column[CSV_POS]] if CSV_POS in column else "")
        sentence.tags.append(tag)
        sentence.lines.append(number)
    return sentences


def entity_starts_with_i(sentence: Sentence) -> list[int]:
    """Line numbers of `I-` tags that begin an entity (allowed in IOB1 only)."""
    previous = ["O"] + sentence.tags[:-1]
    return [
        line
        for tag, prev, line in zip(sentence.tags, previous, sentence.lines)
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:])
    ]


def detect_scheme(sentences: list[Sentence]) -> str:
    """`iob1` if any `I-` tag starts an entity, else `iob2`."""
    return "iob1" if any(entity_starts_with_i(s) for s in sentences) else "iob2"


def check_iob2(path: Path, sentences: list[Sentence]) -> None:
    """Fail on the first `I-` tag that starts an entity."""
    starts = [line for sentence in sentences for line in entity_starts_with_i(sentence)]
    if starts:
        raise ConversionError(path, starts[0], "I- tag starts an entity, which IOB2 forbids")


def chunk(sentences: list[Sentence], size: int) -> list[Document]:
    """Split sentences into documents of at most `size` sentences."""
    return [sentences[i : i + size] for i in range(0, len(sentences), size)]


def read_documents(
    path: Path, fmt: str = "auto", scheme: str = "auto", n_sents: Optional[int] = None
) -> list[Document]:
    """Read and validate a file into documents (lists of sentences).

    Files with -DOCSTART- lines keep their documents (split further only if `n_sents` is
    given); other files are grouped into documents of `n_sents` (default 10) sentences.
    """
    lines = read_lines(path)
    if fmt == "auto":
        fmt = detect_format(path, lines)
    if fmt == "csv":
        parts, has_docstart = [parse_csv(path, lines)], False
    else:
        parts, has_docstart = parse_columns(path, lines, COLUMNS[fmt])
    sentences = [sentence for part in parts for sentence in part]
    if not sentences:
        raise ConversionError(path, max(len(lines), 1), "no tokens found")
    if scheme == "iob2":
        check_iob2(path, sentences)
    if not has_docstart:
        return chunk(sentences, n_sents or DEFAULT_N_SENTS)
    if n_sents is None:
        return parts
    return [doc for part in parts for doc in chunk(part, n_sents)]


def make_doc(vocab: Vocab, document: Document) -> Doc:
    """Build a Doc with tags, sentence starts and entities from IOB tags."""
    words = [word for sentence in document for word in sentence.words]
    pos = [tag for sentence in document for tag in sentence.pos]
    sent_starts: list[Union[bool, int, None]] = [i == 0 for sentence in document for i in range(len(sentence.words))]
    doc = Doc(
        vocab,
        words=words,
        spaces=[True] * (len(words) - 1) + [False],
        tags=pos if any(pos) else None,
        sent_starts=sent_starts,
    )
    biluo = [tag for sentence in document for tag in iob_to_biluo(sentence.tags)]
    doc.ents = biluo_tags_to_spans(doc, biluo)
    return doc


def make_docs(documents: list[Document]) -> list[Doc]:
    """Convert documents to Docs sharing one vocab."""
    vocab = Vocab()
    return [make_doc(vocab, document) for document in documents]


def docs_to_docbin(docs: list[Doc]) -> DocBin:
    """Pack Docs into a DocBin (tags, sentence starts and entities are kept)."""
    return DocBin(docs=docs, store_user_data=False)


def write_docbin(doc_bin: DocBin, output: Path) -> None:
    """Write via a temporary file next to `output`, renamed over it only on success."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        doc_bin.to_disk(tmp_path)
        os.replace(tmp_path, output)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def summarize(docs: list[Doc], scheme: str) -> str:
    """Counts of documents, sentences, tokens and entities (per label and total)."""
    labels = Counter(ent.label_ for doc in docs for ent in doc.ents)
    rows = [
        ("documents", len(docs)),
        ("sentences", sum(len(list(doc.sents)) for doc in docs)),
        ("tokens", sum(len(doc) for doc in docs)),
        ("entities", sum(labels.values())),
    ]
    rows += [(f"  {label}", count) for label, count in sorted(labels.items())]
    return f"tag scheme: {scheme}\n" + "\n".join(f"{name:<12}{count:>8}" for name, count in rows)
