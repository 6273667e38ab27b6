"""ONNX export of a transformer → tagger → pos_ner pipeline (`export`) and its
onnxruntime counterpart (`runtime.OnnxNer`), checked against PyTorch by `runtime.parity`."""

META_FILE = "onnx_meta.json"

from .runtime import OnnxNer  # noqa: E402

__all__ = ["META_FILE", "OnnxNer"]
