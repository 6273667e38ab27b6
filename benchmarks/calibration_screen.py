"""Screen what an entity's confidence should be, and how to calibrate it.

Runs MODEL once on the dev and test sets (gold tokens) and on the test set
lowercased, keeps the per-token probabilities, and scores entity-level
calibration (`pos_ner.evaluation.calibration`) for each confidence choice:

- `min`: the lowest probability of the entity's decoded tags (the component's
  `ent._.confidence` today);
- `span`: the probability of exactly that span and label under the constrained
  lattice (`pos_ner.decoding.span_probabilities`);

each with a temperature T applied to the token probabilities (p ** (1 / T),
renormalised; the learned transitions divided by T too). The entities
themselves always come from the unscaled probabilities, so `doc.ents` does not
move. T is picked by dev ECE; the test figures are reported beside it.

    python -m benchmarks.calibration_screen MODEL corpus --output benchmarks/results/calibration_screen.json
"""

import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy
import typer

app = typer.Typer(add_completion=False)

TEMPERATURES = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
Predictions = Tuple[List[numpy.ndarray], List[List[bool]], List[set]]


def predict(nlp, gold_docs) -> Predictions:
    """Per-token probabilities of the pipeline's `ner` on gold tokens, the
    sentence starts the decoder uses, and the gold (start, end, label) sets."""
    from pos_ner.evaluation.scores import gold_token_docs
    from pos_ner.pipeline_component import sentence_starts

    ner = nlp.get_pipe("ner")
    docs = gold_token_docs(nlp.vocab, gold_docs)
    with nlp.select_pipes(disable=["ner"]):
        docs = list(nlp.pipe(docs, batch_size=32))
    probs = [ner.model.ops.to_numpy(p) for p in ner.predict(docs)]
    gold = [{(e.start, e.end, e.label_) for e in doc.ents} for doc in gold_docs]
    return probs, [sentence_starts(doc) for doc in docs], gold


def outcomes(predictions: Predictions, names, transitions, temperature: float, choice: str):
    from pos_ner.decoding import decode_batch, span_probabilities

    probs, starts, gold = predictions
    entities = decode_batch(probs, names, starts, transitions)
    scaled = []
    for p in probs:
        logits = numpy.log(p.astype(numpy.float64) + 1e-12) / temperature
        q = numpy.exp(logits - logits.max(axis=1, keepdims=True))
        scaled.append(q / q.sum(axis=1, keepdims=True))
    if choice == "span":
        steps = None if transitions is None else transitions / temperature
        confidences = span_probabilities(scaled, names, starts, entities, steps)
    else:
        index = {name: i for i, name in enumerate(names)}
        confidences = [
            [
                float(min(q[i, index[("B-" if i == e.start else "I-") + e.label]] for i in range(e.start, e.end)))
                for e in ents
            ]
            for q, ents in zip(scaled, entities)
        ]
    confidence = [c for doc in confidences for c in doc]
    correct = [(e.start, e.end, e.label) in g for ents, g in zip(entities, gold) for e in ents]
    return numpy.array(confidence), numpy.array(correct, dtype=bool)


@app.command()
def main(
    model: str = typer.Argument(..., help="Trained pipeline (transformer, tagger, pos_ner)"),
    corpus: Path = typer.Argument(..., help="Folder with dev.spacy and test.spacy"),
    output: Path = typer.Option(..., "--output", help="JSON to write"),
) -> None:
    import spacy
    from spacy.tokens import DocBin

    from pos_ner.evaluation.calibration import calibration_report
    from pos_ner.evaluation.scores import recased

    nlp = spacy.load(model)
    ner = nlp.get_pipe("ner")
    gold = {split: list(DocBin().from_disk(corpus / f"{split}.spacy").get_docs(nlp.vocab)) for split in ("dev", "test")}
    gold["test_lowercased"] = recased(nlp.vocab, gold["test"], str.lower)
    predictions = {split: predict(nlp, docs) for split, docs in gold.items()}
    rows: List[Dict] = []
    for choice in ("min", "span"):
        for temperature in TEMPERATURES:
            row: Dict = {"confidence": choice, "temperature": temperature}
            for split, pred in predictions.items():
                report = calibration_report(*outcomes(pred, ner.tag_names, ner.transitions, temperature, choice))
                at_95 = next(t for t in report["thresholds"] if t["target_precision"] == 0.95)
                row[split] = {"ece": report["ece"], "brier": report["brier"], "n": report["n_entities"]}
                row[split]["coverage_at_95"] = at_95["coverage"]
            rows.append(row)
    picked = {c: min((r for r in rows if r["confidence"] == c), key=lambda r: r["dev"]["ece"]) for c in ("min", "span")}
    print("| confidence | T | dev ECE | test ECE | lowercased ECE | dev Brier | test Brier | test kept at 95 % |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        mark = " (picked by dev)" if r is picked[r["confidence"]] else ""
        cov = r["test"]["coverage_at_95"]
        print(
            f"| {r['confidence']}{mark} | {r['temperature']} | {r['dev']['ece']:.4f} | {r['test']['ece']:.4f} | "
            f"{r['test_lowercased']['ece']:.4f} | {r['dev']['brier']:.4f} | {r['test']['brier']:.4f} | "
            f"{'-' if cov is None else f'{cov:.3f}'} |"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"model": model, "rows": rows}, indent=2))


if __name__ == "__main__":
    app()
