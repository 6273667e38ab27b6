"""thinc layers of the pos_ner model, one per module."""

from .concat_per_doc import concat_per_doc

__all__ = ["concat_per_doc"]
