"""The model card of a packaged pipeline, generated from its evaluation.

`model_card_meta` turns a trained pipeline's meta.json and config.cfg and the
metrics `pos-ner evaluate` wrote into the meta.json that `spacy package
--meta-path` takes: `description`, `sources`, `license`, `performance` (the
evaluation's scores, in spaCy's keys) and `notes`, the card's Markdown body. spaCy's own
README generator then writes the package's README.md from it (its feature table, label
scheme and accuracy table, followed by the notes), so the wheel's README and its
meta.json say the same thing, and nothing in them is written by hand.
"""

import datetime
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from spacy.util import load_config

from .decoding import CONFIDENCE_ATTR
from .evaluation.calibration import threshold_text

HUB = "https://huggingface.co/"


def percent(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def encoder_source(config: Dict[str, Any]) -> Optional[Dict[str, str]]:
    """The transformer named in the config as a meta.json source: a hub name
    links to the hub; a local folder is named by its last part only (paths of
    the machine it was trained on do not belong in a package)."""
    name = config.get("components", {}).get("transformer", {}).get("model", {}).get("name")
    if not name:
        return None
    if Path(name).is_absolute() or name.startswith(".") or Path(name).exists():
        return {"name": f"{Path(name).name} (encoder, from a local folder)"}
    return {"name": f"{name} (encoder)", "url": HUB + name}


def score_table(entities: Dict[str, Any]) -> List[str]:
    rows = ["| type | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, values in sorted(entities["per_type"].items()):
        rows.append(
            f"| {label} | {percent(values['precision'])} | {percent(values['recall'])} | "
            f"{percent(values['f1-score'])} | {values['support']} |"
        )
    micro = entities["micro"]
    rows.append(
        f"| **micro** | {percent(micro['precision'])} | {percent(micro['recall'])} | "
        f"**{percent(micro['f1-score'])}** | {micro['support']} |"
    )
    return rows


def weaknesses(metrics: Dict[str, Any]) -> List[str]:
    """What the evaluation shows the model does worst."""
    per_type = metrics["entities"]["per_type"]
    micro = metrics["entities"]["micro"]["f1-score"]
    lines = []
    ranked = sorted(per_type.items(), key=lambda item: item[1]["f1-score"])
    if len(ranked) > 1:
        weakest = ", ".join(f"{label} ({percent(values['f1-score'])})" for label, values in ranked[:2])
        lines.append(f"- The weakest types by F1: {weakest}; micro F1 is {percent(micro)}.")
    errors = metrics.get("frequent_errors") or []
    if errors:
        listed = "; ".join(f"{error['error']} ({error['count']})" for error in errors[:5])
        lines.append(f"- The most frequent entity errors: {listed}.")
    kinds = metrics.get("entity_errors") or {}
    if kinds:
        listed = ", ".join(f"{kind.replace('_', ' ')} {count}" for kind, count in kinds.items())
        lines.append(f"- Errors by kind: {listed}.")
    for name, variant in (metrics.get("case_variants") or {}).items():
        change = 100 * (variant["f1"] - micro)
        lines.append(f"- The same text {name}d: micro F1 {percent(variant['f1'])} ({change:+.2f} points).")
    return lines


def threshold_table(calibration: Dict[str, Any]) -> List[str]:
    """The lowest confidence threshold for each target precision, with the share of entities it keeps."""
    rows = [
        "| precision at least | keep entities with confidence ≥ | share of entities kept | precision |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for entry in calibration.get("thresholds") or []:
        target = f"{100 * entry['target_precision']:.0f} %"
        if entry.get("threshold") is None:
            rows.append(f"| {target} | not reached | – | – |")
        else:
            rows.append(
                f"| {target} | {threshold_text(entry['threshold'])} | {100 * entry['coverage']:.1f} % | "
                f"{percent(entry['precision'])} |"
            )
    return rows


def confidence_source(model_dir: Path, config: Dict[str, Any]) -> str:
    """A sentence on how the pipeline computes `ent._.confidence` (its pos_ner
    component's cfg, `pos-ner calibrate`) and on its configured threshold."""
    from .decoding import Calibration
    from .thresholds import LOW_CONFIDENCE_KEY, Thresholds

    name = next((n for n, c in config["components"].items() if c.get("factory") == "pos_ner"), None)
    cfg_path = model_dir / name / "cfg" if name else None
    cfg = json.loads(cfg_path.read_text(encoding="utf8")) if cfg_path is not None and cfg_path.is_file() else {}
    calibration = Calibration.from_dict(cfg.get("calibration"))
    if calibration.is_identity:
        text = "`ent._.confidence` is the lowest probability among the entity's tags, not calibrated."
    else:
        what = (
            "the probability of exactly that span and label"
            if calibration.confidence == "span"
            else ("the lowest probability among the entity's tags")
        )
        text = (
            f"`ent._.confidence` is {what}, at temperature {calibration.temperature:g}, fitted on the dev set "
            "(`pos-ner calibrate`)."
        )
    thresholds = Thresholds.from_value(config["components"][name].get("min_confidence") if name else None)
    if thresholds.is_active:
        text += (
            f" Entities below `min_confidence` ({json.dumps(thresholds.to_value())}) are left out of `doc.ents` and"
            f' kept in `doc.spans["{LOW_CONFIDENCE_KEY}"]`.'
        )
    return text


def calibration_lines(metrics: Dict[str, Any], data: str, source: str = "") -> List[str]:
    """What the evaluation measured of the confidence's calibration (metrics
    without a `calibration` block, from before it was measured: that it was not),
    after `source`, the sentence `confidence_source` writes."""
    calibration = metrics.get("calibration")
    if not calibration or calibration.get("ece") is None:
        return [f"{source} It ranks entities; how well it is calibrated was not measured for this model.".strip()]
    lowercase = ((metrics.get("case_variants") or {}).get("lowercase") or {}).get("calibration") or {}
    mean, precision = calibration.get("mean_confidence"), calibration.get("precision")
    lines = [
        (f"{source} " if source else "")
        + f"On `{data}` its expected calibration error (ECE: over 10 equal-width confidence bins, the "
        "gap between the bin's mean confidence and the share of its entities that are correct, weighted "
        f"by the bin's entities; 0 is perfect) is {calibration['ece']:.3f}, its Brier score "
        f"{calibration['brier']:.3f}, over {calibration['n_entities']:,} predicted entities"
        + (
            f" (mean confidence {mean:.3f}, precision {precision:.3f})"
            if mean is not None and precision is not None
            else ""
        )
        + "."
        + (
            f" On the same text lowercased the ECE is {lowercase['ece']:.3f}."
            if lowercase.get("ece") is not None
            else ""
        )
        + " An entity counts as correct when a gold entity has the same span and label.",
        "",
        "The lowest threshold that reaches each precision on that set, and the share of the predicted "
        "entities it keeps (chosen on the test set itself, so a little optimistic):",
        "",
        *threshold_table(calibration),
    ]
    return lines


def training_lines(config: Dict[str, Any], log: Optional[List[Dict[str, Any]]], command: Optional[str]) -> List[str]:
    training = config.get("training", {})
    ner = config.get("components", {}).get("ner", {}).get("model", {})
    batcher = training.get("batcher", {})
    rate = training.get("optimizer", {}).get("learn_rate", {})
    lines = ["- The full training config is in the package as `config.cfg`."]
    if command:
        lines.append(f"- Command: `{command}`.")
    settings = [f"seed {training.get('seed')}", f"dropout {training.get('dropout')}"]
    if training.get("max_steps"):
        settings.append(f"{training['max_steps']} steps")
    if training.get("max_epochs"):
        settings.append(f"at most {training['max_epochs']} epochs")
    if isinstance(batcher.get("size"), int):
        settings.append(f"batches of {batcher['size']} words")
    if isinstance(rate, dict) and rate.get("initial_rate"):
        settings.append(f"learning rate {rate['initial_rate']} ({rate.get('@schedules', 'schedule')})")
    lines.append("- Settings: " + ", ".join(settings) + ".")
    if "features" in ner:
        features = ", ".join(ner["features"]) or "none"
        lines.append(f"- Token attributes embedded next to the encoder's vectors: {features}.")
    if log:
        best = max(log, key=lambda record: record.get("score") or 0)
        last = log[-1]
        lines.append(
            f"- Best dev score {percent(best.get('score'))} at step {best.get('step')} "
            f"(training ran to step {last.get('step')}, epoch {last.get('epoch')})."
        )
    return lines


def model_card_meta(
    model_dir: Path,
    metrics: Dict[str, Any],
    *,
    data_name: str,
    data_url: Optional[str] = None,
    data_license: Optional[str] = None,
    license: Optional[str] = None,
    author: Optional[str] = None,
    email: Optional[str] = None,
    url: Optional[str] = None,
    wheels: str = "packages/wheels",
    package_name: Optional[str] = None,
    version: Optional[str] = None,
    training_log: Optional[List[Dict[str, Any]]] = None,
    command: Optional[str] = None,
    date: Optional[datetime.date] = None,
) -> Dict[str, Any]:
    """meta.json for `spacy package --meta-path`, with the card in `notes`.
    `license`, `author`, `email` and `url` go to meta.json's fields of those names
    (spaCy writes them into the package's metadata); `wheels` is the folder the
    card's install command finds this model's wheel and spacy-pos-ner's in."""
    meta = json.loads((model_dir / "meta.json").read_text(encoding="utf8"))
    config = load_config(model_dir / "config.cfg", interpolate=True)
    if package_name:
        meta["name"] = package_name
    if version:
        meta["version"] = version
    full_name = f"{meta['lang']}_{meta['name']}"
    date = date or datetime.date.fromtimestamp((model_dir / "meta.json").stat().st_mtime)
    entities = metrics["entities"]
    pipeline = " → ".join(meta.get("pipeline", []))
    labels = ", ".join(sorted(entities["per_type"]))
    encoder = encoder_source(config)
    sources = [{"name": data_name, **({"url": data_url} if data_url else {})}] + ([encoder] if encoder else [])

    meta["description"] = (
        f"Named-entity recognition ({labels}) with the spacy-pos-ner pipeline {pipeline}: the `ner` "
        "component embeds the POS tag the tagger predicts for each token next to the encoder's token "
        f"vectors. Trained on {data_name}."
    )
    meta["sources"] = sources
    for key, value in (("license", license), ("author", author), ("email", email), ("url", url)):
        if value:
            meta[key] = value
    micro = entities["micro"]
    meta["performance"] = {
        "ents_f": micro["f1-score"],
        "ents_p": micro["precision"],
        "ents_r": micro["recall"],
        "tag_acc": metrics.get("tag_acc"),
        "ents_per_type": {
            label: {"p": v["precision"], "r": v["recall"], "f": v["f1-score"]}
            for label, v in sorted(entities["per_type"].items())
        },
        "speed": metrics.get("words_per_second"),
    }
    data = Path(str(metrics.get("data", "the test set"))).name
    notes = [
        "### Scores",
        "",
        f"On `{data}` ({metrics['n_docs']} documents, {metrics['n_words']:,} words): seqeval's entity scores "
        "(conlleval's rules) on the corpus' own tokens, from `pos-ner evaluate`; the accuracy table above "
        "holds the same micro scores. The dev set's best score during training is under Training.",
        "",
        *score_table(entities),
        "",
        (
            f"Tagger accuracy (the POS tags `ner` embeds): {percent(metrics['tag_acc'])}. "
            if metrics.get("tag_acc") is not None
            else ""
        )
        + f"The evaluation ran at {metrics.get('words_per_second') or 0:,.0f} words/s on the machine that ran it.",
        "",
        "### Known weaknesses",
        "",
        *weaknesses(metrics),
        f"- It knows the labels and the kind of text of its training data only: {data_name}.",
        "",
        "### Confidence",
        "",
        f"Each entity's `ent._.{CONFIDENCE_ATTR}` (`confidence` in `pos-ner predict` and the HTTP API) is the "
        "lowest per-token softmax probability of the entity's tags after constrained Viterbi decoding, a "
        "number in [0, 1].",
        "",
        *calibration_lines(metrics, data, confidence_source(model_dir, config)),
        "",
        "### Use",
        "",
        f"`{wheels}/` holds this model's wheel and the wheel of spacy-pos-ner, the component's code; "
        "the rest (spaCy, spacy-transformers, torch) comes from the package index:",
        "",
        "```bash",
        f"pip install --find-links {wheels} {full_name}",
        "```",
        "",
        "```python",
        "import spacy",
        "",
        f'nlp = spacy.load("{full_name}")',
        'doc = nlp("Angela Merkel met Tim Cook of Apple in Berlin.")',
        f"print([(ent.text, ent.label_, ent._.{CONFIDENCE_ATTR}) for ent in doc.ents])",
        "```",
        "",
        "`python -m pos_ner predict`, `serve` and `annotate` take the package name as MODEL.",
        "",
        "### Training",
        "",
        f"- Data: {data_name}" + (f", {data_license}" if data_license else "") + ".",
        *training_lines(config, training_log, command),
        f"- Trained on {date.isoformat()}; card generated by `pos-ner model-card` from the evaluation.",
    ]
    meta["notes"] = "\n".join(notes) + "\n"
    return meta
