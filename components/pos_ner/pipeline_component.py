"""The `pos_ner` pipeline component: predicts a BIO tag per token from the
model in `architectures`, decodes a valid entity sequence (`decoding`), and sets
`doc.ents` with each entity's `span._.confidence` (computed as the component's
fitted `calibration` says, `pos-ner calibrate`); entities below `min_confidence`
go to `doc.spans["ner_low_confidence"]` instead (`pos_ner.thresholds`).

Registered with spaCy through this package's `spacy_factories` entry point, so
configs that name `factory = "pos_ner"` work without handing spaCy a code file.
"""

import os
import sys
from itertools import islice
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, cast

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.training.iob_utils import biluo_to_iob
from spacy.vocab import Vocab
from thinc.api import Model, SequenceCategoricalCrossentropy, set_dropout_rate
from thinc.types import Floats2d

from .architectures import DEFAULT_MODEL
from .decoding import CONFIDENCE_ATTR, Calibration, decode_batch, tag_names
from .layers.transitions import add_gradient, crf_loss
from .layers.transitions import scores as transition_scores
from .thresholds import MinConfidence, Thresholds, apply_thresholds


def install_extensions() -> None:
    """Register `span._.confidence` (None on spans the component did not set)."""
    if not Span.has_extension(CONFIDENCE_ATTR):
        Span.set_extension(CONFIDENCE_ATTR, default=None)


_FORK_HOOK_INSTALLED = False


def limit_torch_threads_in_forked_workers() -> None:
    """Give each process forked from this one (`nlp.pipe(..., n_process=N)` on
    Linux) a single torch thread. torch's OpenMP pool does not survive a fork: a
    forked worker that uses it waits forever."""
    global _FORK_HOOK_INSTALLED
    if _FORK_HOOK_INSTALLED or not hasattr(os, "register_at_fork"):
        return

    def in_child() -> None:
        torch = sys.modules.get("torch")  # only if the parent used it; never imported here
        if torch is not None:
            torch.set_num_threads(1)

    os.register_at_fork(after_in_child=in_child)
    _FORK_HOOK_INSTALLED = True


def sentence_starts(doc: Doc) -> List[bool]:
    """Where the decoder (and the CRF loss) starts a sentence: tokens spaCy marks
    as sentence starts; unknown boundaries are not starts."""
    return [token.is_sent_start is True for token in doc]


def set_entities(
    docs: Sequence[Doc],
    probs: Sequence[numpy.ndarray],
    names: Sequence[str],
    transitions: Optional[numpy.ndarray] = None,
    calibration: Calibration = Calibration(),
    thresholds: Thresholds = Thresholds(),
) -> None:
    """Decode each doc's `probs` (tokens × `names`) into its `doc.ents` and their
    confidences (as `calibration` computes them), with one batched Viterbi pass
    for all of them (adding the model's learned `transitions`, when it has
    them); with active `thresholds`, the entities below them go to the
    low-confidence span group (`pos_ner.thresholds.apply_thresholds`)."""
    install_extensions()  # also here: an unpickled PosNer was never __init__-ed in this process
    sent_starts = [sentence_starts(doc) for doc in docs]
    for doc, entities in zip(docs, decode_batch(probs, names, sent_starts, transitions, calibration)):
        doc.ents = [Span(doc, ent.start, ent.end, label=ent.label) for ent in entities]
        for span, ent in zip(doc.ents, entities):
            span._.set(CONFIDENCE_ATTR, ent.confidence)
        if thresholds.is_active:
            apply_thresholds(doc, thresholds)


@Language.factory(
    "pos_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", f"span._.{CONFIDENCE_ATTR}", "doc.spans"],
    requires=["token.tag"],
    default_config={
        "model": DEFAULT_MODEL,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
        "min_confidence": 0.0,
    },
    default_score_weights={
        "ents_f": 1.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_per_type": None,
    },
)
def make_pos_ner(
    nlp: Language, name: str, model: Model, scorer: Optional[Callable], min_confidence: MinConfidence
) -> "PosNer":
    """`min_confidence`: a number for every label, or a table of labels (the key
    "*" for the others); entities below it go to doc.spans["ner_low_confidence"]."""
    return PosNer(nlp.vocab, model, name, scorer=scorer, min_confidence=min_confidence)


class PosNer(TrainablePipe):
    """Predict a BIO tag per token, decode a valid entity sequence, set
    `doc.ents` and each entity's `span._.confidence`. `cfg["calibration"]`
    (written by `pos-ner calibrate`, saved with the component) says how the
    confidence is computed; `min_confidence` which entities leave doc.ents for
    doc.spans["ner_low_confidence"]."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "ner",
        *,
        scorer: Optional[Callable] = get_ner_prf,
        min_confidence: MinConfidence = 0.0,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict = {"labels": []}
        self.thresholds = Thresholds.from_value(min_confidence, f"components.{name}.min_confidence")
        install_extensions()
        limit_torch_threads_in_forked_workers()

    @property
    def labels(self) -> Tuple[str, ...]:
        """Entity labels, e.g. ("LOC", "PER")."""
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def tag_names(self) -> List[str]:
        """Output classes: "O", then "B-X" and "I-X" for each label X."""
        return tag_names(self.labels)

    @property
    def calibration(self) -> Calibration:
        """How `span._.confidence` is computed (the identity until `pos-ner calibrate` fits one)."""
        return Calibration.from_dict(self.cfg.get("calibration"))

    @calibration.setter
    def calibration(self, value: Calibration) -> None:
        self.cfg["calibration"] = value.to_dict()

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(f"Entity labels must be strings, got {label!r}")
        if label in self.labels:
            return 0
        if self.model.get_ref("output_layer").has_dim("nO"):
            raise ValueError(f"Cannot add label {label!r}: the model is already initialized")
        self.cfg["labels"] = sorted([*self.labels, label])
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Learn the labels from the training data (or take `labels`, as
        written by `spacy init labels`) and initialize the model."""
        validate_get_examples(get_examples, "PosNer.initialize")
        if labels is not None:
            for label in labels:
                self.add_label(label)
        else:
            for example in get_examples():
                for ent in example.reference.ents:
                    self.add_label(ent.label_)
        self._require_labels()
        self.model.get_ref("output_layer").set_dim("nO", len(self.tag_names))
        if self.model.has_ref("transitions"):
            self.model.get_ref("transitions").set_dim("nO", len(self.tag_names))
        doc_sample = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.initialize(X=doc_sample)

    def predict(self, docs: Iterable[Doc]) -> List[Floats2d]:
        """Per-token probabilities over `tag_names` for each doc."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            n_tags = self.model.get_ref("output_layer").get_dim("nO")
            return [self.model.ops.alloc2f(len(doc), n_tags) for doc in docs]
        return self.model.predict(docs)

    @property
    def transitions(self) -> Optional[numpy.ndarray]:
        """The learned transition scores (tags × tags), or None when the model
        has none (`transitions = false`, the default)."""
        if not self.model.has_ref("transitions"):
            return None
        return transition_scores(self.model.get_ref("transitions"))

    def set_annotations(self, docs: Iterable[Doc], scores: List[Floats2d]) -> None:
        probs = [self.model.ops.to_numpy(doc_scores) for doc_scores in scores]
        set_entities(list(docs), probs, self.tag_names, self.transitions, self.calibration, self.thresholds)

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd=None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "PosNer.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores: List[Floats2d]) -> Tuple[float, List[Floats2d]]:
        """Cross-entropy against the gold BIO tags, or with learned transitions
        the CRF loss (`pos_ner.layers.transitions.crf_loss`), whose transition
        gradient goes to the "transitions" layer; tokens whose gold tag is
        missing or not alignable get no gradient (CRF: are marginalised out)."""
        validate_examples(examples, "PosNer.get_loss")
        examples = list(examples)
        known = set(self.tag_names)
        truths = []
        for eg in examples:
            gold = biluo_to_iob(eg.get_aligned_ner())
            truths.append([tag if tag in known else None for tag in gold])
        if self.model.has_ref("transitions"):
            return self._crf_loss(examples, scores, truths)
        loss_func = SequenceCategoricalCrossentropy(names=self.tag_names, normalize=False)
        d_scores, loss = loss_func(scores, truths)  # type: ignore[arg-type]  # None: thinc's missing value
        return float(loss), d_scores

    def _crf_loss(
        self, examples: List[Example], scores: List[Floats2d], truths: List[List[Optional[str]]]
    ) -> Tuple[float, List[Floats2d]]:
        ops = self.model.ops
        index = {name: i for i, name in enumerate(self.tag_names)}
        gold = [[None if tag is None else index[tag] for tag in tags] for tags in truths]
        log_probs = [numpy.log(ops.to_numpy(doc_scores) + 1e-12) for doc_scores in scores]
        starts = [sentence_starts(eg.predicted) for eg in examples]
        steps = self.model.get_ref("transitions")
        loss, d_scores, d_steps = crf_loss(log_probs, gold, starts, self.tag_names, transition_scores(steps))
        add_gradient(steps, d_steps)
        return loss, [ops.asarray2f(cast(Floats2d, d.astype("float32"))) for d in d_scores]
