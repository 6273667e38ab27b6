"""POS-aware entity recognizer: transformer token vectors plus embedded token
features (the tagger's POS tags by default) predict one BIO tag per token.

This module is self-contained on purpose: `spacy package --code` copies it
into the model package, so it must not import anything from this repository.
"""
from itertools import islice
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.ml.models import MultiHashEmbed
from spacy.pipeline import TrainablePipe
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, Span
from spacy.training import Example, biluo_tags_to_spans, iob_to_biluo, validate_examples
from spacy.training import validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model, SequenceCategoricalCrossentropy, Softmax_v2, chain
from thinc.api import glorot_uniform_init, set_dropout_rate, with_array
from thinc.types import Floats2d

CONFIDENCE_ATTR = "confidence"
if not Span.has_extension(CONFIDENCE_ATTR):
    Span.set_extension(CONFIDENCE_ATTR, default=None)

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "pos_ner.PosNerModel.v1"
features = ["TAG"]
feature_width = 64
feature_rows = 200

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]


@registry.architectures("pos_ner.PosNerModel.v1")
def build_pos_ner_model(
    tok2vec: Model[List[Doc], List[Floats2d]],
    features: List[str],
    feature_width: int,
    feature_rows: int,
    nO: Optional[int] = None,
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors from `tok2vec`, concatenated with an embedding of the
    token attributes in `features` (e.g. TAG, SHAPE), go through a softmax over
    BIO tags. `feature_width = 0` or no features leaves the embedding out.

    The softmax weights start random, not at zero as in spaCy's tagger: a zero
    output layer passes no gradient back, so the encoder would learn only the
    tagger's objective until the weights grow (benchmarks/RESULTS.md)."""
    if feature_width > 0 and features:
        embed = MultiHashEmbed(
            width=feature_width,
            attrs=features,
            rows=[feature_rows] * len(features),
            include_static_vectors=False,
        )
        tok2vec = concat_per_doc(tok2vec, embed)
    output = Softmax_v2(nO, init_W=glorot_uniform_init)
    model = chain(tok2vec, with_array(output))
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output)
    return model


def concat_per_doc(
    first: Model[List[Doc], List[Floats2d]], second: Model[List[Doc], List[Floats2d]]
) -> Model[List[Doc], List[Floats2d]]:
    """Concatenate two per-doc token representations along the width.

    Unlike thinc's `concatenate`, the backward pass ignores what the
    sublayers return: a transformer listener that is not the pipeline's last
    listener returns None, which `concatenate` cannot add up.
    """
    return Model(
        "concat_per_doc",
        _concat_forward,
        layers=[first, second],
        init=_concat_init,
        dims={"nO": None},
    )


def _concat_init(model: Model, X=None, Y=None) -> None:
    widths = []
    for layer in model.layers:
        layer.initialize(X=X)
        widths.append(layer.get_dim("nO") if layer.has_dim("nO") else None)
    if all(widths):
        model.set_dim("nO", sum(widths))


def _concat_forward(model: Model, docs: List[Doc], is_train: bool):
    first, second = model.layers
    vectors, backprop_first = first(docs, is_train)
    features, backprop_second = second(docs, is_train)
    width = vectors[0].shape[1] if vectors else 0
    output = [model.ops.xp.hstack((v, f)) for v, f in zip(vectors, features)]

    def backprop(d_output: List[Floats2d]) -> List[Doc]:
        backprop_first([d[:, :width] for d in d_output])
        backprop_second([d[:, width:] for d in d_output])
        return []

    return output, backprop


@Language.factory(
    "pos_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", f"span._.{CONFIDENCE_ATTR}"],
    requires=["token.tag"],
    default_config={
        "model": DEFAULT_MODEL,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={
        "ents_f": 1.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_per_type": None,
    },
)
def make_pos_ner(nlp: Language, name: str, model: Model, scorer: Optional[Callable]):
    return PosNer(nlp.vocab, model, name, scorer=scorer)


class PosNer(TrainablePipe):
    """Predict a BIO tag per token, decode a valid entity sequence, set
    `doc.ents` and each entity's `span._.confidence`."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "ner",
        *,
        scorer: Optional[Callable] = get_ner_prf,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict = {"labels": []}

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
        return ["O"] + [f"{p}-{label}" for label in self.labels for p in ("B", "I")]

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
        doc_sample = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.initialize(X=doc_sample)

    def predict(self, docs: Iterable[Doc]) -> List[Floats2d]:
        """Per-token probabilities over `tag_names` for each doc."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            n_tags = self.model.get_ref("output_layer").get_dim("nO")
            return [self.model.ops.alloc2f(len(doc), n_tags) for doc in docs]
        return self.model.predict(docs)

    def set_annotations(self, docs: Iterable[Doc], scores: List[Floats2d]) -> None:
        tag_names = self.tag_names
        allowed, allowed_first = _transition_masks(tag_names)
        for doc, doc_scores in zip(docs, scores):
            probs = self.model.ops.to_numpy(doc_scores)
            sent_starts = [token.is_sent_start is True for token in doc]
            best = viterbi_decode(numpy.log(probs + 1e-12), allowed, allowed_first, sent_starts)
            tags = [tag_names[i] for i in best]
            ents = biluo_tags_to_spans(doc, iob_to_biluo(tags))
            doc.ents = ents
            token_probs = probs[numpy.arange(len(doc)), best]
            for ent in doc.ents:
                confidence = float(token_probs[ent.start : ent.end].min())
                ent._.set(CONFIDENCE_ATTR, confidence)

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
        """Cross-entropy against the gold BIO tags; tokens whose gold tag is
        missing or not alignable get no gradient."""
        validate_examples(examples, "PosNer.get_loss")
        loss_func = SequenceCategoricalCrossentropy(names=self.tag_names, normalize=False)
        known = set(self.tag_names)
        truths = []
        for eg in examples:
            gold = [_biluo_to_bio(tag) for tag in eg.get_aligned_ner()]
            truths.append([tag if tag in known else None for tag in gold])
        d_scores, loss = loss_func(scores, truths)
        return float(loss), d_scores


def _biluo_to_bio(tag: Optional[str]) -> Optional[str]:
    if tag is None or tag == "-":
        return None
    if tag == "O":
        return tag
    prefix, label = tag.split("-", 1)
    return ("B-" if prefix in ("B", "U") else "I-") + label


def _transition_masks(tag_names: List[str]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """`allowed[i, j]`: tag j may follow tag i; `allowed_first[j]`: tag j may
    start a sentence. "I-X" only continues "B-X" or "I-X"."""
    n = len(tag_names)
    allowed = numpy.ones((n, n), dtype=bool)
    allowed_first = numpy.ones(n, dtype=bool)
    for j, tag in enumerate(tag_names):
        if tag.startswith("I-"):
            label = tag[2:]
            allowed_first[j] = False
            allowed[:, j] = [prev in (f"B-{label}", f"I-{label}") for prev in tag_names]
    return allowed, allowed_first


def viterbi_decode(
    log_probs: numpy.ndarray,
    allowed: numpy.ndarray,
    allowed_first: numpy.ndarray,
    sent_starts: Sequence[bool],
) -> List[int]:
    """The most probable tag sequence in which every transition is allowed.
    At token 0 and at sentence starts only `allowed_first` tags may occur."""
    n_tokens, n_tags = log_probs.shape
    if n_tokens == 0:
        return []
    forbidden = numpy.where(allowed, 0.0, -numpy.inf)
    forbidden_first = numpy.where(allowed_first, 0.0, -numpy.inf)
    score = log_probs[0] + forbidden_first
    backpointers = numpy.zeros((n_tokens, n_tags), dtype=numpy.int64)
    for i in range(1, n_tokens):
        if sent_starts[i]:
            backpointers[i] = int(numpy.argmax(score))
            score = score.max() + log_probs[i] + forbidden_first
        else:
            candidates = score[:, None] + forbidden
            backpointers[i] = candidates.argmax(axis=0)
            score = candidates.max(axis=0) + log_probs[i]
    best = [int(numpy.argmax(score))]
    for i in range(n_tokens - 1, 0, -1):
        best.append(int(backpointers[i, best[-1]]))
    return best[::-1]
