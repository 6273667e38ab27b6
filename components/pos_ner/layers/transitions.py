"""Learned transition scores between BIO tags, and the CRF loss that trains them.

`transitions_layer()` passes the per-token probabilities through unchanged and
holds the scores (tags × tags) added to a step from tag i to tag j within a
sentence (`scores(layer)`), stored as the parameter "W" divided by the layer's
`rate`: Adam moves every weight by about the learning rate per step whatever its
gradient, so at the encoder's fine-tuning rate (2e-4) scores of the size that
matter (units of log-probability) would take thousands of steps; stored this way
they move `rate` times faster than the other weights.

The loss (`crf_loss`) is the negative log-likelihood of the gold tags under the
linear-chain model whose token scores are the log-probabilities and whose steps
are `pos_ner.decoding.lattice`: the lattice the constrained Viterbi decodes, so
training and decoding score the same paths. Tokens without a gold tag are
marginalised out.
"""

from typing import List, Optional, Sequence, Tuple, cast

import numpy
from thinc.api import Model, zero_init
from thinc.types import Floats2d

from ..decoding import lattice


def transitions_layer(nO: Optional[int] = None, rate: float = 1.0) -> Model[List[Floats2d], List[Floats2d]]:
    """An identity layer that holds transition scores (nO × nO, zeros at the
    start, so decoding starts as without them), trained through `add_gradient`
    by the loss."""
    if rate <= 0:
        raise ValueError(f"transition_rate must be > 0, got {rate}")
    return Model("transitions", forward, init=init, dims={"nO": nO}, params={"W": None}, attrs={"rate": rate})


def scores(layer: Model) -> numpy.ndarray:
    """The transition scores of a `transitions_layer` (numpy, tags × tags)."""
    return layer.ops.to_numpy(layer.get_param("W")) * layer.attrs["rate"]


def add_gradient(layer: Model, d_scores: numpy.ndarray) -> None:
    """Add the loss's gradient with respect to the scores to the layer's parameter."""
    d_param = (d_scores * layer.attrs["rate"]).astype("float32")
    layer.inc_grad("W", layer.ops.asarray2f(cast(Floats2d, d_param)))


def forward(model: Model, X: List[Floats2d], is_train: bool):
    return X, lambda dY: dY


def init(model: Model, X=None, Y=None) -> None:
    n = model.get_dim("nO")
    model.set_param("W", zero_init(model.ops, (n, n)))


def _logsumexp(x: numpy.ndarray, axis: int) -> numpy.ndarray:
    top = numpy.max(x, axis=axis, keepdims=True)
    top = numpy.where(numpy.isfinite(top), top, 0.0)
    with numpy.errstate(divide="ignore"):
        return numpy.squeeze(top, axis=axis) + numpy.log(numpy.sum(numpy.exp(x - top), axis=axis))


def _marginals(
    emit: numpy.ndarray, steps: numpy.ndarray, first: numpy.ndarray
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Forward-backward over lattices that share `steps` (L × tags × tags; step
    t goes from token t-1 to t) and `first`, one per row of `emit` (B × L ×
    tags, -inf where a tag is ruled out). Returns log Z (B), the token marginals
    (B × L × tags) and the step marginals (B × L × tags × tags, row 0 zero)."""
    n_rows, length, _ = emit.shape
    alpha = numpy.empty_like(emit)
    beta = numpy.zeros_like(emit)
    alpha[:, 0] = first + emit[:, 0]
    for t in range(1, length):
        alpha[:, t] = _logsumexp(alpha[:, t - 1, :, None] + steps[t], axis=1) + emit[:, t]
    for t in range(length - 2, -1, -1):
        beta[:, t] = _logsumexp(steps[t + 1] + (emit[:, t + 1] + beta[:, t + 1])[:, None, :], axis=2)
    log_z = _logsumexp(alpha[:, -1], axis=1)
    pair = numpy.zeros((n_rows, length, *steps.shape[1:]))
    # A row whose lattice rules every path out has log Z = -inf and NaN
    # marginals; `crf_loss` does not use them.
    with numpy.errstate(invalid="ignore"):
        token = numpy.exp(alpha + beta - log_z[:, None, None])
        if length > 1:
            pair[:, 1:] = numpy.exp(
                alpha[:, :-1, :, None]
                + steps[None, 1:]
                + (emit[:, 1:] + beta[:, 1:])[:, :, None, :]
                - log_z[:, None, None, None]
            )
    return log_z, token, pair


def crf_loss(
    log_probs: Sequence[numpy.ndarray],
    gold: Sequence[Sequence[Optional[int]]],
    sent_starts: Sequence[Sequence[bool]],
    names: Sequence[str],
    transitions: numpy.ndarray,
) -> Tuple[float, List[numpy.ndarray], numpy.ndarray]:
    """The summed negative log-likelihood of the `gold` tag ids (None: unknown)
    of each doc, its gradient with respect to each doc's token scores (tokens ×
    tags), and with respect to `transitions`. Token scores are log-probabilities
    of a softmax: the gradient with respect to them is also the gradient with
    respect to the softmax's inputs, as thinc's Softmax backprop expects.

    A doc whose gold path the lattice rules out (an I-X with no X before it, an
    entity across a sentence start) gets the cross-entropy gradient instead of
    the CRF's, so one odd annotation does not end training with an infinite loss."""
    within, first = lattice(tuple(names), transitions)
    n_tags = len(names)
    total = 0.0
    d_scores: List[numpy.ndarray] = []
    d_transitions = numpy.zeros((n_tags, n_tags))
    for scores, tags, starts in zip(log_probs, gold, sent_starts):
        scores = numpy.asarray(scores, dtype=numpy.float64)
        length = len(scores)
        if length == 0:
            d_scores.append(numpy.zeros((0, n_tags)))
            continue
        is_start = numpy.asarray(starts, dtype=bool)
        steps = numpy.where(is_start[:, None, None], first[None, None, :], within[None])
        known = numpy.array([tag is not None for tag in tags], dtype=bool)
        ruled_out = numpy.zeros((length, n_tags), dtype=bool)
        ids = numpy.array([tag for tag in tags if tag is not None], dtype=numpy.int64)
        ruled_out[known] = True
        ruled_out[numpy.flatnonzero(known), ids] = False
        emit = numpy.stack([scores, numpy.where(ruled_out, -numpy.inf, scores)])
        log_z, token, pair = _marginals(emit, steps, first)
        if not numpy.isfinite(log_z[1]):
            truth = numpy.zeros((length, n_tags))
            truth[numpy.flatnonzero(known), ids] = 1.0
            probs = numpy.exp(scores)
            d_scores.append(numpy.where(known[:, None], probs - truth, 0.0))
            total += float(-scores[numpy.flatnonzero(known), ids].sum())
            continue
        total += float(log_z[0] - log_z[1])
        d_scores.append(token[0] - token[1])
        inside = ~is_start
        inside[0] = False
        d_transitions += (pair[0, inside] - pair[1, inside]).sum(axis=0)
    return total, d_scores, d_transitions
