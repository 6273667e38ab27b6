"""`doc_context`: each token's vector next to the mean vector of its word in the document.

A CNN token vector sees a few tokens on each side; a name is often easier to
tell somewhere else in the same document ("Leicester" alone in a results table,
"Leicester City" or "in Leicester" in the report above). `doc_context(tok2vec)`
gives every token its own vector and, beside it, the mean of the vectors of all
tokens in the document with the same key (by default NORM, so case variants
such as headline capitals share it): width 2 × the input's.
"""

from typing import Callable, List, Optional, Tuple, cast

import numpy
from spacy.attrs import IDS
from spacy.tokens import Doc
from thinc.api import Model, Ops
from thinc.types import Floats2d, Ints1d

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
    index = index.reshape(-1).astype("int32")
    return index, numpy.bincount(index).astype("float32").reshape(-1, 1)


def group_means(ops: Ops, X: Floats2d, index: Ints1d, sizes: Floats2d) -> Floats2d:
    """The mean row of `X` per group (`index`: each row's group, `sizes`: rows per group)."""
    sums = ops.alloc2f(sizes.shape[0], X.shape[1], dtype=X.dtype)
    ops.scatter_add(sums, index, X)
    return sums / sizes


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable[[OutT], InT]]:
    ops = model.ops
    vectors, backprop_tok2vec = model.layers[0](docs, is_train)
    attr = model.attrs["attr"]
    grouping = []
    for doc in docs:
        index, sizes = groups(doc, attr)
        grouping.append((ops.asarray1i(cast(Ints1d, index)), ops.asarray2f(cast(Floats2d, sizes))))
    output = [
        ops.xp.hstack((X, group_means(ops, X, index, sizes)[index]))  # type: ignore[attr-defined]
        for X, (index, sizes) in zip(vectors, grouping)
    ]

    def backprop(d_output: OutT) -> InT:
        # d mean_g / d x_i = 1 / |g| for every token i of group g: each token gets its
        # group's mean gradient of the means' columns.
        d_vectors = []
        for dY, X, (index, sizes) in zip(d_output, vectors, grouping):
            width = X.shape[1]
            d_means = group_means(ops, ops.as_contig(dY[:, width:]), index, sizes)
            d_vectors.append(dY[:, :width] + d_means[index])
        return backprop_tok2vec(d_vectors)

    return output, backprop
