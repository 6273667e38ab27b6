"""spacy-transformers' HFShim with two additions: parameter averages that reach
the encoder, and mixed precision on the CPU.

Averages: thinc's optimizer keeps the average of a PyTorch weight under the key
`(shim.id, name)`, the key `PyTorchShim.finish_update` passes it, but
`PyTorchShim.use_params` reads only keys named `pytorch_{id}_{name}`. With
`use_averages = true`, spaCy then evaluates and saves the heads' averaged
weights on top of the encoder's last ones
(tests/test_pos_ner.py::test_thinc_parameter_averages_skip_pytorch_weights).
This shim reads both forms, so that the whole pipeline is averaged.

Mixed precision: thinc autocasts only on CUDA (to float16); with
`mixed_precision = true` on the CPU it runs the encoder's forward in float32.
This shim autocasts there to bfloat16, which CPUs with AVX512-BF16 or AMX
multiply natively (see docs/speed.md), and hands its outputs on as float32, as
the layers after it expect."""

import contextlib
import functools
import warnings
from typing import Any, Dict, Iterator

import torch
from spacy_transformers.layers.hf_shim import HFShim
from thinc.api import ArgsKwargs, xp2torch
from thinc.shims.pytorch_grad_scaler import PyTorchGradScaler


class PosNerHFShim(HFShim):
    @contextlib.contextmanager
    def use_params(self, params: Dict) -> Iterator[None]:
        prefix = f"pytorch_{self.id}_"
        averaged = {}
        for key, value in params.items():
            if isinstance(key, tuple) and len(key) == 2 and key[0] == self.id:
                averaged[key[1]] = value
            elif isinstance(key, str) and key.startswith(prefix):
                averaged[key[len(prefix) :]] = value
        if not averaged:
            yield
            return
        backup = {name: tensor.clone() for name, tensor in self._model.state_dict().items()}
        state = {name: xp2torch(value, device=backup[name].device) for name, value in averaged.items()}
        # Not strict: buffers, and weights that never had a gradient, have no average.
        self._model.load_state_dict(state, strict=False)
        try:
            yield
        finally:
            self._model.load_state_dict(backup)

    @property
    def cpu_bf16(self) -> bool:
        """Whether this shim autocasts to bfloat16 (mixed precision, encoder on the CPU,
        and a CPU that multiplies bfloat16 natively: elsewhere it runs float32)."""
        wanted = bool(self._mixed_precision) and self._model is not None and self.device.type == "cpu"
        return wanted and cpu_has_bf16()

    def predict(self, inputs: ArgsKwargs) -> Any:
        # thinc's predict switches the encoder to eval() and back to train() around every
        # call, two walks over all its modules each time (measured in the project's benchmarks).
        # begin_update switches to train() itself, so between predictions it stays in eval().
        if self._model.training:
            self._model.eval()
        if not self.cpu_bf16:
            with _quiet_cuda_autocast(self._mixed_precision), torch.no_grad():
                with torch.autocast(device_type="cuda", enabled=self._mixed_precision):
                    return self._model(*inputs.args, **inputs.kwargs)
        # Without autocast's cache of cast weights: under no_grad the cache made bfloat16
        # slower than float32 (measured in the project's benchmarks).
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            output = self._model(*inputs.args, **inputs.kwargs)
        return _as_float32(output)

    def begin_update(self, inputs: ArgsKwargs):
        if not self.cpu_bf16:
            with _quiet_cuda_autocast(self._mixed_precision):
                return super().begin_update(inputs)
        with _quiet_cuda_autocast(), torch.autocast("cpu", dtype=torch.bfloat16):
            output, backprop = super().begin_update(inputs)

        def backprop_unscaled(grads):
            # bfloat16 has float32's range: no loss scaling, which thinc's scaler offers only on CUDA.
            scaler, self._grad_scaler = self._grad_scaler, PyTorchGradScaler(enabled=False)
            try:
                return backprop(grads)
            finally:
                self._grad_scaler = scaler

        # A differentiable cast: the gradients reach the bfloat16 tensors through it.
        return _as_float32(output), backprop_unscaled


@contextlib.contextmanager
def _quiet_cuda_autocast(mixed_precision: bool = True) -> Iterator[None]:
    """thinc's own autocast names CUDA: with mixed precision on and no CUDA it warns
    on every call and does nothing; the CPU's autocast is this shim's. (Only then:
    catch_warnings is process-wide state, which threads serving requests share.)"""
    if not mixed_precision or torch.cuda.is_available():
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*CUDA is not available.*")
        yield


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX, as oneDNN
    reports it). Without it autocast still works but emulates bfloat16, slower than
    float32; so mixed precision then keeps float32 and says so, once."""
    try:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the probe: trust the setting
        supported = True
    if not supported:
        warnings.warn(
            "mixed precision (bfloat16) asked for, but this CPU has no native bfloat16 "
            "(AVX512-BF16 or AMX): the encoder runs in float32",
            stacklevel=2,
        )
    return supported


def _as_float32(output: Any) -> Any:
    """The model's output with its bfloat16 tensors cast to float32 (in place for
    Hugging Face's ModelOutput, a dict whose attributes mirror its keys)."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.dtype == torch.bfloat16 else output
    if isinstance(output, dict):
        for key, value in list(output.items()):
            output[key] = _as_float32(value)
        return output
    if isinstance(output, tuple):
        return type(output)(_as_float32(value) for value in output)
    return output


def _upgrade(shim: HFShim) -> PosNerHFShim:
    """The same shim object as a PosNerHFShim (it adds methods only, no state)."""
    if type(shim) is HFShim:
        shim.__class__ = PosNerHFShim
    return shim  # type: ignore[return-value]


def install_shim(model) -> None:
    """Give a spacy-transformers TransformerModel the PosNerHFShim."""
    for shim in model.layers[0].shims:
        if isinstance(shim, HFShim):
            _upgrade(shim)


def set_mixed_precision(nlp, enabled: bool = True) -> int:
    """Switch mixed precision on (or off) for every Hugging Face encoder of a
    loaded pipeline; on the CPU that is bfloat16 autocast (PosNerHFShim). Returns
    how many encoders it switched."""
    count = 0
    for _, component in nlp.pipeline:
        model = getattr(component, "model", None)
        if model is None:
            continue
        for node in model.walk():
            for shim in node.shims:
                if isinstance(shim, HFShim):
                    _upgrade(shim)._mixed_precision = enabled
                    count += 1
    return count
