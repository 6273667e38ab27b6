"""`pos_ner.Corpus.v1`: spaCy's corpus reader, with long documents cut into
parts of a bounded length for training.

A document of 10,000 tokens read whole is one training batch on its own
(`batch_by_words` puts an oversized document alone in a batch), so one filing
gets as many updates as a one-line news item. spaCy's own `max_length` option
instead breaks long documents into single sentences and silently drops any
sentence that is still too long. This reader packs whole sentences into parts
of at most `max_doc_tokens` tokens, cuts a longer sentence between tokens (never
inside an entity), and says once what it did. Use it for the training corpus
only: evaluation and prediction see whole documents (`max_doc_tokens = 0`).

`pos_ner.single_sentences.v1` is an augmenter (spaCy's `augmenter` setting of
a corpus) that gives a share of the training documents as their separate
sentences, each its own Doc: a model that learns from whole documents (document
context, windows across sentences) also sees text sent one sentence at a time.

`pos_ner.case_variants.v1` is an augmenter that gives a share of the training
documents lowercased, uppercased or title-cased, every annotation kept: the
encoder is uncased, so case reaches the model only through the SHAPE feature and
the POS tags, and a model that never saw lowercased text in training leans on
them (chat, search queries and speech transcripts arrive lowercased, headlines
and legal text uppercased).

`gold_tags` copies the corpus' own TAG annotation onto the predicted Doc, so
that the pipeline is fed gold part-of-speech tags (spaCy's tagger, with
`overwrite = false`, keeps tags that are already set): the upper bound of what
POS features can give, for experiments, never for a model to ship.
"""

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple, cast

from spacy.attrs import DEP, ENT_IOB, ENT_TYPE, HEAD, LEMMA, MORPH, POS, SENT_START, TAG
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Corpus, Example
from spacy.util import registry
from thinc.types import Ints2d
from wasabi import msg


def sentence_bounds(doc: Doc) -> List[Tuple[int, int]]:
    """(start, end) of each sentence, or the whole Doc if it has no sentence boundaries."""
    if not doc.has_annotation("SENT_START"):
        return [(0, len(doc))]
    return [(sent.start, sent.end) for sent in doc.sents]


def cut_bounds(doc: Doc, max_tokens: int) -> List[Tuple[int, int]]:
    """(start, end) parts covering `doc`: whole sentences packed up to
    `max_tokens` tokens; a longer sentence is cut at the last token boundary
    within the limit that is not inside an entity (or right after the entity
    that spans the limit)."""
    inside: Set[int] = set()
    for ent in doc.ents:
        inside.update(range(ent.start + 1, ent.end))
    pieces: List[Tuple[int, int]] = []
    for start, end in sentence_bounds(doc):
        while end - start > max_tokens:
            cut = next((i for i in range(start + max_tokens, start, -1) if i not in inside), None)
            if cut is None:  # an entity longer than the limit: keep it whole
                cut = next((i for i in range(start + max_tokens, end) if i not in inside), end)
            if cut >= end:
                break
            pieces.append((start, cut))
            start = cut
        pieces.append((start, end))
    parts: List[Tuple[int, int]] = []
    for start, end in pieces:
        # Merge while the part stays within the limit, and always where a sentence
        # boundary would cut an entity.
        if parts and (end - parts[-1][0] <= max_tokens or start in inside):
            parts[-1] = (parts[-1][0], end)
        else:
            parts.append((start, end))
    return parts


class BoundedCorpus:
    """Callable like `spacy.training.Corpus`: `corpus(nlp)` yields Examples."""

    def __init__(
        self,
        path: Path,
        max_doc_tokens: int,
        *,
        gold_preproc: bool = False,
        limit: int = 0,
        augmenter: Optional[Callable] = None,
        gold_tags: bool = False,
    ):
        if max_doc_tokens < 0:
            raise ValueError(f"pos_ner.Corpus.v1: max_doc_tokens must be >= 0 (0: no cutting), got {max_doc_tokens}")
        self.corpus = Corpus(path, gold_preproc=gold_preproc, max_length=0, limit=limit, augmenter=augmenter)
        self.path, self.max_doc_tokens, self.gold_preproc = path, max_doc_tokens, gold_preproc
        self.gold_tags = gold_tags
        self.reported = False

    def __call__(self, nlp: Language) -> Iterator[Example]:
        for example in self.examples(nlp):
            if self.gold_tags:
                copy_gold_tags(example)
            yield example

    def examples(self, nlp: Language) -> Iterator[Example]:
        n_docs = n_cut = n_parts = 0
        for example in self.corpus(nlp):
            n_docs += 1
            reference = example.reference
            if not self.max_doc_tokens or len(reference) <= self.max_doc_tokens:
                yield example
                continue
            bounds = cut_bounds(reference, self.max_doc_tokens)
            n_cut += 1
            n_parts += len(bounds)
            for start, end in bounds:
                yield self.make_example(nlp, reference[start:end].as_doc())
        if not self.reported:
            self.reported = True
            if n_cut:
                msg.info(
                    f"pos_ner.Corpus.v1: cut {n_cut} of {n_docs} documents in {self.path} longer than "
                    f"{self.max_doc_tokens} tokens into {n_parts} parts at sentence boundaries (max_doc_tokens)"
                )

    def make_example(self, nlp: Language, reference: Doc) -> Example:
        return example_from_reference(nlp, reference, self.gold_preproc)


def example_from_reference(nlp: Language, reference: Doc, gold_preproc: bool) -> Example:
    """As spaCy's Corpus does: the predicted Doc from the pipeline's tokenizer,
    or from the gold words with `gold_preproc` or where spaces are unknown."""
    if gold_preproc or reference.has_unknown_spaces:
        words = [token.text for token in reference]
        spaces = [bool(token.whitespace_) for token in reference]
        return Example(Doc(nlp.vocab, words=words, spaces=spaces), reference)
    return Example(nlp.make_doc(reference.text), reference)


def whole_entity_sentences(doc: Doc) -> List[Tuple[int, int]]:
    """`sentence_bounds`, with the sentences a boundary inside an entity would
    cut merged into one."""
    inside = {i for ent in doc.ents for i in range(ent.start + 1, ent.end)}
    parts: List[Tuple[int, int]] = []
    for start, end in sentence_bounds(doc):
        if parts and start in inside:
            parts[-1] = (parts[-1][0], end)
        else:
            parts.append((start, end))
    return parts


@registry.augmenters("pos_ner.single_sentences.v1")
def create_single_sentences_augmenter(share: float) -> Callable[[Language, Example], Iterator[Example]]:
    """A spaCy augmenter: each training document, with probability `share`
    (drawn anew each epoch from Python's `random`, which spaCy seeds), is given
    as its separate sentences, each its own Doc, instead of whole. Nothing is
    dropped: the sentences cover the document, and a sentence boundary inside an
    entity keeps both sentences together."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"pos_ner.single_sentences.v1: share must be between 0 and 1, got {share}")

    def augment(nlp: Language, example: Example) -> Iterator[Example]:
        reference = example.reference
        if share == 0.0 or random.random() >= share:
            yield example
            return
        bounds = whole_entity_sentences(reference)
        if len(bounds) < 2:
            yield example
            return
        # Tokens as the example has them: gold words when the corpus was read so.
        gold_words = [t.text for t in example.predicted] == [t.text for t in reference]
        for start, end in bounds:
            yield example_from_reference(nlp, reference[start:end].as_doc(), gold_words)

    return augment


def title_case(text: str) -> str:
    """The first character uppercased, the rest as it was ("u.s." -> "U.s.", "iPhone" -> "IPhone")."""
    return text[:1].upper() + text[1:]


CASE_CHANGES: Dict[str, Callable[[str], str]] = {"lower": str.lower, "upper": str.upper, "title": title_case}


def recase(doc: Doc, change: Callable[[str], str]) -> Doc:
    """A copy of `doc` whose tokens' texts are `change(token.text)`, with the same
    tokens and whitespace and every token annotation it has kept: tags, POS,
    morphology, lemmas, the parse or else the sentence starts, and the entities
    (missing entity annotation stays missing)."""
    words = [change(token.text) for token in doc]
    spaces = [bool(token.whitespace_) for token in doc]
    annotated = {"TAG": TAG, "POS": POS, "MORPH": MORPH, "LEMMA": LEMMA}
    attrs = [attr for name, attr in annotated.items() if doc.has_annotation(name)]
    if doc.has_annotation("DEP"):
        attrs += [HEAD, DEP]
    elif doc.has_annotation("SENT_START"):
        attrs.append(SENT_START)
    attrs += [ENT_IOB, ENT_TYPE]
    variant = Doc(doc.vocab, words=words, spaces=spaces)
    if len(doc):
        variant.from_array(attrs, cast(Ints2d, doc.to_array(attrs)))
    return variant


@registry.augmenters("pos_ner.case_variants.v1")
def create_case_variants_augmenter(
    lower: float = 0.0, upper: float = 0.0, title: float = 0.0
) -> Callable[[Language, Example], Iterator[Example]]:
    """A spaCy augmenter: each training document is given lowercased with
    probability `lower`, uppercased with probability `upper`, title-cased (each
    token's first character uppercased) with probability `title`, and as it is
    otherwise; one draw a document and epoch from Python's `random`, which spaCy
    seeds. The variant keeps the document's tokens, whitespace and annotations
    (`recase`), so nothing is dropped and the gold entities stay where they were."""
    shares = {"lower": lower, "upper": upper, "title": title}
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"pos_ner.case_variants.v1: {name} must be between 0 and 1, got {share}")
    if sum(shares.values()) > 1.0 + 1e-9:
        raise ValueError(
            f"pos_ner.case_variants.v1: the shares are the probabilities of exclusive choices and must add up "
            f"to at most 1, got lower + upper + title = {sum(shares.values()):g}"
        )
    choices = [(name, share) for name, share in shares.items() if share > 0.0]

    def pick(draw: float) -> Optional[str]:
        bound = 0.0
        for name, share in choices:
            bound += share
            if draw < bound:
                return name
        return None

    def augment(nlp: Language, example: Example) -> Iterator[Example]:
        change = pick(random.random()) if choices else None
        if change is None:
            yield example
            return
        reference = example.reference
        gold_words = [t.text for t in example.predicted] == [t.text for t in reference]
        yield example_from_reference(nlp, recase(reference, CASE_CHANGES[change]), gold_words)

    return augment


@registry.augmenters("pos_ner.chained_augmenters.v1")
def create_chained_augmenters(*augmenters: Callable) -> Callable[[Language, Example], Iterator[Example]]:
    """A spaCy augmenter that applies `augmenters` in turn: every example the first
    yields goes through the second, and so on (a corpus takes one augmenter). In a
    config, each is a `[corpora.train.augmenter.*.NAME]` section, in order."""

    def augment(nlp: Language, example: Example) -> Iterator[Example]:
        examples: Iterable[Example] = [example]
        for augmenter in augmenters:
            examples = [out for eg in examples for out in augmenter(nlp, eg)]
        yield from examples

    return augment


def copy_gold_tags(example: Example) -> None:
    """Set the reference's TAG on each predicted token aligned to one reference
    token (tokens the tokenizer split or merged differently keep no tag)."""
    if not example.reference.has_annotation("TAG"):
        raise ValueError("pos_ner.Corpus.v1: gold_tags = true, but the corpus has no TAG annotation")
    for token, tag in zip(example.predicted, example.get_aligned("TAG", as_string=True)):
        if tag:
            token.tag_ = tag


@registry.readers("pos_ner.Corpus.v1")
def create_corpus_reader(
    path: Optional[Path],
    max_doc_tokens: int = 500,
    gold_preproc: bool = False,
    limit: int = 0,
    augmenter: Optional[Callable] = None,
    gold_tags: bool = False,
) -> Callable[[Language], Iterable[Example]]:
    """Read a DocBin (`.spacy`) like `spacy.Corpus.v1`, cutting documents longer
    than `max_doc_tokens` tokens (0: never) into parts on sentence boundaries;
    `gold_tags` feeds the corpus' own POS tags to the pipeline (experiments only)."""
    if path is None:
        raise ValueError("pos_ner.Corpus.v1: no path given; set paths.train (e.g. --paths.train corpus/train.spacy)")
    return BoundedCorpus(
        Path(path), max_doc_tokens, gold_preproc=gold_preproc, limit=limit, augmenter=augmenter, gold_tags=gold_tags
    )


@dataclass
class HeldOut:
    """What `hold_out` did: the two sides and the counts it reports."""

    kept: List[Doc]
    dev: List[Doc]
    n_docs: int
    n_cut: int

    def describe(self, share: float, seed: int) -> str:
        n_dev, n_all = sum(len(doc) for doc in self.dev), sum(len(doc) for doc in self.kept + self.dev)
        n_sents = sum(len(sentence_bounds(doc)) for doc in self.dev)
        whole = len(self.dev) - self.n_cut
        parts = f"{whole} whole" + (f" and the end of {self.n_cut} (cut at a sentence boundary)" if self.n_cut else "")
        return (
            f"held out: {parts} of {self.n_docs} training documents; {n_sents} sentences; "
            f"{n_dev} of {n_all} tokens ({n_dev / max(n_all, 1):.1%}; dev share {share}, seed {seed})"
        )


def hold_out(docs: List[Doc], share: float, seed: int, tolerance: float = 0.2) -> HeldOut:
    """Hold out about `share` of the tokens of `docs` as a dev set, drawn with
    `seed` (the same seed, the same split).

    Whole documents are drawn in a seeded order and kept for dev while they fit
    within `tolerance` above the target; a document that would overshoot it is
    left in training. When the documents drawn stay more than `tolerance` below
    the target (too few documents, or long ones), the next long document in the
    draw is cut once, at the sentence boundary (never inside an entity) that
    brings the dev set closest to the target: its end goes to dev, its start
    stays in training. Each side keeps the input's order; no token is lost."""
    n_tokens = sum(len(doc) for doc in docs)
    target = share * n_tokens
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    dev_ids: Set[int] = set()
    n_dev = 0
    for i in order:
        if n_dev >= target * (1 - tolerance):
            break
        if len(docs[i]) and n_dev + len(docs[i]) <= target * (1 + tolerance) and len(dev_ids) < len(docs) - 1:
            dev_ids.add(i)
            n_dev += len(docs[i])
    kept = [doc for i, doc in enumerate(docs) if i not in dev_ids]
    dev = [doc for i, doc in enumerate(docs) if i in dev_ids]
    n_cut = 0
    if n_dev < target * (1 - tolerance):
        need = target - n_dev
        for i in order:
            cut = None if i in dev_ids else closest_cut(docs[i], need)
            if cut is not None:
                doc = docs[i]
                kept[kept.index(doc)] = doc[:cut].as_doc(copy_user_data=True)
                dev.append(doc[cut:].as_doc(copy_user_data=True))
                n_cut = 1
                break
    if not dev:
        raise ValueError(
            f"cannot hold out {share} of {n_tokens} tokens from {len(docs)} document(s) at a sentence boundary "
            "outside an entity; give a dev file"
        )
    return HeldOut(kept, dev, len(docs), n_cut)


def closest_cut(doc: Doc, need: float) -> Optional[int]:
    """The sentence start (not inside an entity, not the Doc's first token)
    that leaves the number of tokens after it closest to `need`, or None."""
    inside = {i for ent in doc.ents for i in range(ent.start + 1, ent.end)}
    starts = [start for start, _ in sentence_bounds(doc) if 0 < start and start not in inside]
    return min(starts, key=lambda start: abs(len(doc) - start - need), default=None)
