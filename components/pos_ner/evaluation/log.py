"""The training log spaCy's ConsoleLogger writes (`output_file`), read without
the `evaluate` extra (the model card reads it too)."""

from pathlib import Path
from typing import Dict, List

import srsly


def read_training_log(path: Path) -> List[Dict]:
    """The log's records: {"epoch", "step", "losses": {component: loss}, "scores": {name: %}, "score"},
    one per evaluation; a loss is the sum since the previous evaluation."""
    return [record for record in srsly.read_jsonl(path) if "step" in record]
