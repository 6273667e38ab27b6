"""`pos_ner.Adam.v1`: thinc's Adam with the layers on top of the encoder at
`head_rate` times the learning rate."""

import numpy
import pytest
from spacy.util import registry
from thinc.api import Adam

from pos_ner.optimizers import HeadRateOptimizer, is_head_key

from conftest import ANNOTATING, build_nlp, make_examples


def _step(optimizer, key):
    weights = numpy.ones(4, dtype="float32")
    gradient = numpy.array([0.5, -0.5, 0.25, -1.0], dtype="float32")
    new, _ = optimizer(key, weights.copy(), gradient.copy())
    return new - weights


def test_head_weights_step_head_rate_times_further():
    optimizer = registry.resolve({"o": {"@optimizers": "pos_ner.Adam.v1", "learn_rate": 0.001, "head_rate": 10.0}})["o"]
    assert isinstance(optimizer, HeadRateOptimizer)
    head = _step(optimizer, (1, "W"))
    encoder = _step(optimizer, (1, "encoder.layer.0.attention.self.query.weight"))
    numpy.testing.assert_allclose(head, 10 * encoder, rtol=1e-4)


def test_head_rate_one_is_thincs_adam():
    ours = registry.resolve({"o": {"@optimizers": "pos_ner.Adam.v1", "learn_rate": 0.001, "L2": 0.01}})["o"]
    theirs = Adam(0.001, L2=0.01, L2_is_weight_decay=True, grad_clip=1.0, use_averages=True)
    for key in ((1, "W"), (2, "embeddings.word_embeddings.weight")):
        numpy.testing.assert_array_equal(_step(ours, key), _step(theirs, key))
    with pytest.raises(ValueError, match="head_rate"):
        HeadRateOptimizer(0.001, head_rate=0.0)


def test_keys_in_training_are_told_apart_right(tiny_bert):
    """Every key the optimizer sees in a real update is either a thinc node's
    parameter (a head) or one of the transformer's PyTorch parameters (not)."""
    nlp = build_nlp(tiny_bert)
    examples = make_examples(nlp, n_docs=4)
    nlp.initialize(lambda: examples)
    seen = []

    class Recording(HeadRateOptimizer):
        def __call__(self, key, weights, gradient, *, lr_scale=1.0):
            seen.append(key)
            return super().__call__(key, weights, gradient, lr_scale=lr_scale)

    optimizer = Recording(0.001, head_rate=10.0)
    for _ in range(2):  # spacy-transformers updates the encoder from the second update on
        nlp.update(examples, sgd=optimizer, annotates=ANNOTATING)
    torch_names = {name for name, _ in nlp.get_pipe("transformer").model.transformer.named_parameters()}
    thinc_keys = {
        (node.id, name)
        for pipe in ("tagger", "ner")
        for node in nlp.get_pipe(pipe).model.walk()
        for name in node.param_names
    }
    heads = [key for key in seen if is_head_key(key)]
    encoder = [key for key in seen if not is_head_key(key)]
    assert heads and encoder
    assert set(heads) <= thinc_keys
    # every PyTorch parameter with a gradient (the unused pooler has none)
    assert {name for _, name in encoder} == {name for name in torch_names if not name.startswith("pooler.")}
