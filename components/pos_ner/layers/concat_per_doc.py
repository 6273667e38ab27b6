"""`concat_per_doc`: two per-doc token representations side by side."""

from typing import Callable, List, Optional, Tuple

from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

InT = List[Doc]
OutT = List[Floats2d]


def concat_per_doc(first: Model[InT, OutT], second: Model[InT, OutT]) -> Model[InT, OutT]:
    """Concatenate two per-doc token representations along the width.

    Unlike thinc's `concatenate`, the backward pass ignores what the
    sublayers return: a transformer listener that is not the pipeline's last
    listener returns None, which `concatenate` cannot add up.
    """
    return Model(
        "concat_per_doc",
        forward,
        layers=[first, second],
        init=init,
        dims={"nO": None},
    )


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    widths = []
    for layer in model.layers:
        layer.initialize(X=X)
        widths.append(layer.get_dim("nO") if layer.has_dim("nO") else None)
    if all(widths):
        model.set_dim("nO", sum(w for w in widths if w))


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable[[OutT], InT]]:
    first, second = model.layers
    vectors, backprop_first = first(docs, is_train)
    features, backprop_second = second(docs, is_train)
    width = vectors[0].shape[1] if vectors else 0
    output = [model.ops.xp.hstack((v, f)) for v, f in zip(vectors, features)]  # type: ignore[attr-defined]

    def backprop(d_output: OutT) -> InT:
        backprop_first([d[:, :width] for d in d_output])
        backprop_second([d[:, width:] for d in d_output])
        return []

    return output, backprop
