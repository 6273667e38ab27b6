"""Mixed precision on the CPU: `mixed_precision = true` (or `--backend pytorch-bf16`)
autocasts the encoder to bfloat16, where thinc's CUDA-only autocast does nothing,
and the layers after it still receive float32."""

import json
import math

import numpy
import pytest
import spacy
import torch
from typer.testing import CliRunner

from pos_ner.backends import Backend, load
from pos_ner.cli import app
from pos_ner.layers import hf_shim
from pos_ner.layers.hf_shim import PosNerHFShim, cpu_has_bf16, set_mixed_precision

from conftest import build_nlp, make_examples

TEXTS = [
    "Anna Berg lives in Paris .",
    "Tom Reed met Mia Cole in Berlin on Monday .",
    "",
    "Globex opened an office in Lima .",
]


# Where the CPU lacks native bfloat16, mixed precision keeps float32 (the last test).
needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16")


def encoder_of(nlp):
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    return shim, shim._model


class DtypeProbe:
    """Records the dtype of the first dense layer's output in the encoder, and of the encoder's output."""

    def __init__(self, encoder):
        dense = next(module for module in encoder.modules() if isinstance(module, torch.nn.Linear))
        self.inner, self.outer = [], []
        self.handles = [
            dense.register_forward_hook(lambda m, i, out: self.inner.append(out.dtype)),
            encoder.register_forward_hook(lambda m, i, out: self.outer.append(out["last_hidden_state"].dtype)),
        ]

    def close(self):
        for handle in self.handles:
            handle.remove()


def test_the_default_runs_the_encoder_in_float32(tiny_pipeline_dir):
    nlp = load(str(tiny_pipeline_dir), Backend.pytorch)
    shim, encoder = encoder_of(nlp)
    assert isinstance(shim, PosNerHFShim) and not shim.cpu_bf16
    probe = DtypeProbe(encoder)
    list(nlp.pipe(TEXTS))
    assert probe.inner and set(probe.inner) == {torch.float32}


@needs_bf16
def test_bf16_backend_autocasts_the_encoder_and_hands_on_float32(tiny_pipeline_dir):
    """The encoder's matmuls run in bfloat16; what spacy-transformers stores and the
    heads read is float32; tags and entities stay close to the float32 pipeline's
    (bfloat16 keeps 8 bits of mantissa: confidences move, decisions rarely)."""
    reference = list(load(str(tiny_pipeline_dir), Backend.pytorch).pipe(TEXTS))
    nlp = load(str(tiny_pipeline_dir), Backend.pytorch_bf16)
    shim, encoder = encoder_of(nlp)
    assert shim.cpu_bf16
    probe = DtypeProbe(encoder)
    docs = list(nlp.pipe(TEXTS))
    assert probe.inner and set(probe.inner) == {torch.bfloat16}
    # The pooler's output comes out of autocast as bfloat16, which numpy cannot hold: the shim casts it.
    for doc in docs:
        if len(doc):
            outputs = list(doc._.trf_data.model_output.values())
            assert len(outputs) == 2 and all(array.dtype == numpy.float32 for array in outputs)
    assert len(docs[2]) == 0 and not docs[2].ents
    tags = [(t.tag_, r.tag_) for doc, ref in zip(docs, reference) for t, r in zip(doc, ref)]
    assert sum(a == b for a, b in tags) >= 0.9 * len(tags)
    for doc, ref in zip(docs, reference):
        assert [t.text for t in doc] == [t.text for t in ref]
        for ent in doc.ents:
            assert 0.0 <= ent._.confidence <= 1.0
    # One text at a time goes through the same path.
    assert len(nlp("Anna Berg lives in Paris .")) == 6 and probe.inner[-1] == torch.bfloat16


def test_mixed_precision_can_be_switched_off_again(tiny_pipeline_dir):
    nlp = load(str(tiny_pipeline_dir), Backend.pytorch_bf16)
    assert set_mixed_precision(nlp, False) == 1
    probe = DtypeProbe(encoder_of(nlp)[1])
    nlp("Anna Berg lives in Paris .")
    assert set(probe.inner) == {torch.float32}


@needs_bf16
def test_training_with_mixed_precision_on_the_cpu(tiny_bert, tmp_path):
    """`mixed_precision = true` in the config trains with a bfloat16 forward: the
    losses stay finite and fall, the encoder's float32 weights receive gradients,
    and the setting survives a save/load round trip."""
    config = build_nlp(tiny_bert).config.copy()
    config["components"]["transformer"]["model"]["mixed_precision"] = True
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = make_examples(nlp, n_docs=8)
    nlp.initialize(lambda: examples)
    shim, encoder = encoder_of(nlp)
    assert shim.cpu_bf16
    probe = DtypeProbe(encoder)
    before = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    optimizer = nlp.create_optimizer()
    optimizer.learn_rate = 0.003
    losses = [nlp.update(examples, sgd=optimizer)["ner"] for _ in range(12)]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    assert torch.bfloat16 in probe.inner
    assert all(p.dtype == torch.float32 for p in encoder.parameters())
    moved = sum(not torch.equal(p.detach(), before[name]) for name, p in encoder.named_parameters())
    assert moved > 10
    probe.close()
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    shim, encoder = encoder_of(loaded)
    assert shim.cpu_bf16
    probe = DtypeProbe(encoder)
    text = "Anna Berg lives in Paris ."
    reference, doc = nlp(text), loaded(text)
    assert set(probe.inner) == {torch.bfloat16}
    assert [t.tag_ for t in doc] == [t.tag_ for t in reference]
    assert [(e.text, e.label_) for e in doc.ents] == [(e.text, e.label_) for e in reference.ents]
    assert len(loaded("")) == 0


def test_bf16_backend_needs_an_encoder(tmp_path):
    blank = spacy.blank("en")
    blank.to_disk(tmp_path / "blank")
    with pytest.raises(ValueError, match="needs a transformer encoder"):
        load(str(tmp_path / "blank"), Backend.pytorch_bf16)
    source = tmp_path / "in.txt"
    source.write_text("Anna Berg lives in Paris .\n")
    result = CliRunner().invoke(
        app, ["predict", str(tmp_path / "blank"), str(source), "-", "--backend", "pytorch-bf16"]
    )
    assert result.exit_code == 1
    assert "cannot load the pipeline: ValueError: pytorch-bf16 needs a transformer encoder" in result.output


def test_predict_with_the_bf16_backend_writes_the_same_records(tiny_pipeline_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    runner = CliRunner()
    outputs = {}
    for backend in ["pytorch", "pytorch-bf16"]:
        outputs[backend] = tmp_path / f"{backend}.jsonl"
        result = runner.invoke(
            app, ["predict", str(tiny_pipeline_dir), str(source), str(outputs[backend]), "--backend", backend]
        )
        assert result.exit_code == 0, result.output
        assert f"{len(TEXTS)} read, {len(TEXTS)} written, 0 rejected" in result.output
    fp32, bf16 = ([json.loads(line) for line in path.read_text().splitlines()] for path in outputs.values())
    assert [r["id"] for r in bf16] == list(range(len(TEXTS)))
    assert [set(r) for r in bf16] == [set(r) for r in fp32]
    for record, text in zip(bf16, TEXTS):
        for entity in record["entities"]:
            assert text[entity["start_char"] : entity["end_char"]] == entity["text"]


def test_evaluate_takes_the_backend(tiny_pipeline_dir, toy_corpus, tmp_path):
    """`pos-ner evaluate --backend`: the same evaluator over the bfloat16 encoder;
    the metrics name the backend they were measured with."""
    _, dev = toy_corpus
    metrics = {}
    for backend in ["pytorch", "pytorch-bf16"]:
        output = tmp_path / f"{backend}.json"
        arguments = ["evaluate", str(tiny_pipeline_dir), str(dev), "-o", str(output), "--backend", backend]
        result = CliRunner().invoke(app, [*arguments, "--no-case-variants"])
        assert result.exit_code == 0, result.output
        metrics[backend] = json.loads(output.read_text())
    assert metrics["pytorch"]["backend"] == "pytorch" and metrics["pytorch-bf16"]["backend"] == "pytorch-bf16"
    assert metrics["pytorch"]["n_docs"] == metrics["pytorch-bf16"]["n_docs"] > 0
    assert abs(metrics["pytorch"]["token_acc"] - metrics["pytorch-bf16"]["token_acc"]) <= 0.1


def test_without_native_bf16_mixed_precision_keeps_float32(tiny_pipeline_dir, monkeypatch):
    """On a CPU without AVX512-BF16 or AMX, autocast would emulate bfloat16 (slower than
    float32): the pytorch-bf16 backend, and a model trained with mixed precision,
    then run float32 with one warning, and give the float32 pipeline's output."""

    class NoBf16:
        @staticmethod
        def _is_mkldnn_bf16_supported():
            return False

    monkeypatch.setattr(torch.ops, "mkldnn", NoBf16())
    hf_shim.cpu_has_bf16.cache_clear()
    try:
        with pytest.warns(UserWarning, match="no native bfloat16"):
            assert not cpu_has_bf16()
        nlp = load(str(tiny_pipeline_dir), Backend.pytorch_bf16)
        shim, encoder = encoder_of(nlp)
        assert shim._mixed_precision and not shim.cpu_bf16
        probe = DtypeProbe(encoder)
        docs = list(nlp.pipe(TEXTS))
        assert probe.inner and set(probe.inner) == {torch.float32}
        reference = list(load(str(tiny_pipeline_dir), Backend.pytorch).pipe(TEXTS))
        for doc, ref in zip(docs, reference):
            assert [(t.tag_, t.ent_iob_, t.ent_type_) for t in doc] == [(t.tag_, t.ent_iob_, t.ent_type_) for t in ref]
            assert [e._.confidence for e in doc.ents] == pytest.approx([e._.confidence for e in ref.ents], abs=1e-6)
    finally:
        hf_shim.cpu_has_bf16.cache_clear()
