"""ONNX export of a transformer → tagger → pos_ner pipeline (`export`) and its
onnxruntime counterpart (`runtime.OnnxNer`), checked against PyTorch by `runtime.parity`."""

from ..backends import ONNX_META_FILE as META_FILE
from .runtime import OnnxNer  # noqa: E402

__all__ = ["META_FILE", "OnnxNer"]
