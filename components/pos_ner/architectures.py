"""The registered model architecture of the `pos_ner` component."""

from typing import Callable, List, Optional

from spacy.ml.models import MultiHashEmbed
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Config, Model, Softmax_v2, chain, glorot_uniform_init, with_array
from thinc.types import Floats2d

from .layers import concat_per_doc, doc_context_layer, transitions_layer

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "pos_ner.PosNerModel.v1"
features = ["TAG","SHAPE"]
feature_width = 64
feature_rows = 200
transitions = false
transition_rate = 50.0
doc_context = false

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]


@registry.architectures("pos_ner.PosNerModel.v1")
def build_pos_ner_model(
    tok2vec: Model[List[Doc], List[Floats2d]],
    features: List[str],
    feature_width: int,
    feature_rows: int,
    transitions: bool = False,
    transition_rate: float = 50.0,
    doc_context: bool = False,
    nO: Optional[int] = None,
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors from `tok2vec`, concatenated with an embedding of the
    token attributes in `features` (e.g. TAG, SHAPE), go through a softmax over
    BIO tags. `feature_width = 0` or no features leaves the embedding out.
    `transitions = true` adds learned scores for each step between two tags,
    trained with a CRF loss and used by the decoder (`pos_ner.layers.transitions`);
    false: the softmax's cross-entropy, and only the allowed/forbidden steps.
    The transition scores move `transition_rate` times faster than the other
    weights (see `pos_ner.layers.transitions`). `doc_context = true` puts next
    to each token vector the mean vector of the tokens with the same NORM in the
    document (`pos_ner.layers.doc_context`), before the feature embedding.

    Named refs: "tok2vec" (what feeds the softmax), "features" (the feature
    embedding, when there is one), "output_layer" (the softmax) and
    "transitions" (with `transitions = true`).

    The softmax weights start random, not at zero as in spaCy's tagger: a zero
    output layer passes no gradient back, so the encoder would learn only the
    tagger's objective until the weights grow (measured in the project's benchmark results)."""
    if doc_context:
        tok2vec = doc_context_layer(tok2vec)
    embed = None
    if feature_width > 0 and features:
        embed = MultiHashEmbed(
            width=feature_width,
            attrs=features,
            rows=[feature_rows] * len(features),
            include_static_vectors=False,
        )
        tok2vec = concat_per_doc(tok2vec, embed)
    output = Softmax_v2(nO, init_W=glorot_uniform_init)
    model: Model[List[Doc], List[Floats2d]] = chain(tok2vec, with_array(output))
    if transitions:
        steps = transitions_layer(nO, transition_rate)
        model = chain(model, steps)
        model.set_ref("transitions", steps)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output)
    if embed is not None:
        model.set_ref("features", embed)
    return model


@registry.architectures("pos_ner.TransformerModel.v1")
def build_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: dict = {},  # noqa: B006  (as in TransformerModel.v3; never mutated)
    transformer_config: dict = {},  # noqa: B006
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},  # noqa: B006
    max_group_wordpieces: int = 0,
) -> Model:
    """spacy-transformers' `TransformerModel.v3`, with a
    `pos_ner.wordpiece_windows.v1` span getter connected to the model's own
    tokenizer, so that windows are bounded in wordpieces (see
    `pos_ner.span_getters`). Any other span getter works as in v3. Parameter
    averages (`use_averages`) reach the encoder's weights, which v3's do not, and
    `mixed_precision` autocasts to bfloat16 on the CPU, where v3's autocast, made
    for CUDA, does nothing (`pos_ner.layers.hf_shim`).

    With `max_group_wordpieces` > 0 the windows run at prediction in groups of
    similar length, each padded to its own longest and of at most that many padded
    positions (0: one padded batch, as in v3); see `pos_ner.layers.length_groups`."""
    # Imported here: spacy-transformers imports torch, which the ONNX runtime does without.
    from spacy_transformers.layers import TransformerModel

    from .layers.hf_shim import install_shim
    from .layers.length_groups import GroupedByLength
    from .span_getters import WordpieceWindows

    model = TransformerModel(name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config)
    # Averages and mixed precision that reach the encoder (see pos_ner.layers.hf_shim).
    install_shim(model)
    if max_group_wordpieces > 0:
        # thinc has no hook for this: the wrapper layer's forward is swapped for one that calls it per group.
        wrapper = model.layers[0]
        wrapper._func = GroupedByLength(wrapper._func, max_group_wordpieces)
    if isinstance(get_spans, WordpieceWindows):
        get_spans.bind(model)
    return model
