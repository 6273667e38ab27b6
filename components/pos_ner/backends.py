"""Where the pipeline's arithmetic runs: PyTorch (the trained spaCy pipeline,
in float32, or with its encoder in mixed precision: bfloat16 on the CPU) or
onnxruntime (the folder `pos-ner export-onnx` wrote, fp32 or int8). Either way
the result is a spaCy `Language` whose Docs carry the same annotations, so
`predict`, `serve`, `annotate` and `evaluate` write the same records whatever
the backend."""

from enum import Enum
from typing import TYPE_CHECKING, Any

from .onnx import META_FILE as ONNX_META_FILE

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = ["BACKEND_HELP", "ONNX_META_FILE", "Backend", "load"]

# The --backend option's help, for every command that has one.
BACKEND_HELP = (
    "pytorch: the spaCy pipeline; pytorch-bf16: the same with its encoder in bfloat16 mixed precision;"
    " onnx / onnx-int8: its ONNX export (fp32 / int8)"
)


class Backend(str, Enum):
    pytorch = "pytorch"
    pytorch_bf16 = "pytorch-bf16"
    onnx = "onnx"
    onnx_int8 = "onnx-int8"

    @property
    def is_onnx(self) -> bool:
        """Whether MODEL is an export folder (`pos-ner export-onnx`), not a spaCy pipeline."""
        return self in (Backend.onnx, Backend.onnx_int8)


def load(model: str, backend: Backend = Backend.pytorch, threads: int = 0, **kwargs: Any) -> "Language":
    """`spacy.load(model, **kwargs)` for PyTorch (pytorch-bf16: with mixed
    precision switched on for its encoders, `pos_ner.layers.hf_shim`); for the
    ONNX backends `model` is an export folder (`pos_ner.onnx.runtime.onnx_pipeline`,
    with onnxruntime's `threads`, 0: one per core; torch's are the caller's to set)."""
    backend = Backend(backend)
    if not backend.is_onnx:
        import spacy

        nlp = spacy.load(model, **kwargs)
        if backend is Backend.pytorch_bf16:
            from .layers.hf_shim import set_mixed_precision

            if not set_mixed_precision(nlp, True):
                raise ValueError("pytorch-bf16 needs a transformer encoder; this pipeline has none")
        return nlp
    from .onnx.runtime import onnx_pipeline

    return onnx_pipeline(model, quantized=backend is Backend.onnx_int8, threads=threads)
