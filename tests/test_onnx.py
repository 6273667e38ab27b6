"""ONNX export of the tiny pipeline: parity with PyTorch, batches, long docs, int8, no torch."""

import json
import random
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy_transformers.span_getters import get_strided_spans
from typer.testing import CliRunner

from pos_ner.cli import app
from pos_ner.onnx import OnnxNer
from pos_ner.onnx.export import check_config, find_pipes
from pos_ner.windows import WORDPIECE_WINDOWS, window_bounds

from conftest import ROOT, build_nlp, make_doc, make_docs, write_docbin

TEXTS = [
    "Anna Berg lives in Paris .",
    "",
    "Globex opened an office in Lima .",
    "  odd   spacing\n\nTom Reed met Mia Cole .",
    # One token of 1,500 wordpieces: a window of its own, cut to the encoder's maximum.
    "Anna Berg lives in Paris . " + "." * 1500 + " Tom Reed works for Acme Corp .",
]


@pytest.fixture(scope="module")
def onnx_dir(tiny_onnx_dir):
    return tiny_onnx_dir


@pytest.fixture(scope="module")
def nlp(tiny_pipeline_dir):
    return spacy.load(tiny_pipeline_dir)


@pytest.fixture(scope="module")
def onnx_ner(onnx_dir):
    return OnnxNer(onnx_dir)


def untagged(doc: Doc) -> Doc:
    return Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])


def entities(doc: Doc):
    return [(ent.start, ent.end, ent.label_) for ent in doc.ents]


def test_export_writes_model_and_meta(onnx_dir, nlp):
    meta = json.loads((onnx_dir / "onnx_meta.json").read_text())
    assert meta["labels"] == list(nlp.get_pipe("ner").labels)
    assert meta["ner_tags"] == nlp.get_pipe("ner").tag_names
    assert meta["tagger_labels"] == list(nlp.get_pipe("tagger").labels)
    assert (meta["span_getter"], meta["window"], meta["stride"]) == (WORDPIECE_WINDOWS, 160, 120)
    assert meta["sentences"] is False
    assert meta["features"] == ["TAG", "SHAPE"] and meta["max_length"] == 256  # the tiny BERT's position embeddings
    assert all((onnx_dir / name).is_file() for name in meta["models"].values())
    assert set(meta["models"]) == {"fp32", "int8"}


@pytest.mark.parametrize("n_tokens", [0, 1, 95, 96, 127, 128, 129, 224, 225, 300, 500])
def test_unit_length_windows_match_spacy_transformers(n_tokens):
    """Models trained with strided_spans export with lengths of 1: the same windows."""
    doc = Doc(spacy.blank("en").vocab, words=["w"] * n_tokens)
    expected = [(span.start, span.end) for span in get_strided_spans([doc], 128, 96)[0]]
    assert window_bounds([1] * n_tokens, 128, 96) == expected


def test_sentence_windows_export_and_run_as_in_pytorch(tiny_pipeline_dir, tmp_path):
    """A pipeline with `sentences = true` exports the setting, and the runtime
    cuts each document into the span getter's windows of whole sentences."""
    nlp = spacy.load(tiny_pipeline_dir, config={"components.transformer.model.get_spans.sentences": True})
    nlp.to_disk(tmp_path / "model")
    result = CliRunner().invoke(app, ["export-onnx", str(tmp_path / "model"), str(tmp_path / "onnx")])
    assert result.exit_code == 0, result.output
    runtime = OnnxNer(tmp_path / "onnx")
    assert runtime.meta["sentences"] is True
    docs = [untagged(make_doc(nlp.vocab, random.Random(6), n_sents=40)), *map(untagged, make_docs(3, vocab=nlp.vocab))]
    getter = nlp.get_pipe("transformer").model.attrs["get_spans"]
    expected = [[(span.start, span.end) for span in spans] for spans in getter(docs)]
    assert [runtime.windows(doc) for doc in docs] == expected and len(expected[0]) > 1
    reference = list(nlp.pipe([untagged(doc) for doc in docs]))
    for ref_p, p in zip(nlp.get_pipe("ner").predict(reference), runtime.predict(docs)[2]):
        numpy.testing.assert_allclose(p, ref_p, atol=1e-4)


def test_batch_of_mixed_lengths_matches_pytorch(onnx_ner, nlp):
    long_doc = make_doc(nlp.vocab, random.Random(4), n_sents=40)
    gold = [*make_docs(5, seed=21, vocab=nlp.vocab), long_doc, Doc(nlp.vocab, words=[])]
    reference = list(nlp.pipe([untagged(doc) for doc in gold]))
    ref_probs = nlp.get_pipe("ner").predict(reference)
    docs = [untagged(doc) for doc in gold]
    tag_ids, _, probs = onnx_ner.predict(docs)
    assert len({len(doc) for doc in docs}) > 3
    encoded = onnx_ner.encode([docs[5]])
    assert encoded["input_ids"].shape[0] >= 2 and encoded["attention_mask"].sum() > 128
    labels = onnx_ner.meta["tagger_labels"]
    for ref, ref_p, ids, p in zip(reference, ref_probs, tag_ids, probs):
        assert [labels[i] for i in ids] == [token.tag_ for token in ref]
        assert p.shape == ref_p.shape
        numpy.testing.assert_allclose(p, ref_p, atol=1e-4)
    numpy.testing.assert_allclose(onnx_ner.predict([docs[5]])[2][0], probs[5], atol=1e-5)
    onnx_ner.set_annotations(docs, tag_ids, probs)
    assert sum(len(doc.ents) for doc in reference) > 0
    for ref, doc in zip(reference, docs):
        assert entities(doc) == entities(ref)
        for ent, ref_ent in zip(doc.ents, ref.ents):
            assert ent._.confidence == pytest.approx(ref_ent._.confidence, abs=1e-4)


def test_documents_run_in_length_groups_with_the_same_output(onnx_dir, nlp):
    """Small groups (many graph runs, each padded to its own longest window) give
    what one padded run gives, in the input order."""
    long_doc = make_doc(nlp.vocab, random.Random(4), n_sents=40)
    docs = [untagged(doc) for doc in [*make_docs(5, seed=21, vocab=nlp.vocab), long_doc, Doc(nlp.vocab, words=[])]]
    one_run, grouped = OnnxNer(onnx_dir, max_batch_tokens=10**9), OnnxNer(onnx_dir, max_batch_tokens=40)
    runs = []
    real_run = grouped.session.run
    grouped.session = type("Session", (), {"run": lambda _, *args: runs.append(args[1]) or real_run(*args)})()
    expected, got = one_run.predict(docs), grouped.predict(docs)
    assert len(runs) > 2
    widths = {feed["input_ids"].shape[1] for feed in runs}
    assert len(widths) > 1  # short documents are not padded to the long one's windows
    for column, other in zip(expected, got):
        assert len(column) == len(other) == len(docs)
        for a, b in zip(column, other):
            assert a.shape == b.shape
            numpy.testing.assert_allclose(a, b, atol=1e-5)


def test_texts_match_pytorch(onnx_ner, nlp):
    for doc, ref in zip(onnx_ner.pipe(TEXTS, batch_size=3), nlp.pipe(TEXTS)):
        assert [(t.text, t.tag_) for t in doc] == [(t.text, t.tag_) for t in ref]
        assert entities(doc) == entities(ref)
        assert all(0.0 <= ent._.confidence <= 1.0 for ent in doc.ents)
    assert onnx_ner(TEXTS[0]).ents


def test_parity_cli_fp32_and_int8(onnx_dir, tiny_pipeline_dir, nlp, tmp_path):
    docs = [*make_docs(20, seed=9, vocab=nlp.vocab), make_doc(nlp.vocab, random.Random(5), n_sents=40)]
    data = write_docbin(tmp_path / "dev.spacy", docs)
    output = tmp_path / "parity.json"
    result = CliRunner().invoke(
        app, ["onnx-parity", str(tiny_pipeline_dir), str(onnx_dir), str(data), "-o", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert "onnx fp32" in result.output and "onnx int8" in result.output
    parity = json.loads(output.read_text())
    assert parity["n_docs"] == 21 and parity["pytorch"]["entities"] > 0
    fp32, int8 = parity["fp32"], parity["int8"]
    assert fp32["entity_agreement"] >= 0.995 and fp32["tag_agreement"] >= 0.995
    assert fp32["max_prob_diff"] < 1e-4 and abs(fp32["f1_change"]) < 1e-9
    assert 0.0 <= fp32["max_confidence_diff"] < 1e-4
    assert 0.0 < int8["max_prob_diff"] < 0.05 and 0.0 <= int8["f1"] <= 1.0


def test_onnx_path_runs_without_torch(onnx_dir, onnx_ner):
    script = f"""
import json, sys
sys.modules["torch"] = None
sys.modules["spacy_transformers"] = None
from pos_ner.onnx import OnnxNer
docs = OnnxNer({str(onnx_dir)!r}, quantized=True).pipe({TEXTS!r})
print(json.dumps([[[e.start, e.end, e.label_] for e in doc.ents] for doc in docs]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    fp32 = [[list(ent) for ent in entities(doc)] for doc in onnx_ner.pipe(TEXTS)]
    int8 = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(int8) == len(TEXTS) and any(int8)
    assert sum(ent in doc for doc, ref in zip(int8, fp32) for ent in ref) >= 0.5 * sum(map(len, fp32))


@pytest.mark.parametrize("features", [["TAG", "SHAPE"], ["IS_TITLE", "TAG", "IS_UPPER"], ["SHAPE"]])
def test_hashed_features_match_pytorch(features, tiny_bert, tmp_path):
    """Any MultiHashEmbed attributes: the predicted TAG's rows in the graph,
    the others hashed by the runtime with thinc's hash, in the config's order."""
    from pos_ner.onnx.export import export

    from conftest import make_examples, train

    nlp = build_nlp(tiny_bert, features=features, feature_width=16)
    train(nlp, make_examples(nlp, n_docs=8), steps=6)
    meta = export(nlp, tmp_path / "onnx")
    assert meta["features"] == features and [f["attr"] for f in meta["hashed_features"]] == [
        f for f in features if f != "TAG"
    ]
    onnx_ner = OnnxNer(tmp_path / "onnx")
    texts = TEXTS[:4] + ["IBM and NASA hired ANNA in 2024 ."]
    docs = [nlp.make_doc(text) for text in texts]
    _, _, probs = onnx_ner.predict(docs)
    expected = nlp.get_pipe("ner").predict(list(nlp.get_pipe("tagger").pipe(nlp.get_pipe("transformer").pipe(docs))))
    for ours, theirs in zip(probs, expected):
        numpy.testing.assert_allclose(ours, nlp.get_pipe("ner").model.ops.to_numpy(theirs), atol=1e-4)


def test_export_needs_spacys_rule_based_tokenizer(tiny_bert):
    """The runtime rebuilds Docs with the saved spaCy Tokenizer; any other tokenizer is refused."""
    nlp = build_nlp(tiny_bert)
    assert check_config(nlp, find_pipes(nlp)) == ["TAG", "SHAPE"]
    nlp.tokenizer = lambda text: Doc(nlp.vocab, words=text.split())
    with pytest.raises(ValueError, match="rule-based tokenizer"):
        check_config(nlp, find_pipes(nlp))


def test_export_refuses_document_context(tiny_bert):
    nlp = build_nlp(tiny_bert, doc_context=True)
    with pytest.raises(ValueError, match="doc_context"):
        check_config(nlp, find_pipes(nlp))


# ---------------------------------------------------------------- ONNX as a backend


def records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def same_entities(left, right, confidence_tolerance):
    """The records' entities agree on everything but the confidence, which differs by at most the tolerance."""
    assert len(left) == len(right)
    for a, b in zip(left, right):
        assert [{k: v for k, v in e.items() if k != "confidence"} for e in a["entities"]] == [
            {k: v for k, v in e.items() if k != "confidence"} for e in b["entities"]
        ]
        for x, y in zip(a["entities"], b["entities"]):
            assert abs(x["confidence"] - y["confidence"]) <= confidence_tolerance


def test_onnx_pipeline_is_a_spacy_language(onnx_dir, nlp):
    """The export as a Language: the same tokens, tags, entities and confidences as PyTorch, empty texts
    included, through nlp(), nlp.pipe and a memory zone; the source model's name in its meta."""
    from pos_ner.backends import Backend, load

    onnx_nlp = load(str(onnx_dir), Backend.onnx)
    assert onnx_nlp.pipe_names == ["ner"] and onnx_nlp.get_pipe("ner").labels == nlp.get_pipe("ner").labels
    assert "doc.ents" in onnx_nlp.get_pipe_meta("ner").assigns
    assert onnx_nlp.meta["name"] == nlp.meta["name"] and onnx_nlp.meta["version"] == nlp.meta["version"]
    assert len(onnx_nlp("")) == 0 and not onnx_nlp("").ents
    refs = list(nlp.pipe(TEXTS))
    with onnx_nlp.memory_zone():  # as the service runs it
        for doc, ref in zip(onnx_nlp.pipe(TEXTS, batch_size=2), refs):
            assert [(t.text, t.tag_) for t in doc] == [(t.text, t.tag_) for t in ref]
            assert entities(doc) == entities(ref)
            assert all(abs(e._.confidence - r._.confidence) < 1e-4 for e, r in zip(doc.ents, ref.ents))
    assert entities(onnx_nlp(TEXTS[0])) == entities(refs[0])


def test_the_backend_keeps_the_memory_arena_and_drops_the_per_shape_patterns(onnx_dir):
    """The session options the measurement chose (RESULTS.md, "ONNX session options"):
    the arena on (its speed), memory patterns off (the memory they hold); both
    settable through the factory's config, so a pipeline's config.cfg records them."""
    from pos_ner.onnx.runtime import onnx_pipeline

    def options(nlp):
        return nlp.get_pipe("ner").ner.session.get_session_options()

    default = onnx_pipeline(onnx_dir)
    assert options(default).enable_cpu_mem_arena and not options(default).enable_mem_pattern
    assert default.config["components"]["ner"]["memory_pattern"] is False
    other = onnx_pipeline(onnx_dir, memory_arena=False, memory_pattern=True)
    assert not options(other).enable_cpu_mem_arena and options(other).enable_mem_pattern
    plain = OnnxNer(onnx_dir).session.get_session_options()
    assert plain.enable_cpu_mem_arena and not plain.enable_mem_pattern


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_predict_backends_write_the_same_records(backend, onnx_dir, tiny_pipeline_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    runner = CliRunner()
    torch_out, onnx_out = tmp_path / "torch.jsonl", tmp_path / "onnx.jsonl"
    result = runner.invoke(app, ["predict", str(tiny_pipeline_dir), str(source), str(torch_out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["predict", str(onnx_dir), str(source), str(onnx_out), "--backend", backend])
    assert result.exit_code == 0, result.output
    assert f"{len(TEXTS)} read, {len(TEXTS)} written, 0 rejected" in result.output
    torch_records, onnx_records = records(torch_out), records(onnx_out)
    assert [r["id"] for r in onnx_records] == list(range(len(TEXTS)))
    assert [set(r) for r in onnx_records] == [set(r) for r in torch_records]
    if backend == "onnx":
        same_entities(onnx_records, torch_records, 1e-4)
    else:  # int8 moves probabilities: only the record format and the offsets are the same
        for record, text in zip(onnx_records, TEXTS):
            for entity in record["entities"]:
                assert text[entity["start_char"] : entity["end_char"]] == entity["text"]
                assert 0.0 <= entity["confidence"] <= 1.0


def test_backend_mismatches_are_one_line(onnx_dir, tiny_pipeline_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("Anna Berg lives in Paris .\n")
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(tiny_pipeline_dir), str(source), "-", "--backend", "onnx"])
    assert result.exit_code == 1
    reason = "not an ONNX export (a spaCy pipeline: --backend pytorch)"
    assert f"{tiny_pipeline_dir}: cannot load the pipeline: {reason}" in result.output
    result = runner.invoke(app, ["predict", str(onnx_dir), str(source), "-"])
    assert result.exit_code == 1
    assert f"{onnx_dir}: cannot load the pipeline: an ONNX export, not a spaCy pipeline folder: add --backend onnx" in (
        result.output
    )
    result = runner.invoke(app, ["predict", str(tmp_path / "nowhere"), str(source), "-", "--backend", "onnx-int8"])
    assert result.exit_code == 1 and "nowhere: cannot load the pipeline: no such folder" in result.output


def test_the_service_on_the_onnx_backend(onnx_dir, nlp):
    """The HTTP API's answers from the ONNX backend equal PyTorch's (fp32), and /health names the model."""
    from fastapi.testclient import TestClient

    from pos_ner.backends import Backend, load
    from pos_ner.serving import create_app

    texts = [t for t in TEXTS if t.strip() and len(t) < 1000]
    with (
        TestClient(create_app(load(str(onnx_dir), Backend.onnx))) as onnx_client,
        TestClient(create_app(nlp)) as torch_client,
    ):
        onnx_answer = onnx_client.post("/ner", json={"texts": texts})
        torch_answer = torch_client.post("/ner", json={"texts": texts})
        assert onnx_answer.status_code == torch_answer.status_code == 200
        same_entities(onnx_answer.json()["results"], torch_answer.json()["results"], 1e-4)
        health = onnx_client.get("/health").json()
        assert health["model"] == f"{nlp.lang}_{nlp.meta['name']}" and health["pipeline"] == ["ner"]
        assert "PER" in onnx_client.get("/").text
