"""thinc layers of the pos_ner model, one per module."""

from .concat_per_doc import concat_per_doc
from .transitions import transitions_layer

__all__ = ["concat_per_doc", "transitions_layer"]
