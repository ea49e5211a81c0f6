"""A run's figures: its learning curves, confusion matrix and misclassified digits (a sweep's
are in analysis/sweep_figures.py)."""

import io
from pathlib import Path
from typing import BinaryIO, List, Optional, Tuple, Union

import numpy as np

from mnist_exp.data.idx import IMAGE_SIDE
from mnist_exp.files.figure_files import new_figure, save
from mnist_exp.nn.losses import NAMES as LOSS_NAMES
from mnist_exp.record.metrics import EpochMetrics


def warm_up() -> None:
    """Import matplotlib and draw a throwaway figure (fonts, text layout, PNG writer), so the
    next figure costs only its own drawing: figure_process's helper does this while a run trains."""
    rows = [EpochMetrics(epoch, 1.0, 0.5, 1.0, 0.5, 0.0) for epoch in (0, 1)]
    plot_curves(rows, "warm-up", io.BytesIO())


def draw(jobs: List[Tuple[str, dict]]) -> None:
    """Draw figures given as (function name in this module, keyword arguments): what the
    figure helper is sent, so the run need not import matplotlib."""
    for name, kwargs in jobs:
        globals()[name](**kwargs)




def plot_curves(rows: List[EpochMetrics], title: str, path: Union[Path, BinaryIO], loss: str = "sse",
                restored_epoch: Optional[int] = None) -> None:
    """curves_figure saved as a PNG."""
    save(curves_figure(rows, title, loss, restored_epoch), path)


def curves_figure(rows: List[EpochMetrics], title: str, loss: str = "sse", restored_epoch: Optional[int] = None):
    """Loss and accuracy, train (and validation) and test, against the epoch.
    The accuracy axis is zoomed to the data; the epoch early stopping restored is marked."""
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in rows]
    splits = ["train", "val", "test"] if rows and rows[0].val_loss is not None else ["train", "test"]
    fig = new_figure(layout=None, figsize=(11, 4.6))  # a fixed layout: half the time of a constrained one
    fig.subplots_adjust(left=0.065, right=0.985, bottom=0.12, top=0.78, wspace=0.22)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.set_title(f"loss: {LOSS_NAMES.get(loss, loss)}", fontsize="small")
    for ax, key, label in ((ax_loss, "loss", "loss per sample"), (ax_acc, "accuracy", "accuracy")):
        for name, marker in zip(splits, "o^s" if len(splits) == 3 else "os"):
            ax.plot(epochs, [getattr(r, f"{name}_{key}") for r in rows], f"{marker}-", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(min(epochs, default=0) - 0.5, max(epochs, default=0) + 0.5)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if restored_epoch is not None:
            ax.axvline(restored_epoch, color="0.3", ls="--", lw=1,
                       label=f"epoch {restored_epoch}: weights kept (early stopping)")
    if len(epochs) == 1:  # one point: a wider axis and its values written, not a lone dot
        _single_epoch(rows[0], splits, ax_loss, ax_acc)
    _mark_divergence(rows, (ax_loss, ax_acc))
    limits = accuracy_limits(rows, splits)
    if limits:
        ax_acc.set_ylim(*limits)
    handles, labels = ax_loss.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 0.9), frameon=False)
    fig.suptitle(title, fontsize="medium", wrap=True, y=0.99)
    return fig


def _single_epoch(row: EpochMetrics, splits: List[str], ax_loss, ax_acc) -> None:
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlim(row.epoch - 1, row.epoch + 1)
        for name in splits:
            value = getattr(row, f"{name}_{key}")
            if value is not None and np.isfinite(value):
                ax.annotate(f"{name} {value:.4g}", (row.epoch, value), xytext=(8, 0), textcoords="offset points",
                            va="center", fontsize="small")


def _mark_divergence(rows: List[EpochMetrics], axes) -> None:
    """A red line at the first epoch whose loss is not finite: where the curve stops and why."""
    diverged = next((r.epoch for r in rows if not r.finite), None)
    if diverged is None:
        return
    for ax in axes:
        ax.axvline(diverged, color="C3", lw=1.5, label=f"diverged at epoch {diverged} (loss not finite)")


def accuracy_limits(rows: List[EpochMetrics], splits: List[str]) -> Optional[Tuple[float, float]]:
    """The accuracy axis zoomed to the data with a margin, within [0, 1]: a 96.6% -> 98.7% curve
    must not be a flat line at the top of a 0-1 axis."""
    values = [v for r in rows for v in (getattr(r, f"{name}_accuracy") for name in splits) if np.isfinite(v)]
    if not values:
        return None
    low, high = min(values), max(values)
    margin = max(0.005, 0.08 * (high - low))
    return max(0.0, low - margin), min(1.0, high + margin)


def plot_confusion(matrix: np.ndarray, classes: List[str], title: str, path: Path) -> None:
    """confusion_figure saved as a PNG."""
    save(confusion_figure(matrix, classes, title), path)


def confusion_figure(matrix: np.ndarray, classes: List[str], title: str):
    """The test confusion matrix: counts, true label by row, with each row's share as colour."""
    matrix = np.asarray(matrix)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = new_figure(figsize=(7.2, 6.4))
    ax = fig.subplots()
    from matplotlib.colors import PowerNorm

    # A power scale: a 5% error shows as a clear blue, not as white beside a dark diagonal.
    image = ax.imshow(shares, cmap="Blues", norm=PowerNorm(gamma=0.3, vmin=0, vmax=1))
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize="small",
                color="w" if image.norm(shares[i, j]) > 0.75 else "k")
    ax.set_xticks(range(len(classes)), classes, rotation=45 if max(map(len, classes)) > 2 else 0)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_title(title, fontsize="medium", wrap=True)
    return fig


def plot_misclassified(images: np.ndarray, truth: List[int], predicted: List[int], classes: List[str],
                       title: str, path: Path) -> None:
    """misclassified_figure saved as a PNG."""
    save(misclassified_figure(images, truth, predicted, classes, title), path)


def misclassified_figure(images: np.ndarray, truth: List[int], predicted: List[int], classes: List[str], title: str):
    """Up to 36 misclassified test images, each with its true and predicted label.

    One image of all of them, labelled on one axes: 36 small axes took ~1.3 s to draw, most
    of a short run's time, where this takes ~0.2 s."""
    long = max(map(len, classes), default=1) > 3  # Fashion-MNIST's names: two lines, wider cells
    count, side, gap, label = len(images), IMAGE_SIDE, (26 if long else 8), (26 if long else 16)  # pixels
    columns = min(max(count, 1), 6 if long else 9)
    rows = max(1, -(-count // columns))
    mosaic = np.zeros((rows * (label + side + gap), columns * (side + gap)), np.uint8)  # 0: white in gray_r
    fig = new_figure(figsize=((1.9 if long else 1.3) * columns + 0.4, (1.55 if long else 1.45) * rows + 0.6))
    ax = fig.add_subplot()
    ax.set_axis_off()
    for k in range(count):
        top, left = (k // columns) * (label + side + gap) + label, (k % columns) * (side + gap) + gap // 2
        mosaic[top:top + side, left:left + side] = np.asarray(images[k]).reshape(side, side)
        text = f"{classes[truth[k]]}\n→ {classes[predicted[k]]}" if long else f"{classes[truth[k]]} → {classes[predicted[k]]}"
        ax.text(left + side / 2, top - 2, text, ha="center", va="bottom", fontsize="x-small" if long else "small",
                color="C3", linespacing=1.0)
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    if not count:
        ax.text(0.5, 0.5, "no misclassified test image", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title, fontsize="medium", wrap=True)
    return fig
