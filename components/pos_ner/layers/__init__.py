"""thinc layers of the pos_ner model, one per module."""

from .concat_per_doc import concat_per_doc
from .doc_context import doc_context as doc_context_layer
from .transitions import transitions_layer

__all__ = ["concat_per_doc", "doc_context_layer", "transitions_layer"]
