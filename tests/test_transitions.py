"""Learned transition scores (`transitions = true`): the CRF loss against brute
force and finite differences, the decoder against brute force, and the component
trained, saved, loaded and exported with them."""

import itertools

import numpy
import pytest
import spacy

from pos_ner.decoding import lattice, tag_names, transition_masks, viterbi_decode
from pos_ner.layers.transitions import crf_loss

from conftest import build_nlp, make_examples, train

NAMES = tag_names(["X", "Y"])  # O, B-X, I-X, B-Y, I-Y


def _path_score(path, scores, starts, within, first):
    total = first[path[0]] + scores[0, path[0]]
    for t in range(1, len(path)):
        step = first[path[t]] if starts[t] else within[path[t - 1], path[t]]
        total += step + scores[t, path[t]]
    return total


def _brute_force_nll(scores, gold, starts, transitions):
    within, first = lattice(tuple(NAMES), transitions)
    paths = list(itertools.product(range(len(NAMES)), repeat=len(scores)))
    every = numpy.array([_path_score(p, scores, starts, within, first) for p in paths])
    fits = [all(g is None or g == tag for g, tag in zip(gold, p)) for p in paths]
    log_z = numpy.logaddexp.reduce(every)
    log_gold = numpy.logaddexp.reduce(every[numpy.array(fits)])
    return log_z - log_gold


def _problem(seed, length=4):
    rng = numpy.random.default_rng(seed)
    logits = rng.normal(size=(length, len(NAMES)))
    log_probs = logits - numpy.logaddexp.reduce(logits, axis=1, keepdims=True)
    transitions = rng.normal(size=(len(NAMES), len(NAMES)))
    return logits, log_probs, transitions


# gold ids over NAMES; None: no gold tag; starts: sentence starts after token 0
CASES = [
    ([1, 2, 0, 3], [True, False, False, False]),
    ([0, None, 2, 0], [True, False, False, False]),
    ([3, 4, 1, 0], [True, False, True, False]),
    ([None, None, None, None], [True, False, False, True]),
]


@pytest.mark.parametrize(("gold", "starts"), CASES)
def test_crf_loss_is_the_negative_log_likelihood_over_every_valid_path(gold, starts):
    _, log_probs, transitions = _problem(0)
    loss, _, _ = crf_loss([log_probs], [gold], [starts], NAMES, transitions)
    assert loss == pytest.approx(_brute_force_nll(log_probs, gold, starts, transitions), rel=1e-9, abs=1e-9)
    if all(g is None for g in gold):
        assert loss == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("gold", "starts"), CASES[:3])
def test_crf_gradients_match_finite_differences(gold, starts):
    """With respect to the softmax's inputs (what thinc's Softmax backprop
    takes) and to the transition scores."""
    logits, _, transitions = _problem(1)

    def loss_of(z, w):
        log_probs = z - numpy.logaddexp.reduce(z, axis=1, keepdims=True)
        return crf_loss([log_probs], [gold], [starts], NAMES, w)[0]

    log_probs = logits - numpy.logaddexp.reduce(logits, axis=1, keepdims=True)
    _, (d_logits,), d_transitions = crf_loss([log_probs], [gold], [starts], NAMES, transitions)
    numpy.testing.assert_allclose(d_logits, _numeric_gradient(lambda z: loss_of(z, transitions), logits), atol=1e-5)
    numeric = _numeric_gradient(lambda w: loss_of(logits, w), transitions)
    numpy.testing.assert_allclose(d_transitions, numeric, atol=1e-5)
    allowed, _ = transition_masks(tuple(NAMES))
    assert not d_transitions[~allowed].any()


def _numeric_gradient(f, x, eps=1e-6):
    """Central differences of the scalar f at x, one entry at a time."""
    gradient = numpy.zeros_like(x)
    for index in numpy.ndindex(*x.shape):
        bumped, lowered = x.copy(), x.copy()
        bumped[index] += eps
        lowered[index] -= eps
        gradient[index] = (f(bumped) - f(lowered)) / (2 * eps)
    return gradient


def test_crf_loss_on_several_docs_sums_them_and_skips_empty_ones():
    _, a, transitions = _problem(2, length=4)
    _, b, _ = _problem(3, length=3)
    (gold_a, starts_a), (gold_b, starts_b) = CASES[0], ([0, 3, 4], [True, False, False])
    total, d_scores, d_w = crf_loss(
        [a, numpy.zeros((0, len(NAMES))), b], [gold_a, [], gold_b], [starts_a, [], starts_b], NAMES, transitions
    )
    one = crf_loss([a], [gold_a], [starts_a], NAMES, transitions)
    two = crf_loss([b], [gold_b], [starts_b], NAMES, transitions)
    assert total == pytest.approx(one[0] + two[0])
    assert [d.shape for d in d_scores] == [(4, 5), (0, 5), (3, 5)]
    numpy.testing.assert_allclose(d_w, one[2] + two[2])


def test_a_gold_path_the_lattice_rules_out_falls_back_to_cross_entropy():
    """An I-X right after O cannot be decoded: its doc gets the softmax's
    cross-entropy gradient, and the loss stays finite."""
    logits, log_probs, transitions = _problem(4)
    gold, starts = [0, 2, 2, 0], [True, False, False, False]
    loss, (d_scores,), d_w = crf_loss([log_probs], [gold], [starts], NAMES, transitions)
    truth = numpy.eye(len(NAMES))[gold]
    numpy.testing.assert_allclose(d_scores, numpy.exp(log_probs) - truth, atol=1e-12)
    assert loss == pytest.approx(-log_probs[numpy.arange(4), gold].sum())
    assert numpy.isfinite(loss) and not d_w.any()


def test_viterbi_with_transitions_finds_the_best_path_by_brute_force():
    allowed, allowed_first = transition_masks(tuple(NAMES))
    for seed in range(20):
        _, log_probs, transitions = _problem(seed, length=5)
        starts = [True, False, seed % 2 == 0, False, False]
        within, first = lattice(tuple(NAMES), transitions)
        paths = itertools.product(range(len(NAMES)), repeat=5)
        best = max(paths, key=lambda p: _path_score(p, log_probs, starts, within, first))
        assert viterbi_decode(log_probs, allowed, allowed_first, starts, transitions) == list(best)


def test_transitions_change_the_decoded_path():
    """Strong scores against O → B-X pull the path elsewhere; zeros leave it
    as without transitions."""
    allowed, allowed_first = transition_masks(tuple(NAMES))
    log_probs = numpy.log(numpy.array([[0.8, 0.05, 0.05, 0.05, 0.05], [0.1, 0.6, 0.1, 0.1, 0.1]]))
    starts = [True, False]
    plain = viterbi_decode(log_probs, allowed, allowed_first, starts)
    assert plain == [0, 1]
    zeros = numpy.zeros((5, 5))
    assert viterbi_decode(log_probs, allowed, allowed_first, starts, zeros) == plain
    against = zeros.copy()
    against[0, 1] = -10.0
    assert viterbi_decode(log_probs, allowed, allowed_first, starts, against) != plain


@pytest.fixture(scope="module")
def crf_pipeline(tiny_bert):
    nlp = build_nlp(tiny_bert, transitions=True)
    history = train(nlp, make_examples(nlp), steps=25)
    return nlp, history


def test_the_component_trains_its_transitions(crf_pipeline, tiny_bert):
    nlp, history = crf_pipeline
    ner = nlp.get_pipe("ner")
    assert history[-1] < 0.5 * history[0]
    steps = ner.transitions
    assert steps is not None and steps.shape == (len(ner.tag_names),) * 2
    assert numpy.abs(steps).max() > 1e-3, "the CRF loss sends its gradient to the transition scores"
    assert build_nlp(tiny_bert).get_pipe("ner").transitions is None
    docs = list(nlp.pipe(["Anna Berg lives in New York .", "", "Globex opened an office in Lima ."]))
    assert docs[1].ents == () and any(doc.ents for doc in docs)
    assert all(0.0 <= ent._.confidence <= 1.0 for doc in docs for ent in doc.ents)


def test_decoding_uses_the_learned_transitions(crf_pipeline):
    """The component's entities are those of the Viterbi path with its
    transitions; with them forced strongly against every B- after O they change."""
    nlp, _ = crf_pipeline
    ner = nlp.get_pipe("ner")
    text = "Anna Berg met Omar Haddad in Paris ."
    doc = nlp(text)
    assert doc.ents
    steps = ner.model.get_ref("transitions")
    saved = steps.get_param("W").copy()
    try:
        forced = saved.copy()
        forced[0, [i for i, name in enumerate(ner.tag_names) if name.startswith("B-")]] = -1e4
        steps.set_param("W", forced)
        changed = nlp(text)
    finally:
        steps.set_param("W", saved)
    assert [(e.start, e.end, e.label_) for e in changed.ents] != [(e.start, e.end, e.label_) for e in doc.ents]


def test_a_pipeline_with_transitions_round_trips(crf_pipeline, tmp_path, tiny_bert):
    nlp, _ = crf_pipeline
    texts = ["Anna Berg lives in Paris .", "Mia Cole met Omar Haddad .", "United Bank opened an office in Oslo ."]

    def predictions(pipeline):
        return [[(e.start, e.end, e.label_, round(e._.confidence, 5)) for e in d.ents] for d in pipeline.pipe(texts)]

    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    numpy.testing.assert_array_equal(loaded.get_pipe("ner").transitions, nlp.get_pipe("ner").transitions)
    assert predictions(loaded) == predictions(nlp)
    fresh = build_nlp(tiny_bert, transitions=True)
    fresh.from_bytes(nlp.to_bytes())
    assert predictions(fresh) == predictions(nlp)


def test_the_onnx_export_carries_the_transitions(crf_pipeline, tmp_path):
    pytest.importorskip("onnxruntime")
    from pos_ner.onnx.export import export
    from pos_ner.onnx.runtime import OnnxNer

    nlp, _ = crf_pipeline
    meta = export(nlp, tmp_path / "onnx")
    numpy.testing.assert_allclose(meta["ner_transitions"], nlp.get_pipe("ner").transitions, rtol=1e-6)
    onnx_ner = OnnxNer(tmp_path / "onnx")
    texts = ["Anna Berg met Omar Haddad in Paris .", "Globex opened an office in Lima ."]
    for ours, theirs in zip(onnx_ner.pipe(texts), nlp.pipe(texts)):
        assert [(e.start, e.end, e.label_) for e in ours.ents] == [(e.start, e.end, e.label_) for e in theirs.ents]


def test_transition_rate_makes_the_scores_move_faster(tiny_bert):
    """Adam steps each weight by about the learning rate: the scores, stored
    divided by `transition_rate`, move about that many times further."""
    moved = {}
    for rate in (1.0, 50.0):
        nlp = build_nlp(tiny_bert, transitions=True, transition_rate=rate)
        train(nlp, make_examples(nlp, n_docs=6), steps=2)
        moved[rate] = numpy.abs(nlp.get_pipe("ner").transitions).max()
    assert moved[1.0] > 0
    assert moved[50.0] > 10 * moved[1.0]
    with pytest.raises(ValueError, match="transition_rate"):
        build_nlp(tiny_bert, transitions=True, transition_rate=0.0)
