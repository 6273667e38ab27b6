"""Score a pipeline on gold Docs with seqeval: per-type and averaged entity
scores, the token confusion matrix, entity error kinds, the calibration of
the entities' confidences (`pos_ner.evaluation.calibration`) and a Markdown
error report (figures: `pos_ner.evaluation.plots`).

Predictions are made on the gold tokens, so entity and token scores are
computed over exactly the corpus' tokens, as conlleval does.
"""

import time
from collections import Counter
from itertools import islice
from typing import Dict, List, Optional, Tuple

from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2
from sklearn.metrics import confusion_matrix
from spacy.tokens import Doc, Span
from spacy.training.iob_utils import biluo_to_iob, doc_to_biluo_tags

from .calibration import calibration_markdown, entity_calibration, summary

# What happens to a gold entity that is not predicted exactly; "spurious" is a
# predicted entity that overlaps no gold entity.
ERROR_KINDS = ("wrong_type", "boundary", "boundary_and_type", "missed", "spurious")
EntityError = Tuple[str, Optional[Span], Optional[Span]]  # kind, gold span, predicted span


def bio_tags(doc: Doc) -> List[str]:
    return biluo_to_iob(doc_to_biluo_tags(doc))


def gold_token_docs(vocab, gold_docs: List[Doc], tags: bool = False) -> List[Doc]:
    """Docs with exactly the gold tokens, for prediction: unannotated, or with the
    gold POS tags only (`tags`)."""
    docs = []
    for d in gold_docs:
        words, spaces = [t.text for t in d], [bool(t.whitespace_) for t in d]
        docs.append(Doc(vocab, words=words, spaces=spaces, tags=[t.tag_ for t in d] if tags else None))
    return docs


def entity_scores(gold: List[List[str]], pred: List[List[str]], strict: bool) -> Dict:
    """seqeval's report: per type plus micro/macro/weighted averages."""
    extra = {"mode": "strict", "scheme": IOB2} if strict else {}
    report = classification_report(gold, pred, output_dict=True, zero_division=0, **extra)
    averages = {"micro avg": "micro", "macro avg": "macro", "weighted avg": "weighted"}
    result: Dict = {"per_type": {}}
    for key, values in report.items():
        values = {k: float(v) if k != "support" else int(v) for k, v in values.items()}
        if key in averages:
            result[averages[key]] = values
        else:
            result["per_type"][key] = values
    return result


def confusion(gold: List[List[str]], pred: List[List[str]]) -> Dict:
    """Token-level confusion matrix: rows are gold tags, columns predicted tags,
    labels "O" first, then B-X, I-X by type. Dropping the "O" row and column
    gives the matrix without O."""
    gold_flat = [tag for tags in gold for tag in tags]
    pred_flat = [tag for tags in pred for tag in tags]
    labels = sorted(set(gold_flat) | set(pred_flat), key=lambda tag: (tag != "O", tag[2:], tag[:1]))
    return {"labels": labels, "matrix": confusion_matrix(gold_flat, pred_flat, labels=labels).tolist()}


def entity_errors(gold: Doc, pred: Doc) -> List[EntityError]:
    """Each gold entity that is not predicted exactly, with the predicted entity
    it overlaps (same span other label: wrong_type; same label other span:
    boundary; neither: boundary_and_type; none: missed), then each predicted
    entity that overlaps no gold entity (spurious)."""

    def overlap(a: Span, b: Span) -> bool:
        return a.start < b.end and b.start < a.end

    errors: List[EntityError] = []
    for g in gold.ents:
        overlapping = sorted((p for p in pred.ents if overlap(g, p)), key=lambda p: p.label_ != g.label_)
        exact = [p for p in overlapping if (p.start, p.end) == (g.start, g.end)]
        if exact:
            if exact[0].label_ != g.label_:
                errors.append(("wrong_type", g, exact[0]))
        elif not overlapping:
            errors.append(("missed", g, None))
        else:
            p = overlapping[0]
            errors.append(("boundary" if p.label_ == g.label_ else "boundary_and_type", g, p))
    errors += [("spurious", None, p) for p in pred.ents if not any(overlap(g, p) for g in gold.ents)]
    return errors


def error_groups(gold_docs: List[Doc], predicted: List[Doc]) -> List[Tuple[str, List[Tuple[Doc, Doc, List[Span]]]]]:
    """Entity errors grouped by kind and labels ("wrong type: LOC → ORG"), most frequent first,
    each with (gold doc, predicted doc, its spans) per occurrence."""
    groups: Dict[str, List[Tuple[Doc, Doc, List[Span]]]] = {}
    for gold, pred in zip(gold_docs, predicted):
        for kind, *spans in entity_errors(gold, pred):
            spans = [span for span in spans if span is not None]
            key = f"{kind.replace('_', ' ')}: {' → '.join(span.label_ for span in spans)}"
            groups.setdefault(key, []).append((gold, pred, spans))
    return sorted(groups.items(), key=lambda item: -len(item[1]))


# The same corpus with its text's case changed (gold tokens and entities kept):
# how much of the score rests on the case of the words.
CASE_VARIANTS = {"lowercase": str.lower, "uppercase": str.upper}


def recased(vocab, gold_docs: List[Doc], change) -> List[Doc]:
    docs = []
    for gold in gold_docs:
        words, spaces = [change(t.text) for t in gold], [bool(t.whitespace_) for t in gold]
        doc = Doc(vocab, words=words, spaces=spaces, tags=[t.tag_ for t in gold])
        doc.ents = [Span(doc, e.start, e.end, label=e.label_) for e in gold.ents]
        docs.append(doc)
    return docs


def check_keeps_tags(nlp) -> None:
    """Raise ValueError when a tagger of `nlp` would replace the tags it is given."""
    for name, pipe in nlp.pipeline:
        if getattr(pipe, "cfg", {}).get("overwrite") and "tagger" in type(pipe).__name__.lower():
            raise ValueError(f"gold tags: the pipeline's {name!r} has overwrite = true and would replace them")


def case_variant_scores(nlp, gold_docs: List[Doc], batch_size: int = 32, gold_tags: bool = False) -> Dict[str, Dict]:
    """Micro and per-type F1, and the entities' `calibration`, on each of CASE_VARIANTS of `gold_docs`."""
    gold_bio = [bio_tags(doc) for doc in gold_docs]
    result = {}
    for name, change in CASE_VARIANTS.items():
        docs = recased(nlp.vocab, gold_docs, change)
        predicted = list(nlp.pipe(gold_token_docs(nlp.vocab, docs, gold_tags), batch_size=batch_size))
        scores = entity_scores(gold_bio, [bio_tags(doc) for doc in predicted], strict=False)
        result[name] = {
            "f1": scores["micro"]["f1-score"],
            "per_type": {label: values["f1-score"] for label, values in scores["per_type"].items()},
            "calibration": entity_calibration(docs, predicted),
        }
    return result


def evaluate(
    nlp, gold_docs: List[Doc], batch_size: int = 32, case_variants: bool = False, gold_tags: bool = False
) -> Tuple[Dict, List[Doc]]:
    """The metrics, and the predicted docs (aligned with `gold_docs`). `case_variants`
    adds the scores on the corpus lowercased and uppercased (two more passes),
    each with its own `calibration` (as the corpus' own: `entity_calibration`);
    `gold_tags` feeds the corpus' POS tags to the pipeline (a tagger with
    `overwrite = false` keeps them): an upper bound, for experiments."""
    if gold_tags:
        check_keeps_tags(nlp)
    start = time.perf_counter()
    predicted = list(nlp.pipe(gold_token_docs(nlp.vocab, gold_docs, gold_tags), batch_size=batch_size))
    seconds = time.perf_counter() - start
    gold_bio = [bio_tags(doc) for doc in gold_docs]
    pred_tags = [bio_tags(doc) for doc in predicted]
    n_words = sum(len(doc) for doc in gold_docs)
    errors = Counter(kind for g, p in zip(gold_docs, predicted) for kind, _, _ in entity_errors(g, p))
    metrics = {
        "entities": entity_scores(gold_bio, pred_tags, strict=False),
        "entities_strict_iob2": entity_scores(gold_bio, pred_tags, strict=True),
        "token_acc": float(accuracy_score(gold_bio, pred_tags)),
        "tag_acc": None,
        "gold_tags": gold_tags,
        "confusion": confusion(gold_bio, pred_tags),
        "entity_errors": {kind: errors[kind] for kind in ERROR_KINDS},
        "frequent_errors": [
            {"error": key, "count": len(found)} for key, found in error_groups(gold_docs, predicted)[:10]
        ],
        "calibration": entity_calibration(gold_docs, predicted),
        "n_docs": len(gold_docs),
        "n_words": n_words,
        "seconds": seconds,
        "words_per_second": n_words / seconds if seconds else None,
    }
    if "tagger" in nlp.pipe_names:
        pairs = [(g.tag_, p.tag_) for gd, pd in zip(gold_docs, predicted) for g, p in zip(gd, pd) if g.tag_]
        metrics["tag_acc"] = sum(g == p for g, p in pairs) / len(pairs) if pairs else None
    if case_variants:
        metrics["case_variants"] = case_variant_scores(nlp, gold_docs, batch_size, gold_tags)
    return metrics, predicted


def format_table(metrics: Dict) -> str:
    scores = metrics["entities"]
    rows = [("type", "P", "R", "F1", "support")]
    for name, values in [
        *sorted(scores["per_type"].items()),
        *[(k, scores[k]) for k in ("micro", "macro", "weighted")],
    ]:
        rows.append(
            (name, *(f"{100 * values[k]:.2f}" for k in ("precision", "recall", "f1-score")), str(values["support"]))
        )
    lines = ["  ".join(cell.rjust(9) for cell in row) for row in rows]
    tag_acc = metrics["tag_acc"]
    lines.append(
        f"token accuracy {100 * metrics['token_acc']:.2f}  "
        f"tagger accuracy {'n/a' if tag_acc is None else f'{100 * tag_acc:.2f}'}  "
        f"strict IOB2 micro F1 {100 * metrics['entities_strict_iob2']['micro']['f1-score']:.2f}  "
        f"words/s {metrics['words_per_second']:.0f}"
    )
    if metrics.get("case_variants"):
        variants = "  ".join(f"{name} {100 * v['f1']:.2f}" for name, v in metrics["case_variants"].items())
        lines.append(f"micro F1 with the text's case changed: {variants}")
    if metrics.get("calibration"):
        line = f"confidence calibration: {summary(metrics['calibration'])}"
        variants = "; ".join(
            f"{name} {summary(v['calibration'])}"
            for name, v in (metrics.get("case_variants") or {}).items()
            if v.get("calibration")
        )
        lines.append(line + (f"  ({variants})" if variants else ""))
    return "\n".join(lines)


def bracketed(doc: Doc, start: int, end: int) -> str:
    """Tokens start..end with each entity written as [its words]LABEL."""
    words = []
    for token in doc[start:end]:
        text = token.text
        if token.ent_iob_ == "B" or (token.ent_iob_ == "I" and token.i == start):
            text = "[" + text
        if token.ent_iob_ in ("B", "I") and (token.i == end - 1 or doc[token.i + 1].ent_iob_ != "I"):
            text += "]" + token.ent_type_
        words.append(text)
    return " ".join(words)


def example(gold: Doc, pred: Doc, start: int, end: int, title: str) -> str:
    """The gold sentence(s) holding tokens start..end, with gold and predicted entities."""
    if gold.has_annotation("SENT_START"):
        start, end = gold[start].sent.start, gold[end - 1].sent.end
    else:
        start, end = 0, len(gold)
    return f"{title}\n  gold: {bracketed(gold, start, end)}\n  pred: {bracketed(pred, start, end)}"


def error_report(metrics: Dict, gold_docs: List[Doc], predicted: List[Doc], top: int = 10, n_examples: int = 3) -> str:
    """Markdown: scores, entity error counts, the calibration of the entities'
    confidences (when measured), then the `top` most frequent entity errors
    and tag confusions, each with a few example sentences."""

    def section(title: str, count: int, examples: List[str]) -> List[str]:
        return [f"### {title} ({count})", "", "```text", "\n\n".join(examples), "```", ""]

    lines = [
        "# Evaluation report",
        "",
        f"`{metrics.get('model')}` on `{metrics.get('data')}`: "
        f"{metrics['n_docs']} documents, {metrics['n_words']} words.",
        "",
        "```text",
        format_table(metrics),
        "```",
        "",
        "## Entity errors",
        "",
        "Each gold entity is either correct, of the wrong type (same span), off in its "
        "boundaries (overlapping prediction of the same type), off in boundaries and type, "
        "or missed (no overlapping prediction). A predicted entity that overlaps no gold "
        "entity is spurious.",
        "",
        "| error | count |",
        "| --- | ---: |",
        *[f"| {kind.replace('_', ' ')} | {n} |" for kind, n in metrics["entity_errors"].items()],
        "",
    ]
    if metrics.get("calibration"):
        variants = {
            name: v["calibration"] for name, v in (metrics.get("case_variants") or {}).items() if v.get("calibration")
        }
        calibration = calibration_markdown(metrics["calibration"], variants)
    else:
        calibration = []
    for key, errors in error_groups(gold_docs, predicted)[:top]:
        examples = [
            example(
                gold,
                pred,
                min(s.start for s in spans),
                max(s.end for s in spans),
                " → ".join(f"{s.text!r} {s.label_}" for s in spans),
            )
            for gold, pred, spans in errors[:n_examples]
        ]
        lines += section(key, len(errors), examples)

    lines += ["## Tag confusions (tokens)", "", "| gold | predicted | count |", "| --- | --- | ---: |"]
    labels, matrix = metrics["confusion"]["labels"], metrics["confusion"]["matrix"]
    cells = sorted(
        ((n, g, p) for g, row in zip(labels, matrix) for p, n in zip(labels, row) if g != p and n),
        key=lambda cell: -cell[0],
    )[:top]
    lines += [f"| {g} | {p} | {n} |" for n, g, p in cells] + [""]
    tags = [list(zip(bio_tags(gold), bio_tags(pred))) for gold, pred in zip(gold_docs, predicted)]
    for n, g_tag, p_tag in cells:
        found = (
            (gold, pred, i)
            for gold, pred, pairs in zip(gold_docs, predicted, tags)
            for i, pair in enumerate(pairs)
            if pair == (g_tag, p_tag)
        )
        examples = [
            example(gold, pred, i, i + 1, f"{gold[i].text!r} {g_tag} → {p_tag}")
            for gold, pred, i in islice(found, n_examples)
        ]
        lines += section(f"{g_tag} → {p_tag}", n, examples)
    return "\n".join(lines + calibration)
