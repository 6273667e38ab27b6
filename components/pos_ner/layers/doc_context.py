"""`doc_context`: each token's vector next to the mean vector of its word in the document.

A CNN token vector sees a few tokens on each side; a name is often easier to
tell somewhere else in the same document ("Leicester" alone in a results table,
"Leicester City" or "in Leicester" in the report above). `doc_context(tok2vec)`
gives every token its own vector and, beside it, the mean of the vectors of all
tokens in the document with the same key (by default NORM, so case variants
such as headline capitals share it): width 2 × the input's.
"""

from typing import Callable, List, Optional, Tuple

import numpy
from spacy.attrs import IDS
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

InT = List[Doc]
OutT = List[Floats2d]


def doc_context(tok2vec: Model[InT, OutT], attr: str = "NORM") -> Model[InT, OutT]:
    """`tok2vec`'s vectors, each followed by the document mean of the vectors
    of the tokens that share its `attr` value."""
    if attr not in IDS:
        raise ValueError(f"doc_context: unknown token attribute {attr!r}")
    return Model(
        "doc_context",
        forward,
        layers=[tok2vec],
        init=init,
        dims={"nO": None},
        attrs={"attr": attr},
    )


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    tok2vec = model.layers[0]
    tok2vec.initialize(X=X)
    if tok2vec.has_dim("nO") and tok2vec.get_dim("nO"):
        model.set_dim("nO", 2 * tok2vec.get_dim("nO"))


def groups(doc: Doc, attr: str) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Per token, the index of its group (tokens with equal `attr`), and the size of each group."""
    keys = doc.to_array(attr) if len(doc) else numpy.zeros((0,), dtype="uint64")
    _, index = numpy.unique(keys, return_inverse=True)
    index = index.reshape(-1)
    return index, numpy.bincount(index)


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable[[OutT], InT]]:
    xp = model.ops.xp
    vectors, backprop_tok2vec = model.layers[0](docs, is_train)
    attr = model.attrs["attr"]
    grouping = [groups(doc, attr) for doc in docs]
    output = []
    for X, (index, sizes) in zip(vectors, grouping):
        index_xp = model.ops.asarray1i(index)
        sums = xp.zeros((len(sizes), X.shape[1]), dtype=X.dtype)
        xp.add.at(sums, index_xp, X)
        means = sums / model.ops.asarray2f(sizes.reshape(-1, 1).astype("float32"))
        output.append(xp.hstack((X, means[index_xp])))

    def backprop(d_output: OutT) -> InT:
        d_vectors = []
        for dY, X, (index, sizes) in zip(d_output, vectors, grouping):
            width = X.shape[1]
            index_xp = model.ops.asarray1i(index)
            # d mean_g / d x_i = 1 / |g| for every token i of group g.
            d_sums = xp.zeros((len(sizes), width), dtype=dY.dtype)
            xp.add.at(d_sums, index_xp, dY[:, width:])
            d_sums /= model.ops.asarray2f(sizes.reshape(-1, 1).astype("float32"))
            d_vectors.append(dY[:, :width] + d_sums[index_xp])
        return backprop_tok2vec(d_vectors)

    return output, backprop
