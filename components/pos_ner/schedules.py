"""A learning-rate schedule that survives `pickle`.

thinc 8.3's schedules are generators, and a thinc `Optimizer` keeps them, so a
pipeline that holds its optimizer after `nlp.initialize()` (every pipeline
trained in a script or notebook) cannot be pickled: `TypeError: cannot pickle
'generator' object`. `pos_ner.warmup_linear.v1` yields the same rates as
thinc's `warmup_linear.v1` from an iterator object that pickles with its step.
"""

from thinc.api import registry


class WarmupLinear:
    """Linear warmup from 0 to `initial_rate` over `warmup_steps`, then a linear
    decline to 0 at `total_steps` (and 0 after it)."""

    def __init__(self, initial_rate: float, warmup_steps: int, total_steps: int) -> None:
        self.initial_rate = initial_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.step = 0

    def __iter__(self) -> "WarmupLinear":
        return self

    def __next__(self) -> float:
        step, self.step = self.step, self.step + 1
        if step < self.warmup_steps:
            factor = step / max(1, self.warmup_steps)
        else:
            factor = max(0.0, (self.total_steps - step) / max(1.0, self.total_steps - self.warmup_steps))
        return factor * self.initial_rate


@registry.schedules("pos_ner.warmup_linear.v1")
def warmup_linear(initial_rate: float, warmup_steps: int, total_steps: int) -> WarmupLinear:
    return WarmupLinear(initial_rate, warmup_steps, total_steps)
