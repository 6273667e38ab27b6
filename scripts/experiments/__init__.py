"""The project's experiments: one runner (`runner`: train a config with overrides
in a `pos-ner train` subprocess, score it with `pos-ner evaluate`), the grid search
(`grid`) and the comparisons (`compare`) on top, and their command line (`cli`):
`python -m scripts.experiments compare|grid`, from the checkout's root."""
