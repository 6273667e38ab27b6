"""pos_ner.Corpus.v1: long training documents are cut into bounded parts on
sentence boundaries, never inside an entity, and nothing is lost."""

import random
import subprocess
import sys

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import load_config, registry

from pos_ner.corpus import cut_bounds, hold_out, recase, title_case

from conftest import ROOT, make_doc, make_docs, write_docbin


def entity_texts(docs):
    return sorted((ent.text, ent.label_) for doc in docs for ent in doc.ents)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    n_tokens=st.integers(0, 120),
    sent_every=st.one_of(st.none(), st.integers(1, 40)),
    ents=st.lists(st.tuples(st.integers(0, 119), st.integers(1, 30)), max_size=8),
    max_tokens=st.integers(1, 50),
)
def test_parts_cover_the_doc_and_keep_entities_whole(n_tokens, sent_every, ents, max_tokens):
    vocab = spacy.blank("en").vocab
    starts = [i % sent_every == 0 for i in range(n_tokens)] if sent_every else None
    doc = Doc(vocab, words=["w"] * n_tokens, sent_starts=starts)
    spans = []
    for start, length in sorted(ents):
        end = min(start + length, n_tokens)
        if start < end and all(start >= other.end for other in spans):
            spans.append(Span(doc, start, end, "X"))
    doc.ents = spans
    parts = cut_bounds(doc, max_tokens)
    assert [start for start, _ in parts[1:]] == [end for _, end in parts[:-1]]  # contiguous
    assert (parts[0][0], parts[-1][1]) == (0, n_tokens) if n_tokens else parts in ([], [(0, 0)])
    for start, end in parts:
        assert not any(ent.start < start < ent.end for ent in doc.ents), "a cut inside an entity"
        too_long = end - start > max_tokens
        # Only an entity (or a sentence boundary inside one) may force a part over the limit.
        assert not too_long or any(ent.end - ent.start > 0 and start <= ent.start < end for ent in doc.ents)
    if sent_every:
        sentence_starts = {i for i in range(n_tokens) if i % sent_every == 0}
        for start, _ in parts[1:]:
            # Cuts are at sentence starts, except inside sentences longer than the limit.
            assert start in sentence_starts or sent_every > max_tokens


def make_reader(path, **settings):
    return registry.resolve({"r": {"@readers": "pos_ner.Corpus.v1", "path": str(path), **settings}})["r"]


def read(settings, path, nlp):
    return list(make_reader(path, **settings)(nlp))


def test_reader_cuts_long_docs_and_says_so(tmp_path, capsys):
    nlp = spacy.blank("en")
    long_doc = make_doc(nlp.vocab, random.Random(1), n_sents=120)  # ~700 tokens
    short = make_docs(3, seed=2, vocab=nlp.vocab)
    path = write_docbin(tmp_path / "train.spacy", [long_doc, *short])
    examples = read({"max_doc_tokens": 100}, path, nlp)
    out = " ".join(capsys.readouterr().out.split())
    assert "cut 1 of 4 documents" in out and "longer than 100 tokens" in out
    assert len(long_doc) > 500
    assert all(len(eg.reference) <= 100 for eg in examples)
    assert len(examples) > len(long_doc) // 100 + 3
    assert entity_texts(eg.reference for eg in examples) == entity_texts([long_doc, *short])
    assert sum(len(eg.reference) for eg in examples) == sum(len(doc) for doc in [long_doc, *short])
    # Parts end on sentence boundaries and keep the gold tags.
    assert all(eg.reference[-1].text == "." for eg in examples)
    assert [t.tag_ for eg in examples for t in eg.reference] == [t.tag_ for d in [long_doc, *short] for t in d]
    assert all(eg.predicted.text == eg.reference.text for eg in examples)
    # Said once per reader, not every epoch.
    reader = make_reader(path, max_doc_tokens=100)
    list(reader(nlp))
    capsys.readouterr()
    assert len(list(reader(nlp))) == len(examples) and "cut" not in capsys.readouterr().out
    again = read({"max_doc_tokens": 0}, path, nlp)
    assert len(again) == 4 and len(again[0].reference) == len(long_doc)


def test_training_reads_bounded_parts_and_dev_stays_whole():
    config = load_config(ROOT / "configs" / "pos_ner.cfg")
    assert config["corpora"]["train"]["@readers"] == "pos_ner.Corpus.v1"
    assert config["corpora"]["train"]["max_doc_tokens"] == config["training"]["batcher"]["size"]
    assert config["corpora"]["dev"]["@readers"] == "pos_ner.Corpus.v1"
    assert config["corpora"]["dev"]["max_doc_tokens"] == 0
    assert config["corpora"]["train"]["gold_tags"] is False and config["corpora"]["dev"]["gold_tags"] is False


def test_empty_corpus_and_empty_docs(tmp_path):
    nlp = spacy.blank("en")
    path = tmp_path / "empty.spacy"
    DocBin(docs=[Doc(nlp.vocab, words=[])]).to_disk(path)
    # spaCy's Corpus yields no example for an empty Doc; cutting adds none either.
    assert read({"max_doc_tokens": 10}, path, nlp) == []


def test_gold_tags_reach_the_predicted_doc_only_when_asked(tmp_path):
    nlp = spacy.blank("en")
    docs = make_docs(3, seed=4, vocab=nlp.vocab)
    path = write_docbin(tmp_path / "train.spacy", docs)
    plain = read({"max_doc_tokens": 0}, path, nlp)
    assert all(not eg.predicted.has_annotation("TAG") for eg in plain)
    gold = read({"max_doc_tokens": 0, "gold_tags": True}, path, nlp)
    assert [[t.tag_ for t in eg.predicted] for eg in gold] == [[t.tag_ for t in doc] for doc in docs]
    # Cut parts get them too.
    parts = read({"max_doc_tokens": 5, "gold_tags": True}, path, nlp)
    assert len(parts) > 3 and all(t.tag_ == r.tag_ for eg in parts for t, r in zip(eg.predicted, eg.reference))


def test_gold_tags_need_a_tagged_corpus(tmp_path):
    nlp = spacy.blank("en")
    path = write_docbin(tmp_path / "untagged.spacy", [Doc(nlp.vocab, words=["Anna", "sings"])])
    try:
        read({"max_doc_tokens": 0, "gold_tags": True}, path, nlp)
    except ValueError as error:
        assert "gold_tags = true, but the corpus has no TAG annotation" in str(error)
    else:
        raise AssertionError("no error for gold_tags on an untagged corpus")


def sentences_reader(path, share, **settings):
    augmenter = {"@augmenters": "pos_ner.single_sentences.v1", "share": share}
    return make_reader(path, max_doc_tokens=0, augmenter=augmenter, **settings)


def test_single_sentences_augmenter_splits_a_share_and_loses_nothing(tmp_path):
    nlp = spacy.blank("en")
    docs = make_docs(40, seed=5, vocab=nlp.vocab)
    path = write_docbin(tmp_path / "train.spacy", docs)
    n_sents = sum(len(list(doc.sents)) for doc in docs)
    assert n_sents == 3 * len(docs)
    every = list(sentences_reader(path, 1.0)(nlp))
    assert len(every) == n_sents and all(len(list(eg.reference.sents)) == 1 for eg in every)
    none = list(sentences_reader(path, 0.0)(nlp))
    assert [eg.reference.text for eg in none] == [doc.text for doc in docs]
    random.seed(0)
    some = list(sentences_reader(path, 0.5)(nlp))
    assert len(docs) < len(some) < n_sents
    for examples in (every, some):
        # Every token, entity and tag is kept, in order, and the predicted Doc
        # holds the same text as its reference.
        assert [t.text for eg in examples for t in eg.reference] == [t.text for doc in docs for t in doc]
        assert entity_texts(eg.reference for eg in examples) == entity_texts(docs)
        assert [t.tag_ for eg in examples for t in eg.reference] == [t.tag_ for doc in docs for t in doc]
        assert all(eg.predicted.text == eg.reference.text for eg in examples)
    # Drawn from Python's random, which spaCy's training seeds: the same seed, the same split.
    random.seed(0)
    again = list(sentences_reader(path, 0.5)(nlp))
    assert [eg.reference.text for eg in again] == [eg.reference.text for eg in some]
    # With gold_tags the sentences get the gold tags on their predicted Docs as well.
    tagged = list(sentences_reader(path, 1.0, gold_tags=True)(nlp))
    assert all(t.tag_ == r.tag_ and t.tag_ for eg in tagged for t, r in zip(eg.predicted, eg.reference))


def test_single_sentences_keep_an_entity_across_a_boundary_whole(tmp_path):
    nlp = spacy.blank("en")
    words = ["Anna", "lives", ".", "New", "York", "is", "big", "."]
    doc = Doc(nlp.vocab, words=words, sent_starts=[True, False, False, True, True, False, False, False])
    doc.ents = [Span(doc, 0, 1, "PER"), Span(doc, 3, 5, "LOC")]  # a boundary inside "New York"
    path = write_docbin(tmp_path / "train.spacy", [doc])
    examples = list(sentences_reader(path, 1.0)(nlp))
    assert [[t.text for t in eg.reference] for eg in examples] == [words[:3], words[3:]]
    assert entity_texts(eg.reference for eg in examples) == [("Anna", "PER"), ("New York", "LOC")]


def test_single_sentences_share_must_be_a_probability():
    for share in (-0.1, 1.5):
        try:
            registry.resolve({"a": {"@augmenters": "pos_ner.single_sentences.v1", "share": share}})
        except ValueError as error:
            assert f"share must be between 0 and 1, got {share}" in str(error)
        else:
            raise AssertionError(f"no error for share {share}")


def test_single_sentences_leave_empty_and_one_sentence_docs_whole():
    nlp = spacy.blank("en")
    augment = registry.resolve({"a": {"@augmenters": "pos_ner.single_sentences.v1", "share": 1.0}})["a"]
    for words in ([], ["Anna", "sings", "."]):
        doc = Doc(nlp.vocab, words=words, sent_starts=[i == 0 for i in range(len(words))] or None)
        example = Example(Doc(nlp.vocab, words=words), doc)
        assert list(augment(nlp, example)) == [example]


def case_reader(path, **shares):
    return make_reader(path, max_doc_tokens=0, augmenter={"@augmenters": "pos_ner.case_variants.v1", **shares})


def test_case_variants_change_a_share_of_documents_and_keep_their_annotations(tmp_path):
    nlp = spacy.blank("en")
    docs = make_docs(60, seed=6, vocab=nlp.vocab)
    path = write_docbin(tmp_path / "train.spacy", docs)
    for name, change in (("lower", str.lower), ("upper", str.upper), ("title", title_case)):
        every = list(case_reader(path, **{name: 1.0})(nlp))
        assert [eg.reference.text for eg in every] == ["".join(change(t.text) + t.whitespace_ for t in d) for d in docs]
        assert [eg.predicted.text for eg in every] == [eg.reference.text for eg in every]
        for eg, doc in zip(every, docs):
            # The same tokens, tags, sentences and entities (by position and label).
            assert [t.text for t in eg.reference] == [change(t.text) for t in doc]
            assert [t.tag_ for t in eg.reference] == [t.tag_ for t in doc]
            assert [t.is_sent_start for t in eg.reference] == [t.is_sent_start for t in doc]
            assert [(e.start, e.end, e.label_) for e in eg.reference.ents] == [
                (e.start, e.end, e.label_) for e in doc.ents
            ]
            # The entities reach training: the gold tags aligned to the predicted tokens.
            assert eg.get_aligned_ner() == Example(Doc(nlp.vocab, words=[t.text for t in doc]), doc).get_aligned_ner()
    random.seed(0)
    mixed = list(case_reader(path, lower=0.3, upper=0.2, title=0.1)(nlp))
    kinds = []
    for eg, doc in zip(mixed, docs):
        kind = next(
            (
                n
                for n, f in (("none", str), ("lower", str.lower), ("upper", str.upper), ("title", title_case))
                if [t.text for t in eg.reference] == [f(t.text) for t in doc]
            ),
            None,
        )
        assert kind is not None
        kinds.append(kind)
    # One document in, one out, each either unchanged or one of the variants; about the shares asked.
    assert len(mixed) == len(docs) and {"none", "lower", "upper", "title"} <= set(kinds)
    assert 5 <= kinds.count("lower") <= 30 and kinds.count("none") >= 12
    random.seed(0)
    again = list(case_reader(path, lower=0.3, upper=0.2, title=0.1)(nlp))
    assert [eg.reference.text for eg in again] == [eg.reference.text for eg in mixed]
    # No shares: every document as it is, and no draw from the random stream.
    random.seed(0)
    plain = list(case_reader(path)(nlp))
    assert [eg.reference.text for eg in plain] == [doc.text for doc in docs] and random.random() == random.Random(
        0
    ).random()


def test_recase_keeps_missing_entity_annotation_parses_and_empty_docs():
    nlp = spacy.blank("en")
    words = ["Anna", "visited", "Paris", "."]
    doc = Doc(
        nlp.vocab,
        words=words,
        heads=[1, 1, 1, 1],
        deps=["nsubj", "ROOT", "dobj", "punct"],
        pos=["PROPN", "VERB", "PROPN", "PUNCT"],
        lemmas=["Anna", "visit", "Paris", "."],
    )
    doc.set_ents([Span(doc, 0, 1, "PER")], missing=[doc[2:3]], default="outside")
    upper = recase(doc, str.upper)
    assert [t.text for t in upper] == ["ANNA", "VISITED", "PARIS", "."]
    assert [t.ent_iob_ for t in upper] == ["B", "O", "", "O"] == [t.ent_iob_ for t in doc]
    assert [(t.head.i, t.dep_, t.pos_, t.lemma_) for t in upper] == [(t.head.i, t.dep_, t.pos_, t.lemma_) for t in doc]
    assert len(recase(Doc(nlp.vocab, words=[]), str.lower)) == 0
    assert title_case("u.s.") == "U.s." and title_case("iPhone") == "IPhone" and title_case("") == ""


@pytest.mark.parametrize(
    "shares, message",
    [
        ({"lower": -0.1}, "lower must be between 0 and 1, got -0.1"),
        ({"title": 1.5}, "title must be between 0 and 1"),
        ({"lower": 0.6, "upper": 0.5}, "must add up to at most 1, got lower + upper + title = 1.1"),
    ],
)
def test_case_variants_shares_are_checked(shares, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        registry.resolve({"a": {"@augmenters": "pos_ner.case_variants.v1", **shares}})


def test_chained_augmenters_apply_in_order_from_a_config(tmp_path):
    nlp = spacy.blank("en")
    docs = make_docs(8, seed=7, vocab=nlp.vocab)
    path = write_docbin(tmp_path / "train.spacy", docs)
    text = f"""
[r]
@readers = "pos_ner.Corpus.v1"
path = "{path}"
max_doc_tokens = 0

[r.augmenter]
@augmenters = "pos_ner.chained_augmenters.v1"

[r.augmenter.*.sentences]
@augmenters = "pos_ner.single_sentences.v1"
share = 1.0

[r.augmenter.*.case]
@augmenters = "pos_ner.case_variants.v1"
upper = 1.0
"""
    from thinc.api import Config

    config = Config().from_str(text)
    examples = list(registry.resolve(config)["r"](nlp))
    # Every document split into its sentences, then every sentence uppercased; nothing lost.
    assert len(examples) == sum(len(list(doc.sents)) for doc in docs)
    assert [t.text for eg in examples for t in eg.reference] == [t.text.upper() for doc in docs for t in doc]
    assert entity_texts(eg.reference for eg in examples) == sorted(
        (ent.text.upper(), ent.label_) for doc in docs for ent in doc.ents
    )
    # No augmenters: the example itself.
    example = Example(Doc(nlp.vocab, words=["a"]), docs[0])
    assert list(registry.augmenters.get("pos_ner.chained_augmenters.v1")()(nlp, example)) == [example]


def test_spacy_finds_the_augmenter_through_its_entry_point(tmp_path):
    # No import of pos_ner: a config naming the augmenter works with plain `spacy train`.
    names = "'pos_ner.single_sentences.v1', 'pos_ner.case_variants.v1', 'pos_ner.chained_augmenters.v1'"
    code = f"from spacy.util import registry; print(*(registry.augmenters.get(n).__module__ for n in ({names})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "pos_ner.corpus pos_ner.corpus pos_ner.corpus"


def long_doc(vocab, rng, n_sents, free_every=100):
    words, starts = [], []
    for _ in range(n_sents):
        n = rng.randint(5, 30)
        words += [f"w{len(words) + i}" for i in range(n)]
        starts += [True] + [False] * (n - 1)
    doc = Doc(vocab, words=words, sent_starts=starts)
    # An entity across every sentence boundary but one in `free_every`: the cut may only take those.
    bounds = [sent.start for sent in doc.sents][1:]
    doc.ents = [Span(doc, b - 1, b + 1, "X") for n, b in enumerate(bounds) if n % free_every]
    return doc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hold_out_takes_a_token_share_from_a_few_long_documents(seed):
    # Five long documents (~47k tokens): one whole document would be ~20-30 % of the tokens.
    vocab = spacy.blank("en").vocab
    rng = random.Random(3)
    docs = [long_doc(vocab, rng, n) for n in (900, 800, 700, 900, 600)]
    held = hold_out(docs, 0.1, seed)
    n_dev, n_all = sum(map(len, held.dev)), sum(map(len, docs))
    assert 0.08 <= n_dev / n_all <= 0.12
    assert held.n_cut == 1 and len(held.dev) == 1 and len(held.kept) == 5
    # Nothing lost: the cut document's start is in training, its end in dev, entities whole.
    assert sorted(t.text for d in held.kept + held.dev for t in d) == sorted(t.text for d in docs for t in d)
    assert entity_texts(held.kept + held.dev) == entity_texts(docs)
    assert held.dev[0].has_annotation("SENT_START")
    assert "0 whole and the end of 1 (cut at a sentence boundary) of 5 training documents" in held.describe(0.1, seed)
    # The same seed, the same split.
    assert [d.text for d in hold_out(docs, 0.1, seed).dev] == [d.text for d in held.dev]


def test_hold_out_keeps_whole_documents_when_they_fit():
    vocab = spacy.blank("en").vocab
    rng = random.Random(4)
    docs = [long_doc(vocab, rng, rng.randint(1, 30)) for _ in range(60)]
    n_all = sum(map(len, docs))
    splits = {}
    for seed in range(3):
        held = hold_out(docs, 0.1, seed)
        assert held.n_cut == 0 and len(held.kept) + len(held.dev) == 60
        assert 0.08 <= sum(map(len, held.dev)) / n_all <= 0.12
        kept_ids = {id(d) for d in held.kept}
        assert all(id(d) not in kept_ids for d in held.dev)
        # Each side keeps the file's order.
        assert [d for d in docs if id(d) in kept_ids] == held.kept
        splits[seed] = [d.text for d in held.dev]
    assert len({tuple(s) for s in splits.values()}) == 3, "different seeds, different draws"


def test_hold_out_from_one_document_and_from_nothing_it_can_cut():
    vocab = spacy.blank("en").vocab
    held = hold_out([long_doc(vocab, random.Random(5), 200, free_every=5)], 0.1, 0)
    assert len(held.kept) == len(held.dev) == 1
    assert 0.08 <= len(held.dev[0]) / (len(held.dev[0]) + len(held.kept[0])) <= 0.12
    one_sentence = Doc(vocab, words=["a", "b", "c"])
    with pytest.raises(ValueError, match="give a dev file"):
        hold_out([one_sentence], 0.1, 0)
    with pytest.raises(ValueError, match="give a dev file"):
        hold_out([], 0.1, 0)
