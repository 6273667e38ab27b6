"""Encoder windows bounded in wordpieces: every token gets a vector, however
many wordpieces one token splits into."""

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc
from spacy.util import load_config, load_model_from_config
from transformers import AutoTokenizer

from pos_ner.windows import window_bounds, wordpiece_counts

from conftest import ROOT, build_nlp, make_examples

LONG_TOKEN_TEXT = "Anna Berg lives in Paris . Revenue " + "." * 2000 + " 2007 , Tom Reed works for Acme Corp ."


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    lengths=st.lists(st.one_of(st.integers(0, 3), st.integers(0, 400)), max_size=200),
    window=st.integers(1, 200),
    stride_share=st.floats(0.01, 1.0),
)
def test_windows_cover_every_token_within_the_budget(lengths, window, stride_share):
    stride = max(1, int(window * stride_share))
    windows = window_bounds(lengths, window, stride)
    if not lengths:
        assert windows == []
        return
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    for (start, end), (next_start, next_end) in zip(windows, windows[1:]):
        assert start < next_start <= end < next_end  # progress, no gap, no window inside another
    for start, end in windows:
        # Within the budget, unless a single token is longer than the window by itself.
        assert sum(lengths[start:end]) <= window or end - start == 1
        # As long as the budget allows: the next token would not have fitted.
        if end < len(lengths):
            assert sum(lengths[start : end + 1]) > window


@pytest.fixture(scope="module")
def nlp(tiny_pipeline):
    return tiny_pipeline[0]


def test_a_token_of_thousands_of_wordpieces_keeps_every_token_aligned(nlp):
    """Before: the window of 128 spaCy tokens held ~2,000 wordpieces and the tiny
    encoder (256 positions) raised; a 512-position encoder silently gave every
    token after the dots a zero vector."""
    doc = nlp(LONG_TOKEN_TEXT)
    long_token = next(token for token in doc if len(token) == 2000)
    trf = doc._.trf_data
    align = trf.align
    assert all(align[token.i].data.size > 0 for token in doc), "a token got no wordpieces"
    # The long token has a window to itself, cut to the encoder's 256 positions.
    assert trf.wordpieces.input_ids.shape[1] <= 256
    windows = nlp.get_pipe("transformer").model.attrs["get_spans"]([doc])[0]
    assert [(span.start, span.end) for span in windows].count((long_token.i, long_token.i + 1)) == 1
    tensor = trf.tensors[0].reshape(-1, trf.tensors[0].shape[-1])
    after = [token for token in doc if token.i > long_token.i]
    assert all(numpy.abs(tensor[align[token.i].data.ravel()]).sum() > 0 for token in after)


def test_windows_hold_at_most_window_wordpieces(nlp):
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    # Words the tiny vocab splits into several pieces: windows must hold fewer tokens.
    doc = nlp(" ".join(["supercalifragilistic", "Paris", "."] * 200))
    counts = wordpiece_counts(tokenizer, doc)
    spans = nlp.get_pipe("transformer").model.attrs["get_spans"]([doc])[0]
    assert len(spans) > 1
    for span in spans:
        assert sum(counts[span.start : span.end]) <= 160
    assert spans[0].end < 160, "windows still count spaCy tokens"
    lengths = doc._.trf_data.wordpieces.lengths
    assert max(lengths) <= 160 + tokenizer.num_special_tokens_to_add()


def test_counts_are_the_tokenizers_own(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    nlp_doc = Doc(build_nlp(tiny_bert).vocab, words=["Paris", "zzzz", "...", " "], spaces=[True, True, False, False])
    assert wordpiece_counts(tokenizer, nlp_doc) == [
        len(tokenizer(token.text, add_special_tokens=False)["input_ids"]) for token in nlp_doc
    ]
    assert wordpiece_counts(tokenizer, nlp_doc)[-1] == 0  # whitespace has no wordpieces


def test_empty_docs(nlp):
    docs = list(nlp.pipe(["", "Anna Berg lives in Paris .", ""]))
    assert [len(doc.ents) for doc in (docs[0], docs[2])] == [0, 0]
    assert docs[1].ents


def test_span_getter_without_the_architecture_says_what_to_use(tiny_bert):
    config = load_config(ROOT / "configs" / "pos_ner.cfg", interpolate=True)
    config["components"]["transformer"]["model"]["@architectures"] = "spacy-transformers.TransformerModel.v3"
    del config["components"]["transformer"]["model"]["max_group_wordpieces"]  # ours only
    config["components"]["transformer"]["model"]["name"] = str(tiny_bert)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    with pytest.raises(ValueError, match="pos_ner.TransformerModel.v1"):
        nlp.initialize(lambda: make_examples(nlp))


def test_configs_use_the_wordpiece_windows():
    for name in ("pos_ner", "baseline_ner"):
        model = load_config(ROOT / "configs" / f"{name}.cfg")["components"]["transformer"]["model"]
        assert model["@architectures"] == "pos_ner.TransformerModel.v1"
        assert model["get_spans"]["@span_getters"] == "pos_ner.wordpiece_windows.v1"
