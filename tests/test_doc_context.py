"""Document context (`pos_ner.layers.doc_context`): next to each token vector, the
mean vector of the tokens with the same NORM in its document. The means are
exact, the gradient is the true one, empty docs pass, and a preset pipeline with
it trains and survives disk, bytes and pickle round trips."""

import pickle

import numpy
import pytest
import spacy
from spacy.util import fix_random_seed, load_config, load_model_from_config
from thinc.api import Model

from pos_ner.layers import doc_context_layer

from conftest import ROOT, make_examples, train

TEXTS = ["Leicester beat Leicester City , and LEICESTER fans cheered .", "", "a b a"]


def fixed_vectors(docs, width=3, seed=0):
    """A tok2vec stand-in: fixed random vectors per doc; records the gradient it receives."""
    rng = numpy.random.default_rng(seed)
    vectors = [rng.normal(size=(len(doc), width)).astype("float32") for doc in docs]

    def forward(model, docs, is_train):
        def backprop(d_vectors):
            model.attrs["grads"] = d_vectors
            return []

        return model.attrs["vectors"], backprop

    return Model("fixed", forward, dims={"nO": width}, attrs={"vectors": vectors, "grads": None})


@pytest.fixture
def docs():
    nlp = spacy.blank("en")
    return [nlp(text) for text in TEXTS]


def test_each_token_gets_the_mean_of_its_norm_in_the_doc(docs):
    inner = fixed_vectors(docs)
    model = doc_context_layer(inner)
    model.initialize(X=docs)
    assert model.get_dim("nO") == 6
    output, _ = model(docs, is_train=False)
    assert [o.shape for o in output] == [(len(doc), 6) for doc in docs]
    for doc, X, Y in zip(docs, inner.attrs["vectors"], output):
        numpy.testing.assert_array_equal(Y[:, :3], X)
        norms = [t.norm_ for t in doc]
        for i, norm in enumerate(norms):
            same = [j for j, other in enumerate(norms) if other == norm]
            numpy.testing.assert_allclose(Y[i, 3:], X[same].mean(axis=0), rtol=1e-6)
    first = output[0]
    # "Leicester", "Leicester" and "LEICESTER" share one mean; "City" has its own vector.
    numpy.testing.assert_allclose(first[0, 3:], first[6, 3:], rtol=1e-6)
    numpy.testing.assert_array_equal(first[3, 3:], first[3, :3])


def test_gradient_matches_finite_differences(docs):
    inner = fixed_vectors(docs)
    model = doc_context_layer(inner)
    model.initialize(X=docs)
    output, backprop = model(docs, is_train=True)
    rng = numpy.random.default_rng(1)
    weights = [rng.normal(size=o.shape) for o in output]
    backprop([w.astype("float32") for w in weights])
    analytic = inner.attrs["grads"]
    assert [g.shape for g in analytic] == [X.shape for X in inner.attrs["vectors"]]

    def loss():
        out, _ = model(docs, is_train=False)
        return sum(float((o.astype("float64") * w).sum()) for o, w in zip(out, weights))

    X, eps = inner.attrs["vectors"][0], 1e-2
    numeric = numpy.zeros_like(X)
    for index in numpy.ndindex(*X.shape):
        X[index] += eps
        up = loss()
        X[index] -= 2 * eps
        down = loss()
        X[index] += eps
        numeric[index] = (up - down) / (2 * eps)
    numpy.testing.assert_allclose(analytic[0], numeric, atol=1e-3)


def test_unknown_attribute_is_refused():
    with pytest.raises(ValueError, match="BOGUS"):
        doc_context_layer(Model("fixed", lambda m, X, t: (X, lambda d: d)), attr="BOGUS")


def build():
    fix_random_seed(0)
    config = load_config(ROOT / "configs" / "pos_ner_cnn.cfg", interpolate=True)
    config["components"]["ner"]["model"]["doc_context"] = True
    return load_model_from_config(config, auto_fill=True, validate=True)


def predictions(nlp, texts=TEXTS):
    return [[(e.start, e.end, e.label_, round(e._.confidence, 5)) for e in doc.ents] for doc in nlp.pipe(texts)]


def test_the_cnn_preset_with_document_context_trains_and_round_trips(tmp_path):
    nlp = build()
    assert nlp.get_pipe("ner").model.get_ref("tok2vec").layers[0].name == "doc_context"
    history = train(nlp, make_examples(nlp, n_docs=12), steps=30, annotates=["tok2vec", "tagger"])
    assert history[-1] < 0.5 * history[0]
    texts = ["Tom Reed works for Acme Corp in Oslo .", "", "Acme Corp hired Tom Reed ."]
    expected = predictions(nlp, texts)
    assert any(expected) and expected[1] == []
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert predictions(loaded, texts) == expected
    assert predictions(build().from_bytes(nlp.to_bytes()), texts) == expected
    assert predictions(pickle.loads(pickle.dumps(loaded)), texts) == expected
