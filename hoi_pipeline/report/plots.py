"""The figures of a run, drawn with matplotlib's object-oriented API (no pyplot, no global state).

Each function takes small typed inputs and writes one image atomically; the format follows the
file's suffix (.png or .svg). Figures are built on `matplotlib.figure.Figure`, which renders with
the Agg backend and needs no display.

Colours: Rare HOI classes (fewer than 10 training instances in HICO-DET) are orange, the others
blue, in every figure. Qualitative panels draw each tuple in its own colour (the palette of
`hoi_pipeline.visualize`); a tick marks a tuple that matches a ground-truth pair of its class, a
cross one that does not (the paper's Fig. 3 shows the negatives in red).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from scipy.stats import spearmanr

from hoi_pipeline.artifacts import atomic_path
from hoi_pipeline.evaluation.curves import ClassCurve, precision_envelope
from hoi_pipeline.visualize import PALETTE, box_centre

RARE_COLOUR = "#ff7f0e"
NON_RARE_COLOUR = "#1f77b4"
CORRECT_COLOUR = "#2ca02c"
WRONG_COLOUR = "#d62728"
LOSS_TERMS = {  # losses.csv column -> legend (paper Sec. 4.3)
    "loss_image": "L_g (image-level HOI recognition)",
    "loss_pair": "L_p (pairwise MIL)",
    "loss_relatedness": "L_b (self-taught relatedness)",
    "loss_total": "total",
}
LEARNING_RATES = {"lr_backbone": "CLIP visual encoder", "lr_head": "the rest"}
FACTOR_LABELS = (("score_pair", "p"), ("score_global", "g"), ("score_relatedness", "b"), ("score_detection", "d"))
MAX_NAMED_CLASSES = 40  # per-class bars get their names as tick labels up to this many classes
MAX_PLOTTED_POINTS = 4000  # a longer loss history is drawn through every k-th iteration (smoothed on all)
DPI = 120


def save_figure(figure: Figure, path: str | Path) -> None:
    """Write `figure` to `path` atomically, in the format its suffix names."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in {"png", "svg"}:
        raise ValueError(f"{path}: figures are written as .png or .svg")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight")


# --------------------------------------------------------------------------------------------
# training


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first values average what there is so far)."""
    return pd.Series(values).rolling(window, min_periods=1).mean().to_numpy()


def plot_training_curves(history: pd.DataFrame, out: str | Path, *, title: str = "") -> None:
    """Each loss term and the total against iterations (raw faint, smoothed solid), and both learning rates.

    `history` has the columns of the training stage's losses.csv: iteration, loss_image, loss_pair,
    loss_relatedness, loss_total, lr_backbone, lr_head (others are ignored).
    """
    missing = [c for c in ("iteration", *LOSS_TERMS, *LEARNING_RATES) if c not in history.columns]
    if missing:
        raise ValueError(f"training history lacks the column(s) {missing}")
    if history.empty:
        raise ValueError("training history has no rows")
    iteration = history["iteration"].to_numpy()
    window = max(1, len(history) // 50)
    shown = slice(None, None, -(-len(history) // MAX_PLOTTED_POINTS))  # every k-th point: a line has enough
    figure = Figure(figsize=(11, 4), layout="constrained")
    losses, rates = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    for colour, (column, label) in zip(("C0", "C1", "C2", "k"), LOSS_TERMS.items()):
        values = history[column].to_numpy(dtype=np.float64)
        if window > 1:
            losses.plot(iteration[shown], values[shown], color=colour, alpha=0.2, linewidth=0.8)
        losses.plot(iteration[shown], smooth(values, window)[shown], color=colour, linewidth=1.6, label=label)
    losses.set_xlabel("iteration")
    losses.set_ylabel("loss (mean binary cross-entropy)")
    losses.set_title("losses" + (f" (moving average of {window} iterations)" if window > 1 else ""))
    losses.legend(fontsize=8)
    losses.grid(alpha=0.3)
    for colour, (column, label) in zip(("C3", "C4"), LEARNING_RATES.items()):
        values = history[column].to_numpy(dtype=np.float64)
        rates.plot(iteration, values, color=colour, label=label, drawstyle="steps-post")
    if (history[list(LEARNING_RATES)].to_numpy() > 0).all():
        rates.set_yscale("log")
    rates.set_xlabel("iteration")
    rates.set_ylabel("learning rate")
    rates.set_title("learning rates (AdamW)")
    rates.legend(fontsize=8)
    rates.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    save_figure(figure, out)


# --------------------------------------------------------------------------------------------
# per-class AP


@dataclass(frozen=True)
class ClassAPs:
    """AP (%) of N classes in one setting; NaN for classes without ground truth (not drawn)."""

    setting: str  # shown as the panel title, e.g. "Default"
    names: tuple[str, ...]  # (N,)
    ap: np.ndarray  # (N,) percent
    rare: np.ndarray  # (N,) bool

    def __post_init__(self) -> None:
        n = len(self.names)
        object.__setattr__(self, "ap", np.asarray(self.ap, dtype=np.float64).reshape(-1))
        object.__setattr__(self, "rare", np.asarray(self.rare, dtype=bool).reshape(-1))
        if len(self.ap) != n or len(self.rare) != n:
            raise ValueError(f"{self.setting}: names, ap and rare differ in length")

    @property
    def evaluated(self) -> np.ndarray:
        return ~np.isnan(self.ap)


def _group_label(name: str, ap: np.ndarray) -> str:
    return f"{name} ({len(ap)} classes, mAP {np.mean(ap):.2f})" if len(ap) else name


def plot_per_class_ap(panels: Sequence[ClassAPs], out: str | Path) -> None:
    """One bar per class, sorted by AP, Rare classes marked; one panel per setting."""
    if not panels:
        raise ValueError("no per-class AP to plot")
    figure = Figure(figsize=(11, 3.2 * len(panels)), layout="constrained")
    axes = np.atleast_1d(figure.subplots(len(panels), 1, squeeze=False)[:, 0])
    for ax, panel in zip(axes, panels):
        index = np.flatnonzero(panel.evaluated)
        index = index[np.argsort(-panel.ap[index], kind="stable")]
        rare = panel.rare[index]
        ap = panel.ap[index]
        if len(index) <= MAX_NAMED_CLASSES:
            ax.bar(np.arange(len(index)), ap, width=0.8, color=np.where(rare, RARE_COLOUR, NON_RARE_COLOUR))
        else:  # one filled outline per group instead of hundreds of bar patches (HICO-DET: 600 classes)
            edges = np.arange(len(index) + 1) - 0.5
            for group, colour in ((~rare, NON_RARE_COLOUR), (rare, RARE_COLOUR)):
                ax.stairs(np.where(group, ap, 0.0), edges, fill=True, color=colour, linewidth=0)
        if len(index):
            ax.axhline(float(np.mean(panel.ap[index])), color="k", linestyle="--", linewidth=0.8)
        handles = [Rectangle((0, 0), 1, 1, color=NON_RARE_COLOUR)]
        labels = [_group_label("Non-Rare" if panel.rare.any() else "classes", panel.ap[index][~rare])]
        if panel.rare.any():
            handles.append(Rectangle((0, 0), 1, 1, color=RARE_COLOUR))
            labels.append(_group_label("Rare", panel.ap[index][rare]))
        ax.legend(handles, labels, fontsize=8, loc="upper right")
        if len(index) <= MAX_NAMED_CLASSES:
            ax.set_xticks(np.arange(len(index)), [panel.names[i] for i in index], rotation=90, fontsize=7)
        else:
            ax.set_xlabel(f"{len(index)} classes, ranked by AP")
        skipped = len(panel.names) - len(index)
        ax.set_title(panel.setting + (f" ({skipped} classes without ground truth left out)" if skipped else ""))
        ax.set_ylabel("AP (%)")
        ax.set_ylim(0, 100)
        ax.set_xlim(-0.6, max(len(index), 1) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    save_figure(figure, out)


def plot_ap_vs_training_images(panel: ClassAPs, counts: np.ndarray, out: str | Path) -> None:
    """AP of each class against its number of training images: the long tail behind Rare / Non-Rare.

    The line is the mean AP of the classes in each power-of-two bin of the count; the legend gives
    Spearman's rank correlation between count and AP.
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if len(counts) != len(panel.names):
        raise ValueError(f"{len(counts)} training image counts for {len(panel.names)} classes")
    keep = panel.evaluated
    ap, count, rare = panel.ap[keep], counts[keep], panel.rare[keep]
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    for mask, colour, name in ((~rare, NON_RARE_COLOUR, "Non-Rare" if rare.any() else "classes"),
                               (rare, RARE_COLOUR, "Rare")):  # fmt: skip
        if mask.any():
            ax.scatter(count[mask], ap[mask], s=14, color=colour, alpha=0.7, label=f"{name} ({int(mask.sum())})")
    if len(ap) >= 2:
        edges = 2.0 ** np.arange(0, np.ceil(np.log2(max(int(count.max()), 1) + 1)) + 1)
        bins = np.digitize(count, edges)
        centres, means = [], []
        for b in np.unique(bins):
            members = bins == b
            centres.append(float(np.exp(np.mean(np.log(count[members] + 1.0)))) - 1.0)
            means.append(float(np.mean(ap[members])))
        rho = spearmanr(count, ap).statistic if np.ptp(count) > 0 and np.ptp(ap) > 0 else float("nan")
        ax.plot(centres, means, color="k", marker="o", markersize=3, label=f"mean per bin (Spearman {rho:.2f})")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("training images with the class")
    ax.set_ylabel("AP (%)")
    ax.set_title(f"AP against training images ({panel.setting})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(figure, out)


# --------------------------------------------------------------------------------------------
# precision-recall


def plot_precision_recall(curves: Sequence[ClassCurve], out: str | Path, *, setting: str) -> None:
    """Precision against recall of the chosen classes (raw points solid, the interpolated envelope dashed)."""
    if not curves:
        raise ValueError("no precision-recall curve to plot (no class has ground truth)")
    figure = Figure(figsize=(6.5, 4.8), layout="constrained")
    ax = figure.subplots()
    for colour, item in zip(("C2", "C0", "C3", "C4"), curves):
        recall, precision = item.curve.recall, item.curve.precision
        label = f"{item.role}: {item.name} (AP {100 * item.ap:.1f}, {item.num_gt} GT"
        if len(recall) == 0:
            ax.plot([], [], color=colour, label=label + ", no detections)")
            continue
        ax.plot(np.r_[0.0, recall], np.r_[precision[0], precision], color=colour, label=label + ")")
        ax.plot(np.r_[0.0, recall], np.r_[precision_envelope(item.curve)[0], precision_envelope(item.curve)],
                color=colour, linestyle="--", linewidth=0.9)  # fmt: skip
    ax.set_xlim(-0.01, 1.01)  # curves along the edges (precision 1 or 0, recall 1) stay visible
    ax.set_ylim(-0.01, 1.03)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"precision-recall, best / median / worst class ({setting})")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    save_figure(figure, out)


# --------------------------------------------------------------------------------------------
# qualitative detections


@dataclass(frozen=True)
class DrawnTuple:
    """One detected tuple to draw: its boxes (continuous pixels), class name, fused score and factors."""

    box_h: tuple[float, float, float, float]
    box_o: tuple[float, float, float, float]
    name: str
    score: float
    factors: dict[str, float]  # score_pair, score_global, score_relatedness, score_detection (those present)
    correct: bool


@dataclass(frozen=True)
class Example:
    """A test image with its top tuples; `kind` is 'success' or 'failure' (of the top tuple)."""

    filename: str
    image: Image.Image
    kind: str
    tuples: tuple[DrawnTuple, ...]


def tuple_caption(rank: int, item: DrawnTuple) -> str:
    """'✓ 1 ride horse 0.412 (p 0.60 g 0.91 b 0.88 d 0.85)': the factors in the paper's Fig. 3 order."""
    mark = "\u2713" if item.correct else "\u2717"
    factors = " ".join(f"{short} {item.factors[name]:.2f}" for name, short in FACTOR_LABELS if name in item.factors)
    return f"{mark} {rank} {item.name} {item.score:.3g}" + (f"\n      ({factors})" if factors else "")


def plot_qualitative(examples: Sequence[Example], out: str | Path) -> None:
    """Test images with their top tuples drawn and their score factors listed: one row per kind
    (successes, then failures), the most confident first."""
    if not examples:
        raise ValueError("no test image with detections to show")
    kinds = list(dict.fromkeys(e.kind for e in examples))
    by_kind = [[e for e in examples if e.kind == kind] for kind in kinds]
    columns = max(len(row) for row in by_kind)
    lines = max(len(e.tuples) for e in examples)
    text_height = 0.42 * lines + 0.2
    figure = Figure(figsize=(3.3 * columns, len(kinds) * (3.0 + text_height)))
    grid = figure.add_gridspec(
        2 * len(kinds), columns, height_ratios=[3.0, text_height] * len(kinds), hspace=0.12, wspace=0.08
    )
    for row, row_examples in enumerate(by_kind):
        for column, example in enumerate(row_examples):
            _draw_example(figure.add_subplot(grid[2 * row, column]), figure.add_subplot(grid[2 * row + 1, column]),
                          example, lines)  # fmt: skip
    figure.suptitle(
        "top tuples per image: fused score (p pairwise, g global, b relatedness, d detection factor); "
        "\u2713 matches a ground-truth pair",
        fontsize=9,
    )
    save_figure(figure, out)


def _draw_example(image_ax, text_ax, example: Example, lines: int) -> None:
    image_ax.imshow(np.asarray(example.image))
    for rank in reversed(range(len(example.tuples))):  # the best tuple on top
        item = example.tuples[rank]
        colour = np.array(PALETTE[rank % len(PALETTE)]) / 255.0
        for box, style in ((item.box_h, "-"), (item.box_o, "--")):
            x1, y1, x2, y2 = box
            image_ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                                         linestyle=style, linewidth=1.8))  # fmt: skip
        (hx, hy), (ox, oy) = box_centre(item.box_h), box_centre(item.box_o)
        image_ax.plot([hx, ox], [hy, oy], color=colour, linewidth=1.4, marker="o", markersize=3)
    image_ax.set_xticks([])
    image_ax.set_yticks([])
    frame = CORRECT_COLOUR if example.kind == "success" else WRONG_COLOUR
    for spine in image_ax.spines.values():
        spine.set_edgecolor(frame)
        spine.set_linewidth(3)
    image_ax.set_title(f"{example.kind}: {example.filename}", fontsize=8, color=frame)
    text_ax.axis("off")
    for rank, item in enumerate(example.tuples):
        colour = np.array(PALETTE[rank % len(PALETTE)]) / 255.0
        text_ax.text(0.0, 1.0 - rank / max(lines, 1), tuple_caption(rank + 1, item), va="top", ha="left",
                     fontsize=7, family="monospace", color=colour, transform=text_ax.transAxes)  # fmt: skip
