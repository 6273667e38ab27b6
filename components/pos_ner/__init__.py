"""pos_ner: a spaCy NER component that embeds the tagger's POS tags next to
transformer token vectors, plus the tools to convert data, train, evaluate,
serve and export it (`python -m pos_ner --help`).

Importing the package registers the `pos_ner` factory, the
`pos_ner.PosNerModel.v1` and `pos_ner.TransformerModel.v1` architectures and
the `pos_ner.Corpus.v1` reader and the `pos_ner.numpy_matmul.v1` callback; spaCy finds them, and the
`pos_ner.wordpiece_windows.v1` span getter (`pos_ner.span_getters`, which needs
spacy-transformers), through the package's entry points without an import.
"""

from .architectures import build_pos_ner_model, build_transformer_model
from .corpus import create_corpus_reader
from .cpu_ops import use_numpy_matmul
from .decoding import Calibration, Entity, decode
from .layers import concat_per_doc
from .pipeline_component import CONFIDENCE_ATTR, PosNer, install_extensions, make_pos_ner
from .thresholds import LOW_CONFIDENCE_KEY, Thresholds, apply_thresholds

__all__ = [
    "CONFIDENCE_ATTR",
    "LOW_CONFIDENCE_KEY",
    "Calibration",
    "Entity",
    "PosNer",
    "Thresholds",
    "apply_thresholds",
    "build_pos_ner_model",
    "build_transformer_model",
    "create_corpus_reader",
    "concat_per_doc",
    "decode",
    "install_extensions",
    "make_pos_ner",
    "use_numpy_matmul",
]
