"""Prediction in groups of windows of similar length (pos_ner.layers.length_groups):
less padding, the same output."""

import numpy
import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.util import load_config, load_model_from_config

from pos_ner.layers.length_groups import length_groups

from conftest import ROOT, make_docs, make_examples

# Documents of very different lengths, so that the windows of one batch differ in length.
TEXTS = [" ".join(doc.text for doc in make_docs(n, seed=n)) for n in (1, 2, 5, 9)] + ["Anna Berg lives in Paris .", ""]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(lengths=st.lists(st.integers(1, 300), max_size=80), budget=st.integers(1, 2000))
def test_groups_partition_the_windows_longest_first_within_the_budget(lengths, budget):
    groups = length_groups(lengths, budget)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    flat = [lengths[i] for group in groups for i in group]
    assert flat == sorted(lengths, reverse=True)
    for group in groups:
        padded = max(lengths[i] for i in group) * len(group)
        assert padded <= budget or len(group) == 1


def _encoder_calls(nlp):
    """(rows, width) of every call of the encoder's torch module, recorded from now on."""
    calls = []
    module = nlp.get_pipe("transformer").model.transformer
    module.register_forward_pre_hook(
        lambda _, args, kwargs: calls.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    return calls


def _load(path, max_group_wordpieces):
    return spacy.load(path, config={"components.transformer.model.max_group_wordpieces": max_group_wordpieces})


@pytest.fixture(scope="module")
def predicted(tiny_pipeline_dir):
    """(calls, docs) for one padded batch (0) and for small groups (48 wordpieces)."""
    out = {}
    for budget in (0, 48):
        nlp = _load(tiny_pipeline_dir, budget)
        calls = _encoder_calls(nlp)
        out[budget] = (calls, list(nlp.pipe(TEXTS, batch_size=len(TEXTS))))
    return out


def test_grouped_prediction_computes_fewer_padded_positions(predicted):
    (single, _), (grouped, _) = predicted[0], predicted[48]
    assert len(single) == 1 and len(grouped) > 1
    assert sum(rows for rows, _ in grouped) == single[0][0]  # every window once
    assert sum(rows * width for rows, width in grouped) < single[0][0] * single[0][1]
    assert len({width for _, width in grouped}) > 1  # each group padded to its own longest


def test_grouped_prediction_gives_the_same_output(predicted):
    (_, docs), (_, grouped_docs) = predicted[0], predicted[48]
    for doc, grouped in zip(docs, grouped_docs):
        assert [(e.start, e.end, e.label_) for e in doc.ents] == [(e.start, e.end, e.label_) for e in grouped.ents]
        assert [t.tag_ for t in doc] == [t.tag_ for t in grouped]
        assert numpy.allclose([e._.confidence for e in doc.ents], [e._.confidence for e in grouped.ents], atol=1e-5)
        if len(doc):
            ours, theirs = doc._.trf_data, grouped._.trf_data
            real = numpy.asarray(ours.wordpieces.attention_mask).astype(bool)
            assert numpy.array_equal(real, numpy.asarray(theirs.wordpieces.attention_mask).astype(bool))
            mine, other = (numpy.asarray(d.model_output.last_hidden_state) for d in (ours, theirs))
            assert numpy.allclose(mine[real], other[real], atol=1e-5)


def test_training_keeps_one_padded_batch(tiny_bert):
    config = load_config(ROOT / "configs" / "pos_ner.cfg", interpolate=True)
    config["components"]["transformer"]["model"].update(name=str(tiny_bert), max_group_wordpieces=8)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    examples = make_examples(nlp, n_docs=6)
    optimizer = nlp.initialize(lambda: examples)
    calls = _encoder_calls(nlp)
    nlp.update(examples, sgd=optimizer)
    assert len(calls) == 1
    list(nlp.pipe(["Anna Berg lives in Paris . " * 5, "Tom Reed ."]))
    assert len(calls) > 2  # prediction, with the same setting, runs in groups


def test_off_by_default_in_the_shipped_configs():
    for name in ("pos_ner.cfg", "baseline_ner.cfg"):
        config = load_config(ROOT / "configs" / name)
        assert config["components"]["transformer"]["model"]["max_group_wordpieces"] == 0


def test_extra_encoder_outputs_fall_back_to_one_batch():
    """Hidden states or attentions asked for in transformer_config: one padded batch, as before."""
    torch = pytest.importorskip("torch")
    from spacy_transformers.data_classes import WordpieceBatch
    from transformers.modeling_outputs import BaseModelOutput

    from pos_ner.layers.length_groups import GroupedByLength

    calls = []

    def forward(model, wordpieces, is_train):
        calls.append(wordpieces.input_ids.shape)
        n, width = wordpieces.input_ids.shape
        hidden = torch.ones((n, width, 4))
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=(hidden, hidden)), None

    lengths = [7, 3, 2]
    mask = numpy.array([[i < n for i in range(7)] for n in lengths])
    batch = WordpieceBatch(
        strings=[["x"] * n for n in lengths],
        input_ids=numpy.zeros((3, 7), dtype="i"),
        attention_mask=mask,
        lengths=lengths,
        token_type_ids=None,
    )
    output, _ = GroupedByLength(forward, 8)(None, batch, False)
    assert calls[-1] == (3, 7) and "hidden_states" in output
    calls.clear()
    GroupedByLength(forward, 0)(None, batch, False)
    assert calls == [(3, 7)]
