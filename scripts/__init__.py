"""The project's own tools (not part of the installable package `pos_ner`), run
from the checkout's root as modules: `python -m scripts.experiments compare|grid`
(the comparisons and the grid search), `python -m scripts.hf_baseline` (the
Hugging Face `Trainer` baseline), `python -m scripts.static_vectors` (static-vector
tables). They need the project's requirements (requirements.txt)."""
