"""The evaluation report's figures: confusion matrices of BIO tags, the
reliability diagram and precision-coverage curve of the entities' confidences
(`pos_ner.evaluation.calibration`), and training curves from the JSONL log spaCy's ConsoleLogger writes (`output_file`).
Figures are written atomically: an earlier figure survives a failed run."""

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import matplotlib
import numpy
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay

from ..io.files import atomic_file
from .calibration import threshold_text
from .log import read_training_log

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_confusion(confusion: Dict, path: Path) -> None:
    """Gold (rows) vs predicted (columns) tag counts, all tags on the left, without O on the right."""
    labels, matrix = confusion["labels"], numpy.array(confusion["matrix"])
    keep = [i for i, label in enumerate(labels) if label != "O"]
    panels = [("All tags", labels, matrix), ("Without O", [labels[i] for i in keep], matrix[numpy.ix_(keep, keep)])]
    size = max(5.0, 0.6 * len(labels) + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size))
    for ax, (title, names, counts) in zip(axes, panels):
        ConfusionMatrixDisplay(counts, display_labels=names).plot(
            ax=ax, cmap="Blues", values_format="d", colorbar=False, xticks_rotation=45
        )
        ax.set(title=f"{title}: gold vs predicted tag (tokens)", xlabel="predicted tag", ylabel="gold tag")
    save(fig, path)


def plot_reliability(
    calibration: Dict[str, Any],
    path: Path,
    variants: Optional[Dict[str, Dict[str, Any]]] = None,
    name: str = "the data",
) -> None:
    """Two panels from `calibration_report`s: left, the reliability diagram
    (precision against mean confidence per non-empty bin, the diagonal of
    perfect calibration, the entities per bin as bars on a log axis); right,
    the precision of the entities kept against the share kept as the threshold
    falls, with the thresholds for the target precisions marked. `name` labels
    `calibration` in the legends; `variants`
    (name to report, e.g. the lowercased text's) are drawn in lighter lines."""
    fig, (bins_ax, curve_ax) = plt.subplots(1, 2, figsize=(12, 5))
    counts_ax = bins_ax.twinx()
    reports = [(name, calibration)] + list((variants or {}).items())
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]
    bins = calibration["bins"]
    width = bins[0]["upper"] - bins[0]["lower"] if bins else 0.1
    counts_ax.bar(
        [b["lower"] + width / 2 for b in bins], [b["n"] for b in bins], width=0.9 * width, color="grey", alpha=0.2
    )
    counts_ax.set_ylabel("entities per bin (grey bars)")
    if any(b["n"] for b in bins):
        counts_ax.set_yscale("log")
    bins_ax.set_zorder(counts_ax.get_zorder() + 1)
    bins_ax.patch.set_visible(False)
    bins_ax.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1, label="perfect calibration")
    for i, ((label, report), colour) in enumerate(zip(reports, colours)):
        first = i == 0
        style = {"color": colour, "alpha": 1.0 if first else 0.6, "linewidth": 2 if first else 1}
        full = [b for b in report["bins"] if b["n"]]
        bins_ax.plot(
            [b["mean_confidence"] for b in full],
            [b["precision"] for b in full],
            marker="o",
            label=f"{label} (ECE {_number(report.get('ece'))}, n {report.get('n_entities', 0)})",
            **style,
        )
        if first:
            for b in full:
                bins_ax.annotate(
                    str(b["n"]),
                    (b["mean_confidence"], b["precision"]),
                    textcoords="offset points",
                    xytext=(4, -12),
                    fontsize=8,
                )
        curve = report["coverage_curve"]
        curve_ax.plot([100 * p["coverage"] for p in curve], [100 * p["precision"] for p in curve], label=label, **style)
        if first:
            for entry in report["thresholds"]:
                if entry["threshold"] is not None:
                    curve_ax.plot(100 * entry["coverage"], 100 * entry["precision"], marker="x", color="black")
                    left = entry["coverage"] < 0.5
                    curve_ax.annotate(
                        f"≥{100 * entry['target_precision']:.0f} %: t = {threshold_text(entry['threshold'])}",
                        (100 * entry["coverage"], 100 * entry["precision"]),
                        textcoords="offset points",
                        xytext=(8 if left else -8, 6),
                        fontsize=8,
                        ha="left" if left else "right",
                    )
    if not calibration.get("n_entities"):
        for ax in (bins_ax, curve_ax):
            ax.text(0.5, 0.5, "no entities with a confidence", transform=ax.transAxes, ha="center")
    bins_ax.set(
        title="Reliability: precision per confidence bin",
        xlabel="mean confidence in the bin",
        ylabel="precision (share of entities correct)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    bins_ax.legend(loc="upper left", fontsize=8)
    curve_ax.set(
        title="Precision of the entities kept (confidence ≥ threshold)",
        xlabel="entities kept (%)",
        ylabel="precision (%)",
        xlim=(0, 101),
    )
    curve_ax.legend(loc="lower left", fontsize=8)
    for ax in (bins_ax, curve_ax):
        ax.grid(alpha=0.3)
    save(fig, path)


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def series_label(name: str, points: List[Dict]) -> str:
    """A curve's legend entry with its seeds per point (in the points' order
    when they differ: a point of one seed has no band)."""
    counts = [len(row["seeds"]) for row in points]
    if len(set(counts)) == 1:
        return f"{name} (seeds: {counts[0]})"
    return f"{name} (seeds per point: {', '.join(map(str, counts))})"


def plot_learning_curve(rows: List[Dict], path: Path) -> None:
    """Test F1 against the number of training sentences, one line per series
    (mean over the seeds), its band the seeds' min to max."""
    series: Dict[str, List[Dict]] = {}
    for row in rows:
        if row.get("train_sentences"):
            series.setdefault(row["series"], []).append(row)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in series.items():
        points.sort(key=lambda row: row["train_sentences"])
        x = [row["train_sentences"] for row in points]
        mean = [100 * row["test_f1"]["mean"] for row in points]
        ax.plot(x, mean, marker="o", label=series_label(name, points))
        low = [100 * row["test_f1"]["min"] for row in points]
        high = [100 * row["test_f1"]["max"] for row in points]
        ax.fill_between(x, low, high, alpha=0.2)
    ax.set_xscale("log")
    ax.set(xlabel="training sentences", ylabel="test micro F1 (%)", title="Learning curve (band: min-max over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, path)


def save(fig: Figure, path: Path) -> None:
    """Write `fig` as PNG via a temporary file, then close it."""
    try:
        fig.tight_layout()
        with atomic_file(path) as file:
            fig.savefig(file, format="png", dpi=120)
    finally:
        plt.close(fig)


def plot_training(log: Union[Path, List[Dict]], path: Path) -> None:
    """Loss per component and dev entity F1 against the training step; `log`
    is the log file or its records (`read_training_log`)."""
    records = read_training_log(log) if isinstance(log, Path) else log
    if not records:
        raise ValueError(f"{log}: no training records")
    steps = [record["step"] for record in records]
    n_updates = [max(step - previous, 1) for previous, step in zip([0, *steps], steps)]
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for component in records[0]["losses"]:
        losses = [record["losses"][component] / n for record, n in zip(records, n_updates)]
        loss_ax.plot(steps, losses, marker=".", label=component)
    loss_ax.set(
        title="Training loss per component", xlabel="step", ylabel="loss per step (mean since previous evaluation)"
    )
    loss_ax.legend()
    score_ax.plot(steps, [record["scores"].get("ents_f") for record in records], marker=".", color="tab:green")
    score_ax.set(title="Dev entity F1", xlabel="step", ylabel="ents_f (%)", ylim=(0, 100))
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    save(fig, path)
