"""Export a trained transformer → tagger → pos_ner pipeline to one ONNX graph.

The graph takes the wordpiece windows (input_ids, attention_mask, and
token_type_ids where the tokenizer makes them) plus, per spaCy token, the
indices and weights of its wordpieces (spacy-transformers' reduce_mean
alignment, built in Python by `pos_ner.onnx.runtime`). It runs the encoder,
mean-pools the token vectors, predicts the POS tags, embeds the token features
(the component's MultiHashEmbed: hashed embedding tables, Maxout, LayerNorm)
and returns the NER probabilities. The TAG feature comes from the predicted
tags inside the graph; the hashed rows of the other attributes (SHAPE, IS_TITLE,
...) are computed by the runtime from the spaCy tokens with thinc's own hash and
passed in as `feature_rows`. Tokenization and Viterbi decoding stay in Python
(OnnxNer).

OUTPUT_DIR gets model.onnx (model.int8.onnx with --quantize), the Hugging Face
tokenizer, the spaCy tokenizer and onnx_meta.json.
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union, cast

import numpy
import spacy
import torch
from spacy.language import Language
from spacy.pipeline import Tagger
from spacy.tokenizer import Tokenizer
from spacy_transformers import Transformer

from ..pipeline_component import PosNer
from ..windows import STRIDED_SPANS, WORDPIECE_WINDOWS, encoder_max_length
from . import META_FILE
from .runtime import hash_rows

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
# Span getters whose windows pos_ner.onnx.runtime reproduces.
SPAN_GETTERS = (WORDPIECE_WINDOWS, STRIDED_SPANS)
REDUCE_MEAN = "reduce_mean.v1"


class FeatureEmbed(torch.nn.Module):
    """spaCy's MultiHashEmbed at inference: per attribute, the sum of the
    embedding rows its hash keys select; the attributes concatenated, then
    Maxout and LayerNorm."""

    def __init__(self, params: Dict[str, Any]):
        super().__init__()
        self.attrs = list(params["attrs"])
        self.tables = torch.nn.ParameterList(torch.nn.Parameter(torch.from_numpy(E)) for E in params["tables"])
        self.tag_rows = torch.nn.Parameter(torch.from_numpy(params["tag_rows"]), requires_grad=False)
        self.W, self.b = (torch.nn.Parameter(torch.from_numpy(params[k])) for k in ("W", "b"))
        self.G, self.shift = (torch.nn.Parameter(torch.from_numpy(params[k])) for k in ("G", "shift"))

    def forward(self, tag_ids, feature_rows):
        parts, column = [], 0
        for attr, table in zip(self.attrs, self.tables):
            if attr == "TAG":
                rows = self.tag_rows[tag_ids]
            else:
                rows = feature_rows[:, column, :]
                column += 1
            parts.append(table[rows].sum(dim=1))
        X = torch.cat(parts, dim=-1)
        n_out, n_pieces, n_in = self.W.shape
        Y = X @ self.W.reshape(n_out * n_pieces, n_in).T + self.b.reshape(n_out * n_pieces)
        Z = Y.reshape(-1, n_out, n_pieces).max(dim=-1).values
        mean = Z.mean(dim=-1, keepdim=True)
        var = ((Z - mean) ** 2).mean(dim=-1, keepdim=True) + 1e-08
        return (Z - mean) * torch.rsqrt(var) * self.G + self.shift


class NerGraph(torch.nn.Module):
    """Encoder → mean-pooled token vectors → tagger logits → argmax tag →
    feature embedding (predicted TAG and the runtime's hashed attributes) →
    NER softmax."""

    def __init__(self, encoder, tagger: Tuple, ner: Tuple, features: Optional[Dict[str, Any]]):
        super().__init__()
        self.encoder = encoder
        self.tag_W, self.tag_b = (torch.nn.Parameter(torch.from_numpy(x)) for x in tagger)
        self.ner_W, self.ner_b = (torch.nn.Parameter(torch.from_numpy(x)) for x in ner[:2])
        self.temperature = ner[2]
        self.features = None if features is None else FeatureEmbed(features)

    def forward(self, input_ids, attention_mask, pool_index, pool_weight, token_type_ids=None, feature_rows=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        flat = hidden.reshape(-1, hidden.shape[-1])
        vectors = (flat[pool_index] * pool_weight.unsqueeze(-1)).sum(dim=1)
        tag_scores = vectors @ self.tag_W.T + self.tag_b
        tag_ids = tag_scores.argmax(dim=-1)
        if self.features is not None:
            vectors = torch.cat([vectors, self.features(tag_ids, feature_rows)], dim=-1)
        ner_probs = torch.softmax((vectors @ self.ner_W.T + self.ner_b) / self.temperature, dim=-1)
        return tag_ids, tag_scores, ner_probs


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"cannot export to ONNX: {message}")


def find_pipes(nlp: Language) -> Dict[str, str]:
    """The names of the transformer, tagger and pos_ner components."""
    by_factory = {nlp.get_pipe_meta(name).factory: name for name in nlp.pipe_names}
    for factory in ("transformer", "tagger", "pos_ner"):
        require(factory in by_factory, f"the pipeline has no {factory!r} component (it has {nlp.pipe_names})")
    return {"transformer": by_factory["transformer"], "tagger": by_factory["tagger"], "ner": by_factory["pos_ner"]}


def check_config(nlp: Language, names: Dict[str, str]) -> List[str]:
    """Check that the pipeline is one the graph reproduces; returns the ner features."""
    components = nlp.config["components"]
    spans = components[names["transformer"]]["model"]["get_spans"]
    require(spans.get("@span_getters") in SPAN_GETTERS, f"get_spans must be one of {SPAN_GETTERS}, not {spans}")
    for name in (names["tagger"], names["ner"]):
        tok2vec = components[name]["model"]["tok2vec"]
        require(
            tok2vec.get("@architectures", "").startswith("spacy-transformers.TransformerListener"),
            f"{name!r} must listen to the transformer",
        )
        require(tok2vec["pooling"].get("@layers") == REDUCE_MEAN, f"{name!r} pooling must be {REDUCE_MEAN}")
    ner_model = components[names["ner"]]["model"]
    require(not ner_model.get("doc_context", False), "the graph has no document context (doc_context = true)")
    features = list(ner_model["features"]) if ner_model["feature_width"] > 0 else []
    # The runtime rebuilds the Docs with a saved spaCy Tokenizer.
    require(isinstance(nlp.tokenizer, Tokenizer), "the pipeline must use spaCy's rule-based tokenizer")
    return features


def softmax_params(layer) -> Tuple[numpy.ndarray, numpy.ndarray]:
    W, b = (numpy.ascontiguousarray(layer.ops.to_numpy(layer.get_param(p)), dtype="float32") for p in "Wb")
    return W, b


def feature_params(nlp: Language, ner, features: List[str], tag_labels: List[str]) -> Dict[str, Any]:
    """The weights of the ner model's feature embedding (MultiHashEmbed), the
    hashed rows of each tagger label, and per non-TAG attribute the seed and
    table size the runtime hashes with."""
    embed = ner.model.get_ref("features")
    hash_embeds = sorted((n for n in embed.walk() if n.name == "hashembed"), key=lambda n: n.attrs["column"])
    maxouts = [n for n in embed.walk() if n.name == "maxout"]
    norms = [n for n in embed.walk() if n.name == "layernorm"]
    require(
        len(hash_embeds) == len(features) and len(maxouts) == 1 and len(norms) == 1,
        f"the feature embedding is not spaCy's MultiHashEmbed without static vectors ({embed.name})",
    )
    to_numpy = embed.ops.to_numpy

    def param(node, name):
        return numpy.ascontiguousarray(to_numpy(node.get_param(name)), dtype="float32")

    tag_index = features.index("TAG") if "TAG" in features else None
    tag_keys = numpy.asarray([nlp.vocab.strings[label] for label in tag_labels], dtype="uint64")
    tag_rows = numpy.zeros((len(tag_labels), 4), dtype="int64")
    if tag_index is not None:
        node = hash_embeds[tag_index]
        tag_rows = hash_rows(tag_keys, node.attrs["seed"], node.get_dim("nV"))
    return {
        "attrs": features,
        "tables": [param(node, "E") for node in hash_embeds],
        "tag_rows": tag_rows,
        "W": param(maxouts[0], "W"),
        "b": param(maxouts[0], "b"),
        "G": param(norms[0], "G"),
        "shift": param(norms[0], "b"),
        "hashed": [
            {"attr": attr, "seed": node.attrs["seed"], "rows": node.get_dim("nV")}
            for attr, node in zip(features, hash_embeds)
            if attr != "TAG"
        ],
    }


FORWARD_INPUTS = ("input_ids", "attention_mask", "pool_index", "pool_weight", "token_type_ids", "feature_rows")


def sample_inputs(vocab_size: int, token_types: bool, n_hashed: int) -> Tuple:
    """Example inputs for tracing, in NerGraph.forward's order (None for an
    input the graph does without); every dynamic axis has a distinct size > 1."""
    windows, length, tokens, pieces = 2, 9, 5, 3
    input_ids = torch.randint(0, vocab_size, (windows, length))
    mask = torch.ones(windows, length, dtype=torch.int64)
    mask[1, 6:] = 0
    pool_index = torch.randint(0, windows * length, (tokens, pieces))
    pool_weight = torch.full((tokens, pieces), 1.0 / pieces)
    token_type_ids = torch.zeros_like(input_ids) if token_types else None
    feature_rows = torch.randint(0, 2, (tokens, n_hashed, 4)) if n_hashed else None
    return input_ids, mask, pool_index, pool_weight, token_type_ids, feature_rows


def export(
    model: Union[str, Language], output_dir: Path, opset: int = 18, quantize: bool = False, source: Optional[str] = None
) -> Dict:
    """Export `model` (a pipeline's directory or package, or the loaded
    pipeline) to `output_dir`; returns the meta. `source` names the pipeline
    in the meta (default: `model` when it is a name). `output_dir` is written
    in place: the CLI passes a temporary folder (`pos_ner.io.files.atomic_dir`)
    so a failed export never leaves a half-written model where a good one was."""
    nlp = spacy.load(model) if isinstance(model, str) else model
    if source is None:
        source = model if isinstance(model, str) else f"{nlp.meta.get('lang')}_{nlp.meta.get('name')}"
    names = find_pipes(nlp)
    features = check_config(nlp, names)
    trf = cast(Transformer, nlp.get_pipe(names["transformer"]))
    tagger = cast(Tagger, nlp.get_pipe(names["tagger"]))
    ner = cast(PosNer, nlp.get_pipe(names["ner"]))
    # spacy-transformers sets both attributes on its model (TransformerModel.v3).
    tokenizer, encoder = trf.model.tokenizer, trf.model.transformer  # type: ignore[attr-defined]
    require(tokenizer.is_fast, "the Hugging Face tokenizer must be a fast tokenizer (offset mapping)")
    tag_labels = list(tagger.labels)
    params = feature_params(nlp, ner, features, tag_labels) if features else None
    hashed = params["hashed"] if params else []
    ner_layer = ner.model.get_ref("output_layer")
    graph = NerGraph(
        encoder.cpu().eval(),
        softmax_params(tagger.model.get_ref("output_layer")),
        (*softmax_params(ner_layer), float(ner_layer.attrs["softmax_temperature"])),
        params,
    ).eval()
    token_types = "token_type_ids" in tokenizer.model_input_names
    args = sample_inputs(encoder.config.vocab_size, token_types, len(hashed))
    input_names = [name for name, value in zip(FORWARD_INPUTS, args) if value is not None]
    windows, wordpieces = torch.export.Dim("windows"), torch.export.Dim("wordpieces")
    tokens, pieces = torch.export.Dim("tokens"), torch.export.Dim("pieces")
    axes = {
        **{name: {0: windows, 1: wordpieces} for name in ("input_ids", "attention_mask", "token_type_ids")},
        **{name: {0: tokens, 1: pieces} for name in ("pool_index", "pool_weight")},
        "feature_rows": {0: tokens},
    }
    shapes = tuple(axes[name] if value is not None else None for name, value in zip(FORWARD_INPUTS, args))
    output_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            graph,
            args,
            str(output_dir / MODEL_FILE),
            input_names=input_names,
            output_names=["tag_ids", "tag_scores", "ner_probs"],
            dynamic_shapes=shapes,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel weight scales: they keep more of the fp32 model's entities than per-tensor ones
        # (measured in the project's benchmarks; parity: docs/onnx.md).
        quantize_dynamic(
            str(output_dir / MODEL_FILE), str(output_dir / INT8_FILE), weight_type=QuantType.QInt8, per_channel=True
        )
    tokenizer.save_pretrained(str(output_dir / "hf_tokenizer"))
    cast(Tokenizer, nlp.tokenizer).to_disk(output_dir / "spacy_tokenizer")
    spans = nlp.config["components"][names["transformer"]]["model"]["get_spans"]
    meta = {
        "source": str(source),
        # the source pipeline's, for onnx_pipeline's meta (and so the service's /health)
        "name": nlp.meta.get("name", ""),
        "version": str(nlp.meta.get("version", "")),
        "spacy_version": str(nlp.meta.get("spacy_version", "")),
        "lang": nlp.lang,
        "labels": list(ner.labels),
        "ner_tags": ner.tag_names,
        # The learned transition scores the decoder adds (pos_ner's `transitions = true`), or null.
        "ner_transitions": None if ner.transitions is None else ner.transitions.tolist(),
        # How ent._.confidence is computed (pos-ner calibrate), and which entities leave doc.ents.
        "calibration": ner.calibration.to_dict(),
        "min_confidence": ner.thresholds.to_value(),
        "tagger_labels": tag_labels,
        "features": features,
        # Per attribute other than TAG, in feature_rows' order: thinc's hash seed and table size.
        "hashed_features": hashed,
        "span_getter": spans["@span_getters"],
        "window": spans["window"],
        "stride": spans["stride"],
        "sentences": bool(spans.get("sentences", False)),
        "max_length": encoder_max_length(tokenizer, encoder),
        "inputs": input_names,
        "hf_tokenizer": "hf_tokenizer",
        "tokenizer_config": dict(nlp.config["components"][names["transformer"]]["model"]["tokenizer_config"]),
        "spacy_tokenizer": "spacy_tokenizer",
        "opset": opset,
        "models": {"fp32": MODEL_FILE, **({"int8": INT8_FILE} if quantize else {})},
    }
    # Written last: an export folder with its meta file is a complete one.
    (output_dir / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf8")
    return meta
