"""Where the pipeline's arithmetic runs: PyTorch (the trained spaCy pipeline)
or onnxruntime (the folder `pos-ner export-onnx` wrote, fp32 or int8). Either
way the result is a spaCy `Language` whose Docs carry the same annotations, so
`predict`, `serve` and `annotate` write the same records whatever the backend."""

from enum import Enum
from typing import TYPE_CHECKING, Any

from .onnx import META_FILE as ONNX_META_FILE

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = ["BACKEND_HELP", "ONNX_META_FILE", "Backend", "load"]

# The --backend option's help, for every command that has one.
BACKEND_HELP = "pytorch: the spaCy pipeline; onnx / onnx-int8: its ONNX export (fp32 / int8)"


class Backend(str, Enum):
    pytorch = "pytorch"
    onnx = "onnx"
    onnx_int8 = "onnx-int8"


def load(model: str, backend: Backend = Backend.pytorch, threads: int = 0, **kwargs: Any) -> "Language":
    """`spacy.load(model, **kwargs)` for PyTorch; for the ONNX backends `model`
    is an export folder (`pos_ner.onnx.runtime.onnx_pipeline`, with
    onnxruntime's `threads`, 0: one per core; torch's are the caller's to set)."""
    backend = Backend(backend)
    if backend is Backend.pytorch:
        import spacy

        return spacy.load(model, **kwargs)
    from .onnx.runtime import onnx_pipeline

    return onnx_pipeline(model, quantized=backend is Backend.onnx_int8, threads=threads)
