"""Score a trained pipeline on a DocBin with seqeval and write a metrics JSON.

Predictions are made on the gold tokens, so entity and token scores are
computed over exactly the corpus' tokens, as conlleval does.
"""
import json
import time
from pathlib import Path
from typing import Dict, List, Optional

import spacy
import typer
from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2
from spacy.tokens import Doc, DocBin
from spacy.training.iob_utils import biluo_to_iob, doc_to_biluo_tags

app = typer.Typer(add_completion=False)


def bio_tags(doc: Doc) -> List[str]:
    return biluo_to_iob(doc_to_biluo_tags(doc))


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


def evaluate(nlp, gold_docs: List[Doc], batch_size: int = 32) -> Dict:
    inputs = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in gold_docs]
    start = time.perf_counter()
    predicted = list(nlp.pipe(inputs, batch_size=batch_size))
    seconds = time.perf_counter() - start
    gold_tags = [bio_tags(doc) for doc in gold_docs]
    pred_tags = [bio_tags(doc) for doc in predicted]
    n_words = sum(len(doc) for doc in gold_docs)
    metrics = {
        "entities": entity_scores(gold_tags, pred_tags, strict=False),
        "entities_strict_iob2": entity_scores(gold_tags, pred_tags, strict=True),
        "token_acc": float(accuracy_score(gold_tags, pred_tags)),
        "tag_acc": None,
        "n_docs": len(gold_docs),
        "n_words": n_words,
        "seconds": seconds,
        "words_per_second": n_words / seconds if seconds else None,
    }
    if "tagger" in nlp.pipe_names:
        pairs = [(g.tag_, p.tag_) for gd, pd in zip(gold_docs, predicted) for g, p in zip(gd, pd) if g.tag_]
        metrics["tag_acc"] = sum(g == p for g, p in pairs) / len(pairs) if pairs else None
    return metrics


def format_table(metrics: Dict) -> str:
    scores = metrics["entities"]
    rows = [("type", "P", "R", "F1", "support")]
    for name, values in [*sorted(scores["per_type"].items()), *[(k, scores[k]) for k in ("micro", "macro", "weighted")]]:
        rows.append((name, *(f"{100 * values[k]:.2f}" for k in ("precision", "recall", "f1-score")), str(values["support"])))
    lines = ["  ".join(cell.rjust(9) for cell in row) for row in rows]
    tag_acc = metrics["tag_acc"]
    lines.append(f"token accuracy {100 * metrics['token_acc']:.2f}  "
                 f"tagger accuracy {'n/a' if tag_acc is None else f'{100 * tag_acc:.2f}'}  "
                 f"strict IOB2 micro F1 {100 * metrics['entities_strict_iob2']['micro']['f1-score']:.2f}  "
                 f"words/s {metrics['words_per_second']:.0f}")
    return "\n".join(lines)


@app.command()
def main(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    data_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="DocBin (.spacy) with gold entities"),
    output_path: Path = typer.Option(..., "--output", "-o", help="Metrics JSON to write"),
    code_path: Optional[Path] = typer.Option(None, "--code", "-c", exists=True, help="Custom component code"),
    batch_size: int = typer.Option(32, "--batch-size"),
):
    """Evaluate MODEL on DATA_PATH and write seqeval metrics to OUTPUT_PATH."""
    if code_path is not None:
        spacy.util.import_file(code_path.stem, code_path)
    nlp = spacy.load(model)
    gold_docs = list(DocBin().from_disk(data_path).get_docs(nlp.vocab))
    metrics = evaluate(nlp, gold_docs, batch_size=batch_size)
    metrics.update({"model": model, "data": str(data_path)})
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(json.dumps(metrics, indent=2), encoding="utf8")
    typer.echo(format_table(metrics))


if __name__ == "__main__":
    app()
