"""Encoder windows bounded in wordpieces: every token gets a vector, however
many wordpieces one token splits into."""

import logging
import random
from bisect import bisect_right
from contextlib import contextmanager
from itertools import accumulate

import numpy
import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc
from spacy.util import load_config, load_model_from_config
from transformers import AutoTokenizer

from pos_ner.windows import (
    WordpieceCounter,
    doc_windows,
    sentence_window_bounds,
    sentences_of,
    window_bounds,
    wordpiece_counts,
    wordpiece_lengths,
)

from conftest import ROOT, build_nlp, make_doc, make_examples

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


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    sentences=st.lists(
        st.lists(st.one_of(st.integers(0, 3), st.integers(0, 60)), min_size=1, max_size=30), max_size=20
    ),
    window=st.integers(1, 120),
    stride_share=st.floats(0.01, 1.0),
)
def test_sentence_windows_cover_every_token_and_cut_only_sentences_too_long(sentences, window, stride_share):
    stride = max(1, int(window * stride_share))
    lengths = [length for sentence in sentences for length in sentence]
    starts = list(accumulate([0, *map(len, sentences)]))
    windows = sentence_window_bounds(lengths, list(zip(starts, starts[1:])), window, stride)
    if not lengths:
        assert windows == []
        return
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    for (start, end), (next_start, next_end) in zip(windows, windows[1:]):
        assert start < next_start <= end < next_end
    for start, end in windows:
        assert sum(lengths[start:end]) <= window or end - start == 1
        if start in starts and end in starts:
            continue  # whole sentences
        # Cut inside a sentence: only one longer than the window, and the window lies within it.
        i = bisect_right(starts, start) - 1
        assert starts[i] <= start < end <= starts[i + 1]
        assert sum(lengths[starts[i] : starts[i + 1]]) > window


def test_sentences_are_the_docs_own_or_else_the_sentencizers():
    nlp = spacy.blank("en")
    doc = nlp("Anna lives in Paris. She works for Globex! Really? Yes")
    assert sentences_of(doc) == [(0, 5), (5, 10), (10, 12), (12, 13)]
    assert not doc.has_annotation("SENT_START")  # found, not set
    words = [token.text for token in doc]
    own = Doc(nlp.vocab, words=words, sent_starts=[i in (0, 3) for i in range(len(words))])
    assert sentences_of(own) == [(0, 3), (3, len(words))]
    assert sentences_of(nlp("")) == [] and doc_windows(nlp(""), [], 10, 5, True) == []


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


TOO_LONG = "longer than the specified maximum sequence length"


@contextmanager
def too_long_warnings():
    """The messages of transformers' too-long-sequence warning logged in the block."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("transformers.tokenization_utils_base")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        messages[:] = [message for message in messages if TOO_LONG in message]


def test_counting_an_overlong_token_gives_no_false_warning(tiny_bert):
    """Counting is not encoding: a token of more wordpieces than the encoder's
    maximum is counted without the warning that it "will result in indexing errors"."""
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert), model_max_length=256)
    with too_long_warnings() as counted:
        assert wordpiece_lengths(tokenizer, ["." * 804, "paris"]) == [804, 1]
    assert counted == []
    with too_long_warnings() as encoded:  # the warning is there for a text tokenized to be encoded
        tokenizer(["." * 804], add_special_tokens=False)
    assert encoded and "804 > 256" in encoded[0]


def test_the_pipeline_gives_no_false_warning_for_an_overlong_token(tiny_pipeline_dir):
    """The token's own window is longer than the maximum; spacy-transformers cuts
    it to the maximum before the encoder sees it, so no warning either."""
    nlp = spacy.load(tiny_pipeline_dir)  # a fresh tokenizer: transformers warns once per tokenizer
    with too_long_warnings() as messages:
        doc = nlp(LONG_TOKEN_TEXT)
    assert messages == []
    assert doc._.trf_data.wordpieces.input_ids.shape[1] <= 256


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


def test_cached_counts_equal_the_tokenizers_and_call_it_once_per_new_word(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    vocab = build_nlp(tiny_bert).vocab
    calls = []

    def counting_tokenizer(texts, **kwargs):
        calls.append(list(texts))
        return tokenizer(texts, **kwargs)

    counter = WordpieceCounter(counting_tokenizer, max_entries=5)
    first = Doc(vocab, words=["Paris", "zzzz", "Paris", "...", " "], spaces=[True, True, True, False, False])
    second = Doc(vocab, words=["zzzz", "Paris", "Berg"])
    assert counter(first) == wordpiece_counts(tokenizer, first)
    assert counter(second) == wordpiece_counts(tokenizer, second)
    assert calls == [["Paris", "zzzz", "...", " "], ["Berg"]]  # each distinct new text once
    assert counter(Doc(vocab, words=[])) == []
    # Past max_entries the cache starts over and still counts right.
    third = Doc(vocab, words=["Anna", "Tom", "Reed"])
    assert counter(third) == wordpiece_counts(tokenizer, third)
    assert len(counter._counts) == 3 and calls[-1] == ["Anna", "Tom", "Reed"]


def test_the_span_getter_counts_with_the_current_tokenizer_and_pickles_without_its_cache(nlp):
    import pickle

    getter = nlp.get_pipe("transformer").model.attrs["get_spans"]
    getter([nlp("Anna Berg lives in Paris .")])
    assert getter.counter().tokenizer is nlp.get_pipe("transformer").model.tokenizer
    assert len(getter.counter()._counts) > 0
    assert pickle.loads(pickle.dumps(getter))._counter is None


def test_prediction_leaves_the_encoder_in_eval_mode_and_training_switches_it_back(tiny_bert):
    nlp = build_nlp(tiny_bert)
    examples = make_examples(nlp, n_docs=4)
    optimizer = nlp.initialize(lambda: examples)
    encoder = nlp.get_pipe("transformer").model.layers[0].shims[0]._model
    nlp("Anna Berg lives in Paris .")
    assert not encoder.training  # no eval()/train() walk around every prediction
    nlp.update(examples, sgd=optimizer)
    assert encoder.training, "begin_update must train with dropout"
    first = nlp("Anna Berg lives in Paris .")
    assert not encoder.training
    # In eval mode (no dropout) predictions repeat exactly.
    assert numpy.array_equal(
        first._.trf_data.tensors[0],
        nlp("Anna Berg lives in Paris .")._.trf_data.tensors[0],
    )


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
        assert model["get_spans"]["sentences"] is False


def test_sentence_windows_in_the_pipeline_and_after_a_round_trip(tiny_pipeline_dir, tmp_path):
    """`sentences = true` on the trained pipeline: every window is whole
    sentences (the doc's are short), every token still gets wordpieces, and
    the setting survives to_disk / spacy.load."""
    nlp = spacy.load(tiny_pipeline_dir, config={"components.transformer.model.get_spans.sentences": True})
    gold = make_doc(nlp.vocab, random.Random(5), n_sents=40)
    text = gold.text
    doc = nlp(text)
    starts = {start for start, _ in sentences_of(nlp.make_doc(text))} | {len(doc)}
    assert len(starts) > 30  # the sentencizer found the sentences
    getter = nlp.get_pipe("transformer").model.attrs["get_spans"]
    windows = [(span.start, span.end) for span in getter([doc])[0]]
    assert len(windows) > 1 and all(start in starts and end in starts for start, end in windows)
    plain = spacy.load(tiny_pipeline_dir)
    plain_windows = [
        (span.start, span.end) for span in plain.get_pipe("transformer").model.attrs["get_spans"]([doc])[0]
    ]
    assert windows != plain_windows and not all(s in starts and e in starts for s, e in plain_windows)
    assert all(doc._.trf_data.align[token.i].data.size > 0 for token in doc)
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert loaded.config["components"]["transformer"]["model"]["get_spans"]["sentences"] is True
    again = loaded(text)
    assert [(e.start, e.end, e.label_) for e in again.ents] == [(e.start, e.end, e.label_) for e in doc.ents]
    numpy.testing.assert_allclose(again._.trf_data.tensors[0], doc._.trf_data.tensors[0], atol=1e-5)
