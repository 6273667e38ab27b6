"""Read NER-annotated files (CoNLL-2003, two-column or CSV; IOB1 or IOB2) into
spaCy Docs, with `path:line: reason` errors for bad input.

Users bring their own files, so nothing is repaired silently: a character that
would vanish or split a token unseen (control characters, zero-width spaces, a
BOM inside the file), a CSV cell holding a line break, an unknown tag, all stop
the conversion with one line naming the file and line. The character checks
(`find_bad_character`, `label_problem`) are shared with the span readers in
`pos_ner.io.spans`.

Two options let such data through, each reported (`BadDataOptions`, applied by a
`ReadReport`, the one place of that policy for every reader): `normalize` removes
invisible and control characters (`normalize_text`) and counts them line by line;
`skip_bad_records` leaves out each sentence (or JSONL record, Label Studio task)
that is still bad, keeping its `path:line: reason` and the entities it held.
"""

import csv
import re
import unicodedata
from bisect import bisect_left
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from functools import cache, partial
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

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
# Removed by --normalize besides the refused characters: a hyphenation hint, invisible within a line.
SOFT_HYPHEN = "\u00ad"
# How many line numbers a report names before "and N more".
LINES_SHOWN = 5


class Scheme(str, Enum):
    auto = "auto"
    iob1 = "iob1"
    iob2 = "iob2"


class ConversionError(Exception):
    """Bad input, located as `path:line: message` (or `path: message` without a line).

    `characters`: a character that `--normalize` removes or replaces is the cause.
    `unit` ("sentence", "record", "task"): the error lies in one such unit, which
    `--skip-bad-records` would leave out (set by `ReadReport.record`); None for an
    error of the whole file."""

    def __init__(self, path: Path, line: Optional[int], message: str, characters: bool = False):
        location = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{location}: {message}")
        self.path, self.line, self.reason = path, line, message
        self.characters = characters
        self.unit: Optional[str] = None

    def extend(self, text: str) -> None:
        """Append `text` to the message (what `--normalize` changed on the line)."""
        self.reason += text
        self.args = (f"{self.args[0]}{text}",)


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
        raise ConversionError(
            path, line, f"{name} at column {offset + 1}; remove it or replace it by a space", characters=True
        )


def normalized_form(char: str) -> Optional[str]:
    """What `--normalize` makes of `char`: "" (removed: zero-width and other invisible
    characters, the soft hyphen, controls), " " (whitespace that is neither space nor tab:
    vertical tab, line and paragraph separators, ...), or None (kept as it is).

    Other format characters stay (the zero-width joiner and non-joiner, direction marks:
    scripts and emoji need them), and so do no-break and other spaces inside a token,
    which are accepted without the option too."""
    if char in INVISIBLE or char == SOFT_HYPHEN or unicodedata.category(char) in BAD_CATEGORIES:
        return " " if char.isspace() else ""
    return None


@cache
def _ascii_to_normalize(allowed: str) -> "re.Pattern[str]":
    """The ASCII characters `normalized_form` changes, less `allowed` (a fast path for ASCII text)."""
    controls = "".join(chr(code) for code in [*range(32), 127] if chr(code) not in allowed)
    return re.compile(f"[{re.escape(controls)}]")


@dataclass
class Normalized:
    """Text as `--normalize` made it, the characters it changed (counted) and where the
    removed ones were, so that offsets into the original text can be moved (`offset`)."""

    text: str
    changed: Counter = field(default_factory=Counter)
    removed: list[int] = field(default_factory=list)

    def offset(self, original: int) -> int:
        """The offset in `text` of offset `original` of the text before normalizing."""
        return original - bisect_left(self.removed, original)


def normalize_text(text: str, allowed: str = "") -> Normalized:
    """Remove or replace what `normalized_form` says, except the characters in `allowed`."""
    if text.isascii() and not _ascii_to_normalize(allowed).search(text):
        return Normalized(text)
    pieces, result = [], Normalized(text)
    for offset, char in enumerate(text):
        form = None if char in allowed else normalized_form(char)
        if form is None:
            pieces.append(char)
            continue
        result.changed[char] += 1
        if form:
            pieces.append(form)
        else:
            result.removed.append(offset)
    if result.changed:
        result.text = "".join(pieces)
    return result


def describe_changes(changed: Counter) -> str:
    """`removed 2 U+200B ZERO WIDTH SPACE; replaced 1 U+2028 LINE SEPARATOR by a space`."""
    ordered = sorted(changed.items(), key=lambda item: (-item[1], item[0]))
    removed = [f"{n} {describe_character(char)}" for char, n in ordered if normalized_form(char) == ""]
    spaced = [f"{n} {describe_character(char)}" for char, n in ordered if normalized_form(char) == " "]
    parts = [f"removed {', '.join(removed)}"] if removed else []
    parts += [f"replaced {', '.join(spaced)} by a space"] if spaced else []
    return "; ".join(parts)


def plural(n: int, one: str, many: str = "") -> str:
    """`1 sentence`, `2 sentences` (`many` where adding an s will not do)."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def describe_lines(numbers: Sequence[int]) -> str:
    """`4, 9, 12, 15, 20 and 3 more`: the first few of `numbers`."""
    shown = ", ".join(str(number) for number in numbers[:LINES_SHOWN])
    return shown + (f" and {len(numbers) - LINES_SHOWN} more" if len(numbers) > LINES_SHOWN else "")


def count_entities(tags: Sequence[str]) -> Counter:
    """Entities per label in a sequence of IOB1 or IOB2 tags (tags that are no tags are ignored)."""
    labels: Counter = Counter()
    previous = "O"
    for tag in tags:
        if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != tag[2:]):
            labels[tag[2:]] += 1
        previous = tag if tag.startswith(("B-", "I-")) else "O"
    return labels


def describe_entities(labels: Counter) -> str:
    """`3 entities (2 PER, 1 LOC)`."""
    per_label = ", ".join(f"{n} {label}" for label, n in sorted(labels.items(), key=lambda item: (-item[1], item[0])))
    return plural(sum(labels.values()), "entity", "entities") + (f" ({per_label})" if per_label else "")


@dataclass(frozen=True)
class BadDataOptions:
    """How bad input is treated. Both off (the default), the first bad line stops the
    conversion. `normalize`: remove or replace invisible and control characters
    (`normalized_form`). `skip_bad_records`: leave out the sentences (or records) that
    are still bad, each kept as `path:line: reason`; a file with none left fails."""

    normalize: bool = False
    skip_bad_records: bool = False


@dataclass
class Rejection:
    """A sentence or record left out: the error, and the entities it held (None when it
    could not be read far enough to count them, e.g. invalid JSON)."""

    error: ConversionError
    entities: Optional[Counter]


@dataclass
class ReadReport:
    """The bad-data policy of one file's reading, and what it did: every reader (CoNLL,
    columns, CSV, JSONL, Label Studio) normalizes through `normalize` and reads each
    sentence or record inside `record`, so the options work, and are reported, alike."""

    options: BadDataOptions = BadDataOptions()
    unit: str = "sentences"
    read: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    # line -> the characters --normalize changed there
    changed: dict[int, Counter] = field(default_factory=dict)

    def normalize(self, line: int, text: str, allowed: str = "") -> Normalized:
        """`text`, found on `line`, as `--normalize` makes it (as it is without the option);
        the changes are counted."""
        if not self.options.normalize:
            return Normalized(text)
        result = normalize_text(text, allowed)
        if result.changed:
            self.changed.setdefault(line, Counter()).update(result.changed)
        return result

    @contextmanager
    def record(self, line: int, entities: Callable[[], Optional[Counter]]) -> Iterator[None]:
        """Read one sentence or record (beginning on `line`) in the `with` block. A `ConversionError`
        in it names the unit (and what `--normalize` changed on its line); with
        `skip_bad_records` the unit is rejected, its entities counted by `entities()`,
        and reading goes on, else the error propagates."""
        self.read += 1
        try:
            yield
        except ConversionError as error:
            error.unit = self.unit[:-1]
            self.explain(error)
            if not self.options.skip_bad_records:
                raise
            self.rejections.append(Rejection(error, entities()))

    def explain(self, error: ConversionError) -> None:
        """Add what `--normalize` changed on the error's line to its message, if anything."""
        if error.line in self.changed:
            error.extend(f" (--normalize {describe_changes(self.changed[error.line])} on this line)")

    def check_kept(self, path: Path) -> None:
        """Fail when `skip_bad_records` left nothing: every unit was bad."""
        if self.rejections and len(self.rejections) == self.read:
            first = self.rejections[0].error
            message = (
                f"--skip-bad-records rejected every {self.unit[:-1]} ({self.read} of {self.read}), "
                f"so nothing is left to convert; the first: {first.reason}"
            )
            error = ConversionError(path, first.line, message, characters=first.characters)
            error.unit = first.unit
            raise error

    def describe(self) -> list[str]:
        """A line per option given: what `--normalize` changed, where, and what
        `--skip-bad-records` kept and rejected (with the entities rejected)."""
        lines = []
        if self.options.normalize:
            total = sum((counts for counts in self.changed.values()), Counter())
            text = f"--normalize: changed {plural(sum(total.values()), 'character')}"
            if total:
                numbers = sorted(self.changed)
                text += f" on {plural(len(numbers), 'line')} ({describe_lines(numbers)}): {describe_changes(total)}"
            lines.append(text)
        if self.options.skip_bad_records:
            rejected = len(self.rejections)
            read = plural(self.read, self.unit[:-1])
            text = f"--skip-bad-records: {read} read, {self.read - rejected} kept, {rejected} rejected"
            counted = [r.entities for r in self.rejections if r.entities is not None]
            if rejected:
                text += f", holding {describe_entities(sum(counted, Counter()))}"
            if len(counted) < rejected:
                unreadable = plural(rejected - len(counted), f"unreadable {self.unit[:-1]}")
                text += f" (and those of {unreadable}, not counted)"
            lines.append(text)
        return lines

    def rejection_lines(self) -> list[str]:
        """One `path:line: reason` per rejected unit, for the rejects file."""
        return [str(rejection.error) for rejection in self.rejections]


def with_hint(error: Exception, options: BadDataOptions = BadDataOptions()) -> str:
    """An error as `pos-ner convert` and `corpus` print it: a `ConversionError` ends with the
    option that would let the data through (`--normalize` for a character it removes or
    replaces, `--skip-bad-records` for a bad sentence or record), when there is one."""
    message = str(error)
    if not isinstance(error, ConversionError):
        return message
    if error.characters and not options.normalize:
        return f"{message}; or pass --normalize to remove such characters (project: --vars.normalize true)"
    if error.unit is not None and not options.skip_bad_records:
        return (
            f"{message}; or pass --skip-bad-records to leave out such {error.unit}s and list them in a rejects file "
            "(project: --vars.skip_bad_records true)"
        )
    return message


def column_count_hint(line: str) -> str:
    """A hint for a wrong column count caused by whitespace other than space and tab."""
    other = sorted({char for char in line if char.isspace() and char not in " \t"})
    if not other:
        return ""
    names = ", ".join(describe_character(char) for char in other)
    return f" (columns are separated by spaces or tabs; the line holds {names})"


def detect_format(path: Path, lines: list[str], options: BadDataOptions = BadDataOptions()) -> str:
    """Guess the format from the extension, the CSV header or the column count (of the
    first line with tokens; with `skip_bad_records`, of the first line with 2 or 4 columns,
    and with `normalize`, of the lines as normalizing makes them)."""
    if path.suffix.lower() == ".csv":
        return "csv"
    first_error: Optional[ConversionError] = None
    for number, line in enumerate(lines, 1):
        normalized = normalize_text(line, allowed="\t") if options.normalize else Normalized(line)
        line = normalized.text
        fields = FIELD_PATTERN.findall(line)
        if not fields or fields[0] == DOCSTART:
            continue
        if line.startswith(CSV_SENTENCE + ","):
            return "csv"
        if len(fields) in FORMAT_BY_COLUMNS:
            return FORMAT_BY_COLUMNS[len(fields)]
        if first_error is None:  # the error if no line has 2 or 4 columns (at once without skip_bad_records)
            first_error = column_error(path, number, line, len(fields), normalized.changed)
            if not options.skip_bad_records:
                break
    if first_error is not None:
        raise first_error
    raise ConversionError(path, max(len(lines), 1), "no tokens found")


def column_error(path: Path, number: int, line: str, n_fields: int, changed: Counter) -> ConversionError:
    """Why line `number`, whose column count fits no format, is bad: a refused character, or
    the count (with what `--normalize` had changed on it)."""
    try:
        check_characters(path, number, line)
        error = ConversionError(path, number, f"expected 2 or 4 columns, got {n_fields}{column_count_hint(line)}")
    except ConversionError as bad_character:
        error = bad_character
    error.unit = "sentence"
    if changed:
        error.extend(f" (--normalize {describe_changes(changed)} on this line)")
    return error


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


def line_kind(line: str, original: str) -> str:
    """The kind of a column line: "docstart", "blank" (no fields, or only whitespace such as
    U+00A0) or "tokens". A line holding a refused character, or emptied by `--normalize`,
    is "tokens": it is judged (and refused) as part of a sentence, never taken for a
    separator. `original` is the line before `--normalize`."""
    fields = FIELD_PATTERN.findall(line)
    if fields and fields[0] != DOCSTART and not is_invisible("".join(fields)):
        return "tokens"
    if find_bad_character(line, allowed="\t") is not None:
        return "tokens"
    if fields and fields[0] == DOCSTART:
        return "docstart"
    if line == original or find_bad_character(original, allowed="\t") is None:
        return "blank"
    return "tokens"


def column_blocks(lines: list[str], originals: list[str]) -> Iterator[Optional[list[int]]]:
    """The line numbers of each sentence, in order, and None for each -DOCSTART- line."""
    block: list[int] = []
    for number, (line, original) in enumerate(zip(lines, originals), 1):
        kind = line_kind(line, original)
        if kind == "tokens":
            block.append(number)
            continue
        if block:
            yield block
            block = []
        if kind == "docstart":
            yield None
    if block:
        yield block


def read_sentence(path: Path, lines: list[str], numbers: list[int], n_columns: int) -> Sentence:
    """The sentence on lines `numbers`, or the `ConversionError` of its first bad line."""
    sentence = Sentence()
    for number in numbers:
        line = lines[number - 1]
        check_characters(path, number, line)
        fields = FIELD_PATTERN.findall(line)
        if len(fields) != n_columns:
            hint = column_count_hint(line)
            raise ConversionError(path, number, f"expected {n_columns} columns, got {len(fields)}{hint}")
        check_word(path, number, fields[0])
        check_tag(path, number, fields[-1])
        sentence.words.append(fields[0])
        sentence.pos.append(fields[1] if n_columns == 4 else "")
        sentence.tags.append(fields[-1])
        sentence.lines.append(number)
    return sentence


def column_entities(lines: list[str], numbers: list[int]) -> Counter:
    """The entities of a (bad) sentence, by its lines' last fields."""
    return count_entities([fields[-1] for fields in (FIELD_PATTERN.findall(lines[n - 1]) for n in numbers) if fields])


def parse_columns(
    path: Path,
    lines: list[str],
    n_columns: int,
    scheme: str = "auto",
    report: Optional[ReadReport] = None,
    originals: Optional[list[str]] = None,
) -> tuple[list[Document], bool]:
    """Parse whitespace-separated columns; return the -DOCSTART- parts and whether any was seen.

    Each sentence is read in `report.record` (a bad one stops the reading, or is rejected);
    `originals` are the lines before `--normalize` (default: `lines`)."""
    report = ReadReport() if report is None else report
    parts: list[Document] = [[]]
    for numbers in column_blocks(lines, lines if originals is None else originals):
        if numbers is None:
            parts.append([])
            continue
        with report.record(numbers[0], partial(column_entities, lines, numbers)):
            sentence = read_sentence(path, lines, numbers, n_columns)
            if scheme == Scheme.iob2.value:
                check_iob2(path, [sentence])
            parts[-1].append(sentence)
    return [part for part in parts if part], len(parts) > 1


Row = tuple[int, list[str], Optional[ConversionError]]


def csv_rows(path: Path, lines: list[str]) -> Iterator[Row]:
    """CSV rows with their line numbers, and for a bad row the error (else None).

    Refused are what `csv` would otherwise merge or raise: a quoted cell holding a line
    break would be joined without it (`New\\nYork` → `NewYork`), so a row spanning several
    lines is bad; so is a cell over the field size limit and malformed quoting
    (`strict=True`). Malformed quoting that runs over several lines is an error of the
    whole file (where the row ends cannot be told), raised rather than returned.
    """
    reader = csv.reader(lines, strict=True)
    last_line = 0
    while True:
        first_line = last_line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            last_line = reader.line_num or 1
            failure = ConversionError(path, last_line, f"bad CSV ({error})")
            if last_line > first_line:
                raise failure from error
            yield last_line, [], failure
            continue
        last_line = reader.line_num
        problem = None
        try:
            for number in range(first_line, last_line + 1):
                check_characters(path, number, lines[number - 1])
        except ConversionError as error:
            problem = error
        if problem is None and last_line != first_line:
            problem = ConversionError(
                path,
                first_line,
                f"a quoted CSV cell spans lines {first_line}-{last_line}; cells may not hold line breaks",
            )
        yield first_line, row, problem


def read_csv_sentence(path: Path, rows: list[Row], header: list[str], column: dict[str, int]) -> Sentence:
    """The sentence of `rows`, or the `ConversionError` of its first bad row."""
    sentence = Sentence()
    for number, row, problem in rows:
        if problem is not None:
            raise problem
        if len(row) != len(header):
            raise ConversionError(path, number, f"expected {len(header)} columns, got {len(row)}")
        word, tag = row[column[CSV_WORD]], row[column[CSV_TAG]]
        if not word:
            raise ConversionError(path, number, "empty word")
        check_word(path, number, word)
        check_tag(path, number, tag)
        sentence.words.append(word)
        sentence.pos.append(row[column[CSV_POS]] if CSV_POS in column else "")
        sentence.tags.append(tag)
        sentence.lines.append(number)
    return sentence


def csv_entities(rows: list[Row], tag_column: int) -> Counter:
    return count_entities([row[tag_column] for _, row, _ in rows if len(row) > tag_column])


def parse_csv(
    path: Path,
    lines: list[str],
    scheme: str = "auto",
    report: Optional[ReadReport] = None,
    originals: Optional[list[str]] = None,
) -> list[Sentence]:
    """Parse a `Sentence #,Word,POS,Tag` CSV; a non-empty `Sentence #` starts a sentence,
    each read in `report.record` (see `parse_columns`)."""
    report = ReadReport() if report is None else report
    originals = lines if originals is None else originals
    rows = csv_rows(path, lines)
    _, header, problem = next(rows, (1, [], None))
    if problem is not None:
        raise problem
    header = [name.strip() for name in header]
    missing = [name for name in (CSV_SENTENCE, CSV_WORD, CSV_TAG) if name not in header]
    if missing:
        raise ConversionError(path, 1, f"missing CSV columns: {', '.join(missing)}")
    column = {name: header.index(name) for name in header}
    blocks: list[list[Row]] = []
    for number, row, problem in rows:
        if not row and problem is None:
            if lines[number - 1] == originals[number - 1]:
                continue  # a blank line
            problem = ConversionError(path, number, "nothing is left of the line")
        starts = len(row) == len(header) and bool(row[column[CSV_SENTENCE]].strip())
        if starts or not blocks:
            blocks.append([])
        blocks[-1].append((number, row, problem))
    sentences: list[Sentence] = []
    for block in blocks:
        with report.record(block[0][0], partial(csv_entities, block, column[CSV_TAG])):
            sentence = read_csv_sentence(path, block, header, column)
            if scheme == Scheme.iob2.value:
                check_iob2(path, [sentence])
            sentences.append(sentence)
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
    report: Optional[ReadReport] = None,
) -> list[Document]:
    """Read and validate a file into documents (lists of sentences).

    Files with -DOCSTART- lines keep their documents (split further only if `n_sents` is
    given); other files are grouped into documents of `n_sents` (default 10) sentences.
    `lines` are the file's lines when the caller has already read them. `report` holds the
    options for bad data (`--normalize`, `--skip-bad-records`) and says what they did.
    """
    report = ReadReport() if report is None else report
    report.unit = "sentences"
    if lines is None:
        lines = read_lines(path)
    originals = lines
    if report.options.normalize:
        lines = [report.normalize(number, line, allowed="\t").text for number, line in enumerate(originals, 1)]
    if fmt == "auto":
        try:
            fmt = detect_format(path, lines, BadDataOptions(skip_bad_records=report.options.skip_bad_records))
        except ConversionError as error:
            report.explain(error)
            raise
    if fmt == "csv":
        parts, has_docstart = [parse_csv(path, lines, scheme, report, originals)], False
    else:
        parts, has_docstart = parse_columns(path, lines, COLUMNS[fmt], scheme, report, originals)
    sentences = [sentence for part in parts for sentence in part]
    if not sentences:
        report.check_kept(path)
        raise ConversionError(path, max(len(lines), 1), "no tokens found")
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
