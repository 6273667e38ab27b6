"""`pos_ner.Adam.v1`: thinc's Adam, with the learning rate of the layers on top of
the encoder (heads, feature embeddings, transition scores) scaled by `head_rate`.

A fine-tuned encoder wants a small rate; the randomly initialised layers on top
of it learn faster with a larger one. thinc's `Optimizer` takes one schedule for
every weight but a per-call `lr_scale`, and it is called once per parameter with
a key: `(node.id, name)` for a thinc layer's parameter, named like "W" or "b",
and `(shim.id, name)` for a PyTorch parameter, named by `named_parameters()`
with the module path ("embeddings.word_embeddings.weight"). The dot tells the two
apart; a PyTorch model with a parameter at its top level (no dot) would be
counted as a head, which no Hugging Face encoder has.
"""

from typing import Tuple, cast

from thinc.api import Optimizer, registry
from thinc.optimizers import ADAM_DEFAULTS, FloatOrSeq
from thinc.types import FloatsXd


def is_head_key(key: Tuple[int, str]) -> bool:
    """True for the key of a thinc layer's parameter, False for a PyTorch one."""
    return "." not in key[1]


class HeadRateOptimizer(Optimizer):
    """thinc's `Optimizer`, stepping thinc layers' weights with `head_rate`
    times the learning rate and PyTorch weights with the learning rate."""

    def __init__(self, *args, head_rate: float = 1.0, **kwargs) -> None:
        if head_rate <= 0:
            raise ValueError(f"head_rate must be > 0, got {head_rate}")
        super().__init__(*args, **kwargs)
        self.head_rate = head_rate

    def __call__(self, key: Tuple[int, str], weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0):
        if is_head_key(key):
            lr_scale *= self.head_rate
        return super().__call__(key, weights, gradient, lr_scale=lr_scale)


@registry.optimizers("pos_ner.Adam.v1")
def adam_with_head_rate(
    learn_rate: FloatOrSeq = ADAM_DEFAULTS["learn_rate"],
    *,
    head_rate: float = 1.0,
    L2: FloatOrSeq = ADAM_DEFAULTS["L2"],
    beta1: FloatOrSeq = ADAM_DEFAULTS["beta1"],
    beta2: FloatOrSeq = ADAM_DEFAULTS["beta2"],
    eps: FloatOrSeq = ADAM_DEFAULTS["eps"],
    grad_clip: FloatOrSeq = ADAM_DEFAULTS["grad_clip"],
    L2_is_weight_decay: bool = cast(bool, ADAM_DEFAULTS["L2_is_weight_decay"]),
    use_averages: bool = True,
) -> HeadRateOptimizer:
    """thinc's `Adam.v1`, with its arguments and defaults, plus `head_rate`."""
    return HeadRateOptimizer(
        learn_rate,
        head_rate=head_rate,
        L2=L2,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        grad_clip=grad_clip,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
        use_radam=False,
    )
