"""pos_ner: a spaCy NER component that embeds the tagger's POS tags next to
transformer token vectors, plus the tools to convert data, train, evaluate,
serve and export it (`python -m pos_ner --help`).

Importing the package registers the `pos_ner` factory and the
`pos_ner.PosNerModel.v1` architecture; spaCy also finds them through the
package's entry points without an import.
"""

from .architectures import build_pos_ner_model
from .decoding import Entity, decode
from .layers import concat_per_doc
from .pipeline_component import CONFIDENCE_ATTR, PosNer, install_extensions, make_pos_ner

__all__ = [
    "CONFIDENCE_ATTR",
    "Entity",
    "PosNer",
    "build_pos_ner_model",
    "concat_per_doc",
    "decode",
    "install_extensions",
    "make_pos_ner",
]
