"""`pos-ner calibrate`: fit how a trained pipeline computes `ent._.confidence`."""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import typer

from ..io.files import atomic_dir, write_text
from ._util import app, check_outputs, fail, load_pipeline, read_docbin, require_file


def pos_ner_component(nlp: Any) -> Tuple[str, Any]:
    """The name and component of the pipeline's `pos_ner` (ValueError if it has none)."""
    for name in nlp.pipe_names:
        if nlp.get_pipe_meta(name).factory == "pos_ner":
            return name, nlp.get_pipe(name)
    raise ValueError("the pipeline has no pos_ner component")


def token_probabilities(nlp: Any, gold_docs: List[Any], batch_size: int) -> Tuple[List[Any], List[List[bool]]]:
    """The `pos_ner` component's per-token probabilities on the gold tokens of
    `gold_docs` (the components before it run first, as in `nlp.pipe`) and the
    sentence starts its decoder uses."""
    from spacy.util import minibatch

    from ..evaluation.scores import gold_token_docs
    from ..pipeline_component import sentence_starts

    name, ner = pos_ner_component(nlp)
    with nlp.select_pipes(disable=[name]):
        docs = list(nlp.pipe(gold_token_docs(nlp.vocab, gold_docs), batch_size=batch_size))
    probs: List[Any] = []
    for batch in minibatch(docs, size=batch_size):
        probs.extend(ner.model.ops.to_numpy(p) for p in ner.predict(batch))
    return probs, [sentence_starts(doc) for doc in docs]


def picked_rows(rows: List[Dict], picked: Dict) -> List[Dict]:
    """The rows worth printing: each method uncalibrated (T = 1), each method's
    lowest Brier score (the pick among them)."""
    shown = []
    for method in dict.fromkeys(row["confidence"] for row in rows):
        own = [row for row in rows if row["confidence"] == method]
        plain = [row for row in own if row["temperature"] == 1.0]
        best = min(own, key=lambda row: row["brier"], default=None)
        for row in [*plain, best]:
            if row is not None and row not in shown:
                shown.append(row)
    return shown


@app.command("calibrate")
def calibrate_cli(
    model: Path = typer.Argument(..., help="Trained pipeline directory (transformer or tok2vec, tagger, pos_ner)"),
    data_path: Path = typer.Argument(..., help="Held-out DocBin (.spacy) with gold entities: the dev set"),
    output_path: Optional[Path] = typer.Option(
        None, "--output", "-o", file_okay=False, help="Write the calibrated pipeline here (default: MODEL, in place)"
    ),
    report_path: Optional[Path] = typer.Option(
        None, "--report", dir_okay=False, help="JSON with every candidate's ECE and Brier score, and the pick"
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
) -> None:
    """Fit what an entity's confidence is on DATA_PATH: the lowest probability
    of its tags ("min") or the probability of exactly its span under the
    constrained lattice ("span"), each at temperatures 0.5 to 3.0, picking the
    lowest Brier score. The choice is stored in the pos_ner
    component (its cfg), so the saved pipeline, its package and its ONNX export
    give the calibrated confidences. Entities and F1 do not change. If the
    pipeline predicts no entity on DATA_PATH there is nothing to fit: it says
    so and leaves the pipeline as it was (the report, if asked for, says why).

    The pipeline is written atomically: a failed run leaves MODEL as it was."""
    if not (model / "config.cfg").is_file():
        fail(f"{model}: not a pipeline directory (no config.cfg); calibrate writes the pipeline, so it needs a folder")
    require_file(data_path, "DocBin (.spacy) file")
    output = output_path if output_path is not None else model
    check_outputs([report_path] if report_path is not None else [], [model, data_path, output])
    from ..evaluation.calibration import fit_calibration

    nlp = load_pipeline(str(model))
    try:
        _, ner = pos_ner_component(nlp)
    except ValueError as error:
        fail(f"{model}: {error}")
    gold_docs = read_docbin(data_path, nlp.vocab)
    probs, starts = token_probabilities(nlp, gold_docs, batch_size)
    gold = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in gold_docs]
    try:
        picked, rows = fit_calibration(probs, starts, gold, ner.tag_names, ner.transitions)
    except ValueError as error:  # no entities predicted: nothing to fit, not an error of the user's
        typer.echo(f"{data_path}: {error}; {model} left as it was", err=True)
        if report_path is not None:
            report = {"model": str(model), "data": str(data_path), "output": None, "picked": None}
            write_text(report_path, json.dumps({**report, "candidates": [], "reason": str(error)}, indent=2))
        return
    before = ner.calibration
    ner.calibration = picked
    with atomic_dir(output) as tmp_dir:
        nlp.to_disk(tmp_dir)
    chosen = next(row for row in rows if (row["confidence"], row["temperature"]) == tuple(picked))
    typer.echo(f"{data_path}: {chosen['n_entities']} predicted entities")
    typer.echo("| confidence | T | ECE | Brier | kept at 95 % precision |")
    typer.echo("| --- | ---: | ---: | ---: | ---: |")
    for row in picked_rows(rows, chosen):
        mark = " (picked)" if row is chosen else ""
        kept = "-" if row["coverage_at_95"] is None else f"{row['coverage_at_95']:.3f}"
        figures = f"{row['temperature']:g} | {row['ece']:.4f} | {row['brier']:.4f} | {kept}"
        typer.echo(f"| {row['confidence']}{mark} | {figures} |")
    typer.echo(
        f"{output}: confidence {picked.confidence}, temperature {picked.temperature:g}"
        f" (was {before.confidence}, {before.temperature:g})"
    )
    if report_path is not None:
        report = {"model": str(model), "data": str(data_path), "output": str(output), "picked": picked.to_dict()}
        write_text(report_path, json.dumps({**report, "candidates": rows}, indent=2, allow_nan=False))
