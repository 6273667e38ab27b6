"""The efficiency preset (configs/pos_ner_cnn.cfg): spaCy's CNN tok2vec feeds
the tagger and pos_ner, no transformer. It trains, predicts, keeps empty docs,
survives disk, bytes and pickle round trips, and its tagger sees real vectors
during training only because tok2vec is an annotating component."""

import pickle

import pytest
import spacy
from spacy.pipeline import Tagger
from spacy.util import fix_random_seed, load_config, load_model_from_config
from thinc.api import NumpyOps

from pos_ner import use_numpy_matmul

from conftest import ROOT, make_examples, train

CONFIG = ROOT / "configs" / "pos_ner_cnn.cfg"
ANNOTATING = ["tok2vec", "tagger"]
TEXTS = ["Anna Berg lives in Paris .", "", "United Bank opened an office in Oslo ."]


def build():
    fix_random_seed(0)
    return load_model_from_config(load_config(CONFIG, interpolate=True), auto_fill=True, validate=True)


def predictions(nlp, texts=TEXTS):
    return [[(e.start, e.end, e.label_, round(e._.confidence, 5)) for e in doc.ents] for doc in nlp.pipe(texts)]


@pytest.fixture(scope="module")
def trained():
    nlp = build()
    history = train(nlp, make_examples(nlp, n_docs=12), steps=30, annotates=ANNOTATING)
    return nlp, history


def test_the_preset_is_the_same_pipeline_without_a_transformer():
    config = load_config(CONFIG)
    assert config["nlp"]["pipeline"] == ["tok2vec", "tagger", "ner"]
    assert config["components"]["ner"]["factory"] == "pos_ner"
    assert config["training"]["annotating_components"] == ANNOTATING
    default = load_config(ROOT / "configs" / "pos_ner.cfg")
    # The same component settings, corpora and evaluation as the default; SHAPE is
    # already one of the CNN's own embedded attributes, so pos_ner embeds TAG alone.
    model, default_model = config["components"]["ner"]["model"], default["components"]["ner"]["model"]
    assert model["features"] == ["TAG"] and "SHAPE" in config["components"]["tok2vec"]["model"]["embed"]["attrs"]
    # Learned transitions: on for the CNN (+0.81 test F1 over 3 paired seeds), off for the
    # transformer, whose 1-epoch screen lost 0.28 on seed 0 (benchmarks/RESULTS.md).
    assert model["transitions"] is True and default_model["transitions"] is False
    # Document context: on for the CNN (+1.98 test F1 over 3 paired seeds), off for the
    # transformer, whose windows already span sentences (not screened).
    assert model["doc_context"] is True and default_model["doc_context"] is False
    own = ("tok2vec", "features", "transitions", "doc_context")
    assert {k: v for k, v in model.items() if k not in own} == {k: v for k, v in default_model.items() if k not in own}
    assert config["corpora"]["dev"] == default["corpora"]["dev"]
    assert config["training"]["score_weights"] == default["training"]["score_weights"]


def test_trains_and_finds_entities(trained):
    nlp, history = trained
    assert history[-1] < 0.5 * history[0]
    found = [ent for doc in nlp.pipe(TEXTS) for ent in doc.ents]
    assert found and all(0.0 <= ent._.confidence <= 1.0 for ent in found)


def test_empty_docs(trained):
    nlp, _ = trained
    docs = list(nlp.pipe(["", "Tom Reed works for Acme Corp .", ""]))
    assert [len(doc) for doc in docs] == [0, 7, 0] and docs[0].ents == () and docs[2].ents == ()


def test_round_trips(trained, tmp_path):
    """Pickled as a loaded pipeline: right after `nlp.update`, spaCy's own
    Tok2VecListener still holds the last batch's backprop closure, which no
    CNN pipeline of spaCy's can pickle (README, "Choosing a preset")."""
    nlp, _ = trained
    expected = predictions(nlp)
    assert any(expected)
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert predictions(loaded) == expected
    assert predictions(build().from_bytes(nlp.to_bytes())) == expected
    assert predictions(pickle.loads(pickle.dumps(loaded))) == expected


@pytest.mark.parametrize(("annotates", "tensors"), [(ANNOTATING, True), (["tagger"], False)])
def test_tagger_sees_the_cnn_vectors_only_when_tok2vec_annotates(annotates, tensors, monkeypatch):
    """The gotcha of the transformer pipeline, on the CNN: when the tagger
    annotates during training its listener reads `doc.tensor`, which tok2vec
    sets only as an annotating component; otherwise it gets zeros."""
    seen = []
    original = Tagger.predict

    def spy(self, docs):
        docs = list(docs)
        seen.append([doc.tensor.size > 0 for doc in docs if len(doc)])
        return original(self, docs)

    monkeypatch.setattr(Tagger, "predict", spy)
    nlp = build()
    train(nlp, make_examples(nlp, n_docs=4), steps=2, annotates=annotates)
    assert seen and all(all(batch) if tensors else not any(batch) for batch in seen)


def matmul_ops(nlp):
    """The (ops class, uses blis) pairs of every layer of every component."""
    return {
        (type(node.ops).__name__, getattr(node.ops, "use_blis", None))
        for _, pipe in nlp.pipeline
        for node in pipe.model.walk()
    }


def test_every_layer_multiplies_with_numpy_after_build_load_and_pickle(trained, tmp_path):
    """[nlp.after_pipeline_creation] names pos_ner.numpy_matmul.v1: thinc's layers
    use NumpyOps(use_blis=False), in training and wherever the pipeline is rebuilt."""
    nlp, _ = trained
    assert matmul_ops(nlp) == {("NumpyOps", False)}
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert matmul_ops(loaded) == {("NumpyOps", False)}
    assert matmul_ops(pickle.loads(pickle.dumps(loaded))) == {("NumpyOps", False)}
    for name in ("pos_ner_cnn.cfg", "baseline_ner_cnn.cfg"):
        built = load_model_from_config(load_config(ROOT / "configs" / name, interpolate=True), auto_fill=True)
        assert matmul_ops(built) == {("NumpyOps", False)}, name


def test_numpy_matmul_predicts_what_blis_predicts(trained, tmp_path):
    """The same weights give the same entities on either matrix product; confidences
    differ only by float rounding. Other ops (GPU, other CPU backends) are kept."""
    nlp, _ = trained
    nlp.to_disk(tmp_path / "model")
    with_blis = spacy.load(tmp_path / "model", config={"nlp": {"after_pipeline_creation": None}})
    assert matmul_ops(with_blis) == {("NumpyOps", True)}
    ours, theirs = predictions(nlp), predictions(with_blis)
    assert [[e[:3] for e in doc] for doc in ours] == [[e[:3] for e in doc] for doc in theirs]
    assert all(abs(a[3] - b[3]) < 1e-4 for x, y in zip(ours, theirs) for a, b in zip(x, y))

    class OtherOps(NumpyOps):
        name = "other"

    other = OtherOps()
    for _, pipe in with_blis.pipeline:
        for node in pipe.model.walk():
            node.ops = other
    use_numpy_matmul(with_blis)
    assert matmul_ops(with_blis) == {("OtherOps", True)}
