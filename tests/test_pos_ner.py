"""The pos_ner component: training, decoding, confidences, serialization."""

import numpy
import pytest
import spacy
import srsly
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import load_config
from spacy_transformers.layers import TransformerListener
from thinc.api import Model, concatenate

from pos_ner import Entity, PosNer, build_pos_ner_model, concat_per_doc, decode
from pos_ner.decoding import decode_batch, span_probabilities, transition_masks, viterbi_decode, viterbi_decode_batch

from conftest import ANNOTATING, ROOT, build_nlp, corpus_words, make_examples, train


@pytest.fixture(scope="module")
def trained(tiny_pipeline):
    return tiny_pipeline


def test_update_lowers_the_loss(trained):
    _, history = trained
    assert history[-1] < 0.5 * history[0]


def test_learns_labels_from_data(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("ner")
    assert isinstance(ner, PosNer)
    assert ner.labels == ("LOC", "ORG", "PER")
    assert ner.tag_names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_predicts_entities_with_confidences(trained):
    nlp, _ = trained
    docs = list(nlp.pipe(["Anna Berg lives in New York .", "Globex opened an office in Lima ."]))
    ents = [ent for doc in docs for ent in doc.ents]
    assert ents, "the trained toy model should find entities"
    for ent in ents:
        assert ent.label_ in ("LOC", "ORG", "PER")
        assert 0.0 <= ent._.confidence <= 1.0


def test_empty_docs(trained):
    nlp, _ = trained
    assert nlp("").ents == ()
    docs = list(nlp.pipe(["", "Tom Reed works for Acme Corp .", ""]))
    assert [len(doc) for doc in docs] == [0, 7, 0]
    assert docs[0].ents == () and docs[2].ents == ()


def _predictions(nlp, texts):
    return [[(e.start, e.end, e.label_, round(e._.confidence, 5)) for e in doc.ents] for doc in nlp.pipe(texts)]


TEXTS = ["Anna Berg lives in Paris .", "Mia Cole met Omar Haddad .", "United Bank opened an office in Oslo ."]


def test_disk_round_trip(trained, tmp_path):
    nlp, _ = trained
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("ner").labels == nlp.get_pipe("ner").labels
    assert _predictions(loaded, TEXTS) == _predictions(nlp, TEXTS)


def test_bytes_round_trip(trained, tiny_bert):
    nlp, _ = trained
    fresh = build_nlp(tiny_bert)
    fresh.from_bytes(nlp.to_bytes())
    assert _predictions(fresh, TEXTS) == _predictions(nlp, TEXTS)
    ner_only = fresh.get_pipe("ner").from_bytes(nlp.get_pipe("ner").to_bytes())
    assert ner_only.labels == nlp.get_pipe("ner").labels


def test_ner_receives_predicted_tags_only_when_tagger_annotates(tiny_bert, monkeypatch):
    """spaCy passes earlier predictions on during training only for
    [training] annotating_components; the listener-based tagger needs the
    transformer listed too."""
    seen = []
    nlp = build_nlp(tiny_bert)
    original = PosNer.update

    def spy(self, examples, **kwargs):
        examples = list(examples)
        seen.append([token.tag_ for eg in examples for token in eg.predicted])
        return original(self, examples, **kwargs)

    monkeypatch.setattr(PosNer, "update", spy)
    examples = make_examples(nlp, n_docs=4)
    train(nlp, examples, steps=2, annotates=ANNOTATING)
    assert all(tag for tag in seen[-1]), "every token should carry a predicted tag"

    seen.clear()
    nlp = build_nlp(tiny_bert)
    train(nlp, make_examples(nlp, n_docs=4), steps=2, annotates=[])
    assert not any(tag for tag in seen[-1]), "without annotating components the tags stay empty"


def test_configured_annotating_components():
    config = load_config(ROOT / "configs" / "pos_ner.cfg")
    assert config["training"]["annotating_components"] == ["transformer", "tagger"]
    assert config["nlp"]["pipeline"] == ["transformer", "tagger", "ner"]


@pytest.mark.parametrize(
    "overrides",
    [{"feature_width": 0}, {"features": []}, {"features": ["TAG", "SHAPE"], "feature_width": 16}],
)
def test_feature_settings_train(tiny_bert, overrides):
    nlp = build_nlp(tiny_bert, **overrides)
    examples = make_examples(nlp, n_docs=6)
    history = train(nlp, examples, steps=8)
    assert history[-1] < history[0]
    assert nlp("Lena lives in Cairo .").has_annotation("ENT_IOB")


def test_feature_embedding_is_in_the_model(tiny_bert):
    with_tags = build_nlp(tiny_bert).get_pipe("ner").model
    without = build_nlp(tiny_bert, feature_width=0).get_pipe("ner").model
    assert any(node.name.startswith("hashembed") for node in with_tags.walk())
    assert not any(node.name.startswith("hashembed") for node in without.walk())


def _listener_like(width, returns):
    """A layer whose backprop returns `returns`, as a transformer listener's does."""

    def forward(model, docs, is_train):
        return [model.ops.alloc2f(len(d), width) + 1 for d in docs], lambda d_out: returns

    return Model("listener_like", forward, dims={"nO": width})


def test_concat_per_doc_survives_a_listener_that_returns_none():
    docs = [Doc(spacy.blank("en").vocab, words=["a", "b", "c"])]
    combined = concat_per_doc(_listener_like(4, None), _listener_like(2, []))
    output, backprop = combined(docs, is_train=True)
    assert output[0].shape == (3, 6)
    assert backprop([numpy.ones((3, 6), dtype="f")]) == []
    # thinc's own concatenate cannot add up a None gradient: the reason concat_per_doc exists.
    with pytest.raises(TypeError):
        _, backprop = concatenate(_listener_like(4, None), _listener_like(2, []))(docs, is_train=True)
        backprop([numpy.ones((3, 6), dtype="f")])


def test_thinc_parameter_averages_skip_pytorch_weights():
    """Why the transformer configs keep `use_averages = false`: thinc's optimizer
    averages a PyTorch layer's weights under keys that `use_params` does not read,
    so the averaged weights (which spaCy evaluates and saves) would be the heads'
    averages on top of the encoder's last weights. If this starts failing, thinc
    has fixed it, and PosNerHFShim.use_params (pos_ner.layers.hf_shim) can go."""
    torch = pytest.importorskip("torch")
    from thinc.api import Adam, Linear, PyTorchWrapper, chain

    torch.manual_seed(0)
    model = chain(PyTorchWrapper(torch.nn.Linear(4, 4)), Linear(2, 4))
    model.initialize(X=numpy.zeros((1, 4), dtype="f"))
    optimizer = Adam(0.1, use_averages=True)
    for _ in range(5):
        output, backprop = model.begin_update(numpy.ones((3, 4), dtype="f"))
        backprop(numpy.ones_like(output))
        model.finish_update(optimizer)
    encoder, head = model.layers[0].shims[0]._model, model.layers[1]
    assert {str(key[1]) for key in optimizer.averages} >= {"weight", "bias", "W", "b"}
    last_encoder, last_head = encoder.weight.detach().clone(), head.get_param("W").copy()
    with model.use_params(optimizer.averages):
        assert not numpy.array_equal(head.get_param("W"), last_head)
        assert torch.equal(encoder.weight.detach(), last_encoder)


def test_parameter_averages_reach_the_encoder_in_our_transformer(tiny_bert):
    """`pos_ner.TransformerModel.v1` uses the averages of the encoder's weights
    (the pinned thinc behaviour above would skip them): inside `use_params` every
    averaged weight is the average, and after it the trained weights are back."""
    import torch
    from thinc.api import Adam

    nlp = build_nlp(tiny_bert)
    examples = make_examples(nlp, n_docs=4)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01, use_averages=True)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    encoder = shim._model
    averaged = {key[1]: value for key, value in optimizer.averages.items() if key[0] == shim.id}
    assert "embeddings.word_embeddings.weight" in averaged and len(averaged) > 10
    last = {name: tensor.detach().clone() for name, tensor in encoder.state_dict().items()}
    changed = 0
    with nlp.use_params(optimizer.averages):
        weights = encoder.state_dict()
        for name, value in averaged.items():
            assert numpy.allclose(weights[name].numpy(), value)
            changed += not torch.equal(weights[name], last[name])
        doc = nlp("Anna Berg lives in Paris .")
    assert changed > 10
    assert all(torch.equal(tensor, last[name]) for name, tensor in encoder.state_dict().items())
    assert len(doc) == 6


def test_first_update_sends_gradient_to_the_encoder():
    """A zero-initialised output layer would pass back exactly zero: on CoNLL the
    encoder then learnt only the tagger's objective for most of an epoch."""
    received = []

    def forward(model, docs, is_train):
        vectors = [model.ops.alloc2f(len(d), 4) + 1 for d in docs]
        return vectors, lambda d_out: received.extend(d_out)

    encoder = Model("encoder_like", forward, dims={"nO": 4})
    model = build_pos_ner_model(encoder, features=["TAG"], feature_width=2, feature_rows=10, nO=5)
    docs = [Doc(spacy.blank("en").vocab, words=["a", "b", "c"], tags=["DT", "NN", "VB"])]
    model.initialize(X=docs)
    _, backprop = model.begin_update(docs)
    backprop([numpy.full((3, 5), 0.1, dtype="f")])
    assert numpy.abs(received[0]).sum() > 0


def _is_valid_bio(tags, sent_starts):
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            if i == 0 or sent_starts[i] or tags[i - 1][2:] != tag[2:] or tags[i - 1] == "O":
                return False
    return True


def test_viterbi_output_is_always_valid_bio():
    names = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    allowed, allowed_first = transition_masks(tuple(names))
    rng = numpy.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        log_probs = numpy.log(rng.dirichlet(numpy.ones(len(names)) * 0.3, size=n) + 1e-12)
        starts = [i == 0 or bool(rng.random() < 0.2) for i in range(n)]
        tags = [names[i] for i in viterbi_decode(log_probs, allowed, allowed_first, starts)]
        assert _is_valid_bio(tags, starts), tags


def test_viterbi_finds_the_best_valid_sequence():
    """Against brute force over every tag sequence: the highest-scoring valid one."""
    import itertools

    names = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    allowed, allowed_first = transition_masks(tuple(names))
    rng = numpy.random.default_rng(1)
    for _ in range(60):
        n = int(rng.integers(1, 6))
        log_probs = numpy.log(rng.dirichlet(numpy.ones(len(names)) * 0.5, size=n))
        starts = [i == 0 or bool(rng.random() < 0.3) for i in range(n)]
        valid = [
            seq
            for seq in itertools.product(range(len(names)), repeat=n)
            if _is_valid_bio([names[i] for i in seq], starts)
        ]
        best = max(valid, key=lambda seq: sum(log_probs[i, t] for i, t in enumerate(seq)))
        assert viterbi_decode(log_probs, allowed, allowed_first, starts) == list(best)


def test_batched_decoding_equals_one_doc_at_a_time():
    """The component decodes a batch in one pass (sequences of different lengths,
    empty ones included); each doc gets what it gets alone."""
    names = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    allowed, allowed_first = transition_masks(tuple(names))
    rng = numpy.random.default_rng(2)
    for _ in range(100):
        lengths = rng.integers(0, 25, size=int(rng.integers(1, 7)))
        probs = [rng.dirichlet(numpy.ones(len(names)) * 0.3, size=int(n)) for n in lengths]
        starts = [[i == 0 or bool(rng.random() < 0.2) for i in range(int(n))] for n in lengths]
        log_probs = [numpy.log(p + 1e-12) for p in probs]
        assert viterbi_decode_batch(log_probs, allowed, allowed_first, starts) == [
            viterbi_decode(lp, allowed, allowed_first, st) for lp, st in zip(log_probs, starts)
        ]
        assert decode_batch(probs, names, starts) == [decode(p, names, st) for p, st in zip(probs, starts)]


def test_viterbi_repairs_an_orphan_inside_tag():
    names = ["O", "B-LOC", "I-LOC"]
    allowed, allowed_first = transition_masks(tuple(names))
    # Token-wise argmax would give O I-LOC: invalid.
    probs = numpy.array([[0.9, 0.05, 0.05], [0.1, 0.4, 0.5]])
    assert viterbi_decode(numpy.log(probs), allowed, allowed_first, [True, False]) == [0, 1]
    assert viterbi_decode(numpy.zeros((0, 3)), allowed, allowed_first, []) == []


def test_loss_ignores_tokens_without_gold_annotation(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("ner")
    reference = Doc(nlp.vocab, words=["Anna", "lives", "here"], ents=["B-PER", "O", None])
    example = Example(nlp.make_doc("Anna lives here"), reference)
    scores = [numpy.full((3, len(ner.tag_names)), 1 / len(ner.tag_names), dtype="f")]
    loss, d_scores = ner.get_loss([example], scores)
    assert loss > 0
    assert numpy.abs(d_scores[0][2]).sum() == 0
    assert numpy.abs(d_scores[0][0]).sum() > 0


def test_labels_can_be_given_at_initialize(tiny_bert):
    """As `spacy init labels` writes them into [initialize.components]."""
    nlp = build_nlp(tiny_bert)
    nlp.config["initialize"]["components"]["ner"] = {"labels": ["ANIMAL", "PER"]}
    nlp.initialize(lambda: make_examples(nlp, n_docs=3))
    ner = nlp.get_pipe("ner")
    assert ner.labels == ("ANIMAL", "PER")
    with pytest.raises(ValueError, match="already initialized"):
        ner.add_label("LOC")


def test_confidence_is_the_lowest_probability_of_the_decoded_tags():
    names = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    probs = numpy.array(
        [
            [0.10, 0.70, 0.10, 0.05, 0.05],  # B-LOC 0.70
            [0.20, 0.05, 0.60, 0.10, 0.05],  # I-LOC 0.60
            [0.90, 0.02, 0.03, 0.03, 0.02],  # O
            [0.10, 0.10, 0.10, 0.65, 0.05],  # B-PER 0.65
        ]
    )
    ents = decode(probs, names, [True, False, False, False])
    assert [(e.start, e.end, e.label) for e in ents] == [(0, 2, "LOC"), (3, 4, "PER")]
    assert [e.confidence for e in ents] == pytest.approx([0.60, 0.65])
    # Viterbi turns the orphan I-LOC (0.5) into B-LOC: the confidence is that tag's 0.4, not the argmax.
    repaired = decode(numpy.array([[0.9, 0.05, 0.05], [0.1, 0.4, 0.5]]), names[:3], [True, False])
    assert repaired == [Entity(1, 2, "LOC", pytest.approx(0.4))]


def test_span_probability_is_the_share_of_valid_paths_that_tag_exactly_that_span():
    """Against brute force over every valid tag sequence (with and without learned
    transitions, sentence starts anywhere), for the decoded entities and others."""
    import itertools

    names = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    rng = numpy.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(1, 6))
        probs = rng.dirichlet(numpy.ones(len(names)) * 0.5, size=n)
        starts = [i == 0 or bool(rng.random() < 0.3) for i in range(n)]
        transitions = rng.normal(size=(len(names), len(names))) if trial % 2 else None
        entities = decode(probs, names, starts, transitions) + [Entity(0, 1, "PER", 0.0), Entity(0, n, "LOC", 0.0)]
        weights, exact = 0.0, numpy.zeros(len(entities))
        for seq in itertools.product(range(len(names)), repeat=n):
            tags = [names[t] for t in seq]
            if not _is_valid_bio(tags, starts):
                continue
            weight = numpy.prod(probs[numpy.arange(n), seq])
            if transitions is not None:
                weight *= numpy.exp(sum(transitions[seq[i - 1], seq[i]] for i in range(1, n) if not starts[i]))
            weights += weight
            for j, ent in enumerate(entities):
                inside = tags[ent.start + 1 : ent.end] == [f"I-{ent.label}"] * (ent.end - ent.start - 1)
                ends = ent.end == n or tags[ent.end] != f"I-{ent.label}"
                exact[j] += weight * (tags[ent.start] == f"B-{ent.label}" and inside and ends)
        got = span_probabilities([probs], names, [starts], [entities], transitions)[0]
        assert got == pytest.approx(list(exact / weights), abs=1e-9)


def test_span_probabilities_of_a_batch_equal_one_doc_at_a_time():
    names = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    rng = numpy.random.default_rng(4)
    lengths = [3, 0, 17, 1, 9]
    probs = [rng.dirichlet(numpy.ones(len(names)) * 0.3, size=n) for n in lengths]
    starts = [[i == 0 or bool(rng.random() < 0.2) for i in range(n)] for n in lengths]
    entities = decode_batch(probs, names, starts)
    alone = [span_probabilities([p], names, [st], [e])[0] for p, st, e in zip(probs, starts, entities)]
    assert span_probabilities(probs, names, starts, entities) == alone
    assert span_probabilities([], names, [], []) == []


def test_set_annotations_sets_entities_and_confidences_from_fixed_scores(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("ner")
    doc = nlp.make_doc("Anna Berg lives in Oslo")
    probs = numpy.full((5, len(ner.tag_names)), 0.01, dtype="f")
    for i, tag in enumerate(["B-PER", "I-PER", "O", "O", "B-LOC"]):
        probs[i, ner.tag_names.index(tag)] = 0.9 - 0.1 * i
    ner.set_annotations([doc], [probs])
    assert [(e.text, e.label_) for e in doc.ents] == [("Anna Berg", "PER"), ("Oslo", "LOC")]
    assert [e._.confidence for e in doc.ents] == pytest.approx([0.8, 0.5])


def test_concat_per_doc_with_a_real_listener_that_is_not_the_last(tiny_bert, monkeypatch):
    """With `ner` before `tagger`, the pos_ner listener is the transformer's first
    listener: its backprop returns None (spacy-transformers accumulates the gradient
    for the last listener to send), and concat_per_doc must still train."""
    config = load_config(ROOT / "configs" / "pos_ner.cfg", interpolate=True)
    config["components"]["transformer"]["model"]["name"] = str(tiny_bert)
    config["nlp"]["pipeline"] = ["transformer", "ner", "tagger"]
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    listeners = nlp.get_pipe("transformer").listeners
    assert any(node is listeners[0] for node in nlp.get_pipe("ner").model.walk())
    assert len(listeners) == 2
    seen = []
    original = TransformerListener.backprop_and_clear

    def spy(self, d_outputs):
        result = original(self, d_outputs)
        if self is listeners[0]:
            seen.append((result, sum(float(abs(t).sum()) for d in d_outputs for t in d.tensors)))
        return result

    monkeypatch.setattr(TransformerListener, "backprop_and_clear", spy)
    history = train(nlp, make_examples(nlp, n_docs=6), steps=8, annotates=[])
    assert seen and all(result is None for result, _ in seen), "the first listener's backprop returns None"
    assert all(gradient > 0 for _, gradient in seen), "ner's gradient reaches the transformer"
    assert history[-1] < history[0]


DEFINITIONS = ["compare", "screen", "presets", "cnn_screen"]


def _compare_systems():
    return [
        (f"{definition}:{name}", system)
        for definition in DEFINITIONS
        for name, system in srsly.read_yaml(ROOT / "configs" / f"{definition}.yml")["systems"].items()
        if "config" in system
    ]


@pytest.mark.parametrize(("name", "system"), _compare_systems(), ids=[name for name, _ in _compare_systems()])
def test_every_compared_config_trains_on_the_tiny_model(tiny_bert, name, system):
    """Each spaCy system of the comparison definitions (compare.yml, screen.yml,
    presets.yml: SHAPE and case features, no_pos, the CNN preset, spaCy's
    built-in ner, ...) builds and learns in a few steps."""
    config = load_config(ROOT / system["config"], interpolate=True)
    if "transformer" in config["components"]:
        config["components"]["transformer"]["model"]["name"] = str(tiny_bert)
    for path, value in system.get("overrides", {}).items():
        *sections, key = path.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[key] = value
    # Seeded: the transition-based ner's loss can spike at a single step, and unseeded its
    # trajectory depended on which tests ran before (CI once saw 103 → 166 at step 12).
    spacy.util.fix_random_seed(0)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    if config["paths"].get("vectors"):
        # the system's table is built outside the repo (scripts/static_vectors.py):
        # a small random one for the toy corpus' words stands in for it
        from spacy.vectors import Vectors

        words = sorted(corpus_words())
        data = numpy.random.default_rng(0).normal(size=(len(words), 8)).astype("float32")
        nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=words)
    annotates = config["training"]["annotating_components"]
    history = train(nlp, make_examples(nlp, n_docs=8), steps=12, annotates=annotates)
    assert min(history[-3:]) < 0.8 * history[0]
    doc = nlp("Lena lives in Cairo .")
    assert doc.has_annotation("ENT_IOB") and doc.has_annotation("TAG")


UNPICKLE = """
import json, pickle, sys
nlp = pickle.loads(sys.stdin.buffer.read())
docs = nlp.pipe(json.loads(sys.argv[1]))
print(json.dumps([[[e.start, e.end, e.label_, round(e._.confidence, 5)] for e in d.ents] for d in docs]))
"""


@pytest.mark.parametrize("origin", ["loaded", "trained here"])
def test_pickled_pipeline_predicts_the_same_in_a_fresh_interpreter(origin, tiny_pipeline, tiny_pipeline_dir):
    """What Dask, Spark or multiprocessing with `spawn` do to a pipeline: the
    class is importable from the package, the confidence extension is there
    after unpickling, and a pipeline trained in this process pickles with its
    optimizer (thinc's generator schedules would not: pos_ner.schedules)."""
    import json
    import pickle
    import subprocess
    import sys

    nlp = spacy.load(tiny_pipeline_dir) if origin == "loaded" else tiny_pipeline[0]
    if origin != "loaded":
        assert nlp._optimizer is not None and "learn_rate" in nlp._optimizer.schedules
    result = subprocess.run(
        [sys.executable, "-c", UNPICKLE, json.dumps(TEXTS)], input=pickle.dumps(nlp), capture_output=True
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    expected = [[list(ent) for ent in doc] for doc in _predictions(nlp, TEXTS)]
    assert json.loads(result.stdout) == expected
    assert any(expected)


N_PROCESS = """
import json, multiprocessing, sys, spacy
multiprocessing.set_start_method(sys.argv[3])
nlp = spacy.load(sys.argv[1])
texts = json.loads(sys.argv[2]) * 20
one, two = ([[[e.start, e.end, e.label_] for e in d.ents] for d in nlp.pipe(texts, n_process=n)] for n in (1, 2))
print(json.dumps({"same": one == two, "n": len(two), "found": sum(map(len, one))}))
"""


@pytest.mark.parametrize("start_method", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_pipe_with_two_processes_gives_the_same_entities(tiny_pipeline_dir, start_method):
    """spaCy's documented way to use more cores: forked workers used to wait forever
    on torch's thread pool (the timeout turns a hang into a failure); spawned ones
    need the pipeline to pickle (the component's class importable)."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-c", N_PROCESS, str(tiny_pipeline_dir), json.dumps(TEXTS), start_method]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"same": True, "n": 20 * len(TEXTS), "found": out["found"]} and out["found"] > 0
