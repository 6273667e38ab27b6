"""The `pos_ner_onnx` factory: an ONNX export (`pos-ner export-onnx`) as a spaCy
pipeline component (`pos_ner.onnx.runtime.OnnxNerPipe`).

spaCy imports every `spacy_factories` entry point whenever a `Language` is made,
so this module imports only spaCy at its top: onnxruntime and the runtime are
imported when a component is made, and only then need the `onnx` extra."""

from typing import TYPE_CHECKING

from spacy.language import Language

if TYPE_CHECKING:
    from .onnx.runtime import OnnxNerPipe


@Language.factory(
    "pos_ner_onnx",
    assigns=["token.tag", "doc.ents", "span._.confidence"],
    default_config={"path": "", "quantized": False, "threads": 0, "memory_arena": True, "memory_pattern": False},
)
def make_onnx_pipe(
    nlp: Language, name: str, path: str, quantized: bool, threads: int, memory_arena: bool, memory_pattern: bool
) -> "OnnxNerPipe":
    """The component of `onnx_pipeline`; `path` is the folder `pos-ner export-onnx` wrote."""
    from .onnx.runtime import OnnxNer, OnnxNerPipe

    ner = OnnxNer(path, quantized, threads, vocab=nlp.vocab, memory_arena=memory_arena, memory_pattern=memory_pattern)
    return OnnxNerPipe(ner, name)
