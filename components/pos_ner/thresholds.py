"""Confidence thresholds: entities whose `span._.confidence` is below their
label's threshold leave `doc.ents` for the span group `doc.spans["ner_low_confidence"]`,
so nothing the model found is lost.

One place for every front end: the component's `min_confidence` setting, the
`--min-confidence` option of `predict`, `annotate` and `serve`, and the
service's request field all become a `Thresholds`, applied by `apply_thresholds`.
"""

from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from spacy.tokens import Doc, Span

from .decoding import CONFIDENCE_ATTR

# The span group that holds the entities a threshold took out of doc.ents.
LOW_CONFIDENCE_KEY = "ner_low_confidence"
# The key of a threshold mapping that applies to every label not named in it.
ANY_LABEL = "*"

MinConfidence = Union[float, Dict[str, float]]


class Thresholds(NamedTuple):
    """The lowest confidence an entity may have to stay in `doc.ents`: `default`
    for every label, unless `per_label` names the label."""

    default: float = 0.0
    per_label: Tuple[Tuple[str, float], ...] = ()

    @classmethod
    def from_value(cls, value: Optional[MinConfidence], where: str = "min_confidence") -> "Thresholds":
        """From a number (every label) or a mapping of labels to numbers, where
        the key "*" stands for every other label. `where` names the setting in
        the ValueError a bad value raises."""
        if value is None:
            return cls()
        if isinstance(value, dict):
            default, per_label = 0.0, {}
            for label, threshold in value.items():
                if not isinstance(label, str) or not label:
                    raise ValueError(f"{where}: labels must be non-empty strings, got {label!r}")
                number = _checked(threshold, f"{where}[{label!r}]")
                if label == ANY_LABEL:
                    default = number
                else:
                    per_label[label] = number
            return cls(default, tuple(sorted(per_label.items())))
        return cls(_checked(value, where))

    @classmethod
    def parse(cls, values: Iterable[str], where: str = "--min-confidence") -> "Thresholds":
        """From command-line values: "0.9" (every label) or "LABEL=0.95", any number of them."""
        mapping: Dict[str, Any] = {}
        for text in values:
            label, sep, number = text.rpartition("=")
            key = label.strip() if sep else ANY_LABEL
            if sep and not key:
                raise ValueError(f"{where}: expected NUMBER or LABEL=NUMBER, got {text!r}")
            try:
                mapping[key] = float(number)
            except ValueError:
                raise ValueError(f"{where}: expected NUMBER or LABEL=NUMBER, got {text!r}") from None
        return cls.from_value(mapping, where)

    def of(self, label: str) -> float:
        return dict(self.per_label).get(label, self.default)

    def keeps(self, label: str, confidence: Optional[float]) -> bool:
        """Whether an entity stays in doc.ents: its confidence reaches its label's
        threshold, or it has none (not set by pos_ner)."""
        return confidence is None or confidence >= self.of(label)

    @property
    def is_active(self) -> bool:
        """Whether any entity could be taken out of doc.ents."""
        return self.default > 0 or any(threshold > 0 for _, threshold in self.per_label)

    def to_value(self) -> MinConfidence:
        """The inverse of `from_value`: a number, or a mapping when labels have their own."""
        if not self.per_label:
            return self.default
        return {ANY_LABEL: self.default, **dict(self.per_label)}


def _checked(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: expected a number from 0 to 1, got {value!r}")
    return float(value)


def apply_thresholds(doc: Doc, thresholds: Thresholds) -> Doc:
    """Split the entities of `doc` (those in doc.ents and those an earlier call
    put in the low-confidence group) anew: those below their label's threshold
    go to `doc.spans[LOW_CONFIDENCE_KEY]`, the others to doc.ents. The group is
    set even when empty, so its presence says thresholds were applied. An
    entity without a confidence (not set by pos_ner) stays in doc.ents."""
    candidates = list(doc.ents) + list(doc.spans[LOW_CONFIDENCE_KEY] if LOW_CONFIDENCE_KEY in doc.spans else [])
    kept: List[Span] = []
    low: List[Span] = []
    for span in sorted(candidates, key=lambda span: (span.start, span.end)):
        confidence = span._.get(CONFIDENCE_ATTR) if Span.has_extension(CONFIDENCE_ATTR) else None
        (kept if thresholds.keeps(span.label_, confidence) else low).append(span)
    doc.ents = kept
    doc.spans[LOW_CONFIDENCE_KEY] = low
    return doc
