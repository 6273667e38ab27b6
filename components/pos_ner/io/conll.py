"""Read NER-annotated files (CoNLL-2003, two-column or CSV; IOB1 or IOB2) into
spaCy Docs, with `path:line: reason` errors for bad input.

Users bring their own files, so nothing is repaired silently: a character that
would vanish or split a token unseen (control characters, zero-width spaces, a
BOM inside the file), a CSV cell holding a line break, an unknown tag, all stop
the conversion with one line naming the file and line. The character checks
(`find_bad_character`, `label_problem`) are shared with the span readers in
`pos_ner.io.spans`.
"""

import csv
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from spacy.tokens import Doc, DocBin
from spacy.training.iob_utils import biluo_tags_to_spans, iob_to_biluo
from spacy.vocab import Vocab

from .files import atomic_file

DOCSTART = "-DOCSTART-"
DEFAULT_N_SENTS = 10
COLUMNS = {"conll": 4, "columns": 2}
FORMAT_BY_COLUMNS = {n: fmt for fmt, n in COLUMNS.items()}
CSV_SENTENCE, CSV_WORD, CSV_POS, CSV_TAG = "Sentence #", "Word", "POS", "Tag"
TAG_PATTERN = re.compile(r"O|[BI]-\S+")
FIELD_PATTERN = re.compile(r"[^ \t]+")
# Invisible characters that are not control characters (category Cf) but join or split words unseen.
# Other Cf characters (ZWJ/ZWNJ, soft hyphen, bidi marks) are kept inside tokens: Persian, Indic
# scripts and emoji sequences need them; a token made only of such characters is still refused.
INVISIBLE = frozenset("\u200b\u2060\ufeff\u180e")
# Control (Cc), surrogate (Cs, only reachable through JSON escapes) and line/paragraph separators.
BAD_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


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


def describe_character(char: str) -> str:
    """`U+200B ZERO WIDTH SPACE`: how an invisible character is named in messages."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}"


def find_bad_character(text: str, allowed: str = "") -> Optional[tuple[int, str]]:
    """Offset and description of the first character that must not be in annotation data.

    Control characters (except those in `allowed`), surrogates, line separators and the
    invisible spaces in `INVISIBLE` would silently merge, split or disappear from tokens.
    """
    for offset, char in enumerate(text):
        if char in allowed:
            continue
        if char in INVISIBLE or unicodedata.category(char) in BAD_CATEGORIES:
            return offset, describe_character(char)
    return None


def is_invisible(text: str) -> bool:
    """True for text made only of whitespace and format characters (nothing a reader can see)."""
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


def label_problem(label: str) -> Optional[str]:
    """Why `label` cannot be an entity label (empty, or holding whitespace or invisible
    characters, which would make two labels that look the same differ), or None."""
    if not label:
        return "empty label"
    for char in label:
        if char.isspace() or unicodedata.category(char) in BAD_CATEGORIES | {"Cf"}:
            return f"label {label!r} holds {describe_character(char)}"
    return None


def decode_text(path: Path, data: bytes) -> str:
    """Decode UTF-8 (a leading BOM is dropped), naming the line of the first bad byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConversionError(path, 1, "the file is UTF-16; convert it to UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - line_start + 1
        raise ConversionError(
            path, line, f"invalid UTF-8 ({error.reason} at byte column {column}); re-encode the file as UTF-8"
        ) from error


def read_text(path: Path) -> str:
    """The whole file as text (see `decode_text`); OS errors become `path: reason`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConversionError(path, None, error.strerror or str(error)) from error
    return decode_text(path, data)


def split_lines(text: str) -> list[str]:
    """Lines without their `\n` or `\r\n` ending (a lone `\r` inside a line is kept, and refused later)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path: Path) -> list[str]:
    """Read a file as UTF-8 text lines, failing on the first line that does not decode."""
    return split_lines(read_text(path))


def check_characters(path: Path, line: int, text: str) -> None:
    """Refuse control and zero-width characters in a line (tab separates columns)."""
    found = find_bad_character(text, allowed="\t")
    if found is not None:
        offset, name = found
        raise ConversionError(path, line, f"{name} at column {offset + 1}; remove it or replace it by a space")


def column_count_hint(line: str) -> str:
    """A hint for a wrong column count caused by whitespace other than space and tab."""
    other = sorted({char for char in line if char.isspace() and char not in " \t"})
    if not other:
        return ""
    names = ", ".join(describe_character(char) for char in other)
    return f" (columns are separated by spaces or tabs; the line holds {names})"


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
        check_characters(path, number, line)
        hint = column_count_hint(line)
        raise ConversionError(path, number, f"expected 2 or 4 columns, got {len(fields)}{hint}")
    raise ConversionError(path, max(len(lines), 1), "no tokens found")


def check_tag(path: Path, line: int, tag: str) -> None:
    """Accept only `O`, `B-TYPE` and `I-TYPE`, with a visible TYPE."""
    if not TAG_PATTERN.fullmatch(tag):
        raise ConversionError(path, line, f"unknown tag {tag!r}")
    problem = label_problem(tag[2:]) if tag != "O" else None
    if problem is not None:
        raise ConversionError(path, line, f"tag {tag!r}: {problem}")


def check_word(path: Path, line: int, word: str) -> None:
    """A token must be something a reader can see (a whitespace-only token vanishes from the text)."""
    if is_invisible(word):
        names = ", ".join(describe_character(char) for char in word)
        raise ConversionError(path, line, f"token made only of invisible characters ({names})")


def parse_columns(path: Path, lines: list[str], n_columns: int) -> tuple[list[Document], bool]:
    """Parse whitespace-separated columns; return the -DOCSTART- parts and whether any was seen."""
    parts: list[Document] = [[]]
    sentence = Sentence()
    for number, line in enumerate(lines, 1):
        check_characters(path, number, line)
        fields = FIELD_PATTERN.findall(line)
        if fields and is_invisible("".join(fields)):
            fields = []  # a line of other whitespace (e.g. U+00A0) is a blank line too
        if not fields or fields[0] == DOCSTART:
            if sentence.words:
                parts[-1].append(sentence)
                sentence = Sentence()
            if fields:
                parts.append([])
            continue
        if len(fields) != n_columns:
            hint = column_count_hint(line)
            raise ConversionError(path, number, f"expected {n_columns} columns, got {len(fields)}{hint}")
        check_word(path, number, fields[0])
        check_tag(path, number, fields[-1])
        sentence.words.append(fields[0])
        sentence.pos.append(fields[1] if n_columns == 4 else "")
        sentence.tags.append(fields[-1])
        sentence.lines.append(number)
    if sentence.words:
        parts[-1].append(sentence)
    return [part for part in parts if part], len(parts) > 1


def csv_rows(path: Path, lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    """CSV rows with their line numbers; refuses what `csv` would otherwise merge or raise.

    A quoted cell holding a line break would be joined without it (`New\\nYork` → `NewYork`),
    so a row spanning several lines is an error; a cell over the field size limit and
    malformed quoting (`strict=True`) become errors naming the line instead of tracebacks.
    """
    for number, line in enumerate(lines, 1):
        check_characters(path, number, line)
    reader = csv.reader(lines, strict=True)
    last_line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise ConversionError(path, reader.line_num or 1, f"bad CSV ({error})") from error
        first_line, last_line = last_line + 1, reader.line_num
        if last_line != first_line:
            raise ConversionError(
                path,
                first_line,
                f"a quoted CSV cell spans lines {first_line}-{last_line}; cells may not hold line breaks",
            )
        yield first_line, row


def parse_csv(path: Path, lines: list[str]) -> list[Sentence]:
    """Parse a `Sentence #,Word,POS,Tag` CSV; a non-empty `Sentence #` starts a sentence."""
    rows = csv_rows(path, lines)
    _, header = next(rows, (1, []))
    header = [name.strip() for name in header]
    missing = [name for name in (CSV_SENTENCE, CSV_WORD, CSV_TAG) if name not in header]
    if missing:
        raise ConversionError(path, 1, f"missing CSV columns: {', '.join(missing)}")
    column = {name: header.index(name) for name in header}
    sentences: list[Sentence] = []
    for number, row in rows:
        if not row:
            continue
        if len(row) != len(header):
            raise ConversionError(path, number, f"expected {len(header)} columns, got {len(row)}")
        word, tag = row[column[CSV_WORD]], row[column[CSV_TAG]]
        if not word:
            raise ConversionError(path, number, "empty word")
        check_word(path, number, word)
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
    path: Path,
    fmt: str = "auto",
    scheme: str = "auto",
    n_sents: Optional[int] = None,
    lines: Optional[list[str]] = None,
) -> list[Document]:
    """Read and validate a file into documents (lists of sentences).

    Files with -DOCSTART- lines keep their documents (split further only if `n_sents` is
    given); other files are grouped into documents of `n_sents` (default 10) sentences.
    `lines` are the file's lines when the caller has already read them.
    """
    if lines is None:
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


def make_docs(documents: list[Document], vocab: Optional[Vocab] = None) -> list[Doc]:
    """Convert documents to Docs sharing one vocab (a new one unless given)."""
    vocab = Vocab() if vocab is None else vocab
    return [make_doc(vocab, document) for document in documents]


def docs_to_docbin(docs: Sequence[Doc]) -> DocBin:
    """Pack Docs into a DocBin (tags, sentence starts and entities are kept)."""
    return DocBin(docs=docs, store_user_data=False)


def write_docbin(doc_bin: DocBin, output: Path) -> None:
    """Write via a temporary file next to `output`, renamed over it only on success.

    OS errors become `pos_ner.io.files.OutputError` (one line naming `output`).
    """
    data = doc_bin.to_bytes()
    with atomic_file(output, "wb") as file:
        file.write(data)


def summarize(docs: Sequence[Doc], description: str) -> str:
    """`description` (what was read, e.g. from `pos_ner.io.formats.read_docs`), then counts
    of documents, sentences, tokens and entities (per label and total), one per line."""
    labels = Counter(ent.label_ for doc in docs for ent in doc.ents)
    rows = [
        ("documents", len(docs)),
        ("sentences", sum(len(list(doc.sents)) for doc in docs)),
        ("tokens", sum(len(doc) for doc in docs)),
        ("entities", sum(labels.values())),
    ]
    rows += [(f"  {label}", count) for label, count in sorted(labels.items())]
    return description + "\n" + "\n".join(f"{name:<12}{count:>8}" for name, count in rows)
