"""spacy-transformers' HFShim, able to use the optimizer's parameter averages.

thinc's optimizer keeps the average of a PyTorch weight under the key
`(shim.id, name)`, the key `PyTorchShim.finish_update` passes it, but
`PyTorchShim.use_params` reads only keys named `pytorch_{id}_{name}`. With
`use_averages = true`, spaCy then evaluates and saves the heads' averaged
weights on top of the encoder's last ones
(tests/test_pos_ner.py::test_thinc_parameter_averages_skip_pytorch_weights).
This shim reads both forms, so that the whole pipeline is averaged."""

import contextlib
from typing import Dict, Iterator

from spacy_transformers.layers.hf_shim import HFShim
from thinc.api import xp2torch


class HFShimWithAverages(HFShim):
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


def use_averages_in(model) -> None:
    """Make the HFShim of a spacy-transformers TransformerModel read averages."""
    for shim in model.layers[0].shims:
        if type(shim) is HFShim:
            shim.__class__ = HFShimWithAverages
