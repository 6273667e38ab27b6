"""`pos_ner.numpy_matmul.v1`: thinc's CPU layers multiply matrices with numpy.

thinc's `NumpyOps` multiplies matrices with blis, on one thread; numpy's BLAS
(OpenBLAS) can be faster and can use several threads. Whether it pays off depends
on the CPU: see docs/presets.md, measured in the project's benchmark results. thinc offers this as
`NumpyOps(use_blis=False)`; spaCy has no config setting for a pipeline's ops,
so this callback, named in `[nlp] after_pipeline_creation`, hands that ops
object to every layer of every component that runs on plain `NumpyOps`. GPU
ops and other CPU backends (thinc-apple-ops, ...) are left as they are.

It runs wherever the config is built: `spacy train`, `spacy.load` of the
trained or packaged pipeline, and unpickling.
"""

from typing import Callable

from spacy.language import Language
from spacy.util import registry
from thinc.api import Model, NumpyOps


@registry.callbacks("pos_ner.numpy_matmul.v1")
def create_numpy_matmul() -> Callable[[Language], Language]:
    return use_numpy_matmul


def use_numpy_matmul(nlp: Language) -> Language:
    """Give every plain-`NumpyOps` layer of `nlp`'s components `NumpyOps(use_blis=False)`."""
    ops = NumpyOps(use_blis=False)
    for _, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        if not isinstance(model, Model):
            continue
        for node in model.walk():
            if type(node.ops) is NumpyOps:
                node.ops = ops
    return nlp
