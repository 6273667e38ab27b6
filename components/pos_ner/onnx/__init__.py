"""ONNX export of a transformer → tagger → pos_ner pipeline (`export`) and its
onnxruntime counterpart (`runtime.OnnxNer`), checked against PyTorch by `runtime.parity`.

`OnnxNer` is imported on first use, so that naming `META_FILE` (as the CLI's
backend checks do) does not load onnxruntime."""

from typing import TYPE_CHECKING, Any

# What `pos-ner export-onnx` writes last into an export folder.
META_FILE = "onnx_meta.json"

if TYPE_CHECKING:
    from .runtime import OnnxNer


def __getattr__(name: str) -> Any:
    if name == "OnnxNer":
        from .runtime import OnnxNer

        return OnnxNer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["META_FILE", "OnnxNer"]
