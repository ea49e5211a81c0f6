"""Figures: learning curves of one run, and the comparison of a sweep's runs."""

import io
import os
from pathlib import Path
from typing import BinaryIO, List, Optional, Tuple, Union

import numpy as np

from mnist_exp.files.atomic import write_atomic
from mnist_exp.runner.train import EpochMetrics


def _figure(layout="constrained", **kwargs):
    """A bare Figure: no pyplot, so no GUI backend, no global state, a faster import."""
    from matplotlib.figure import Figure

    return Figure(layout=layout, **kwargs)


def _save(fig, path: Union[Path, str, BinaryIO], dpi: int = 110) -> None:
    """Save a figure; to a path atomically (temp file beside it, fsync, rename), so a run or
    sweep killed while it draws leaves the old file or none, never a truncated one."""
    if not isinstance(path, (str, os.PathLike)):
        fig.savefig(path, format="png", dpi=dpi)  # a file object: the caller owns it
        return
    path = Path(path)
    from matplotlib import rcParams

    fmt = path.suffix.lstrip(".").lower() or rcParams["savefig.format"]  # as savefig infers it from the name

    def write(target: Path) -> None:
        fig.savefig(target, format=fmt, dpi=dpi)

    write_atomic(path, write)


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


LOSS_NAMES = {"sse": "squared error, summed over the 10 outputs", "cross_entropy": "cross-entropy"}


def plot_curves(rows: List[EpochMetrics], title: str, path: Union[Path, BinaryIO], loss: str = "sse",
                restored_epoch: Optional[int] = None) -> None:
    """curves_figure saved as a PNG."""
    _save(curves_figure(rows, title, loss, restored_epoch), path)


def curves_figure(rows: List[EpochMetrics], title: str, loss: str = "sse", restored_epoch: Optional[int] = None):
    """Loss and accuracy, train (and validation) and test, against the epoch.
    The accuracy axis is zoomed to the data; the epoch early stopping restored is marked."""
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in rows]
    splits = ["train", "val", "test"] if rows and rows[0].val_loss is not None else ["train", "test"]
    fig = _figure(layout=None, figsize=(11, 4.6))  # a fixed layout: half the time of a constrained one
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
    _save(confusion_figure(matrix, classes, title), path)


def confusion_figure(matrix: np.ndarray, classes: List[str], title: str):
    """The test confusion matrix: counts, true label by row, with each row's share as colour."""
    matrix = np.asarray(matrix)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = _figure(figsize=(7.2, 6.4))
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
    _save(misclassified_figure(images, truth, predicted, classes, title), path)


def misclassified_figure(images: np.ndarray, truth: List[int], predicted: List[int], classes: List[str], title: str):
    """Up to 36 misclassified test images, each with its true and predicted label.

    One image of all of them, labelled on one axes: 36 small axes took ~1.3 s to draw, most
    of a short run's time, where this takes ~0.2 s."""
    long = max(map(len, classes), default=1) > 3  # Fashion-MNIST's names: two lines, wider cells
    count, side, gap, label = len(images), 28, (26 if long else 8), (26 if long else 16)  # pixels
    columns = min(max(count, 1), 6 if long else 9)
    rows = max(1, -(-count // columns))
    mosaic = np.zeros((rows * (label + side + gap), columns * (side + gap)), np.uint8)  # 0: white in gray_r
    fig = _figure(figsize=((1.9 if long else 1.3) * columns + 0.4, (1.55 if long else 1.45) * rows + 0.6))
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


def run_label(row, keys: List[str]) -> str:
    label = " ".join(f"{k}={row[k]:g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys)
    return label or f"job {row['job']}"


def plot_comparison(history, table, keys: List[str], path: Path) -> None:
    """Test accuracy of every run by epoch; with two swept keys, also a heatmap of the final one.

    `history` and `table` are results.load_history / the sweep table (pandas DataFrames).
    """
    from matplotlib.ticker import MaxNLocator

    heatmap = (len(keys) == 2 and table[keys].drop_duplicates().shape[0] > 1
               and table["objective"].notna().any())  # nothing to colour when every job failed
    fig = _figure(figsize=(13 if heatmap else 8, 5))
    axes = fig.subplots(1, 2 if heatmap else 1, squeeze=False)
    ax = axes[0, 0]
    for _, run in table.iterrows():
        curve = history[history["run_dir"] == run["run_dir"]]
        label = run_label(run, keys) + ("" if run["status"] == "completed" else f" ({run['status']})")
        ax.plot(curve["epoch"], curve["test_accuracy"], "o-", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=1 + len(table) // 12)
    ax.set_title(f"test accuracy of {len(table)} runs")
    if heatmap:
        _heatmap(axes[0, 1], table, keys, fig)
    _save(fig, path)


def _heatmap(ax, table, keys: List[str], fig) -> None:
    """The objective that judges the sweep (its validation accuracy where it has one) of each
    completed job, by the two swept keys."""
    grid = table.pivot_table(index=keys[0], columns=keys[1], values="objective", aggfunc="mean")
    what = "final val accuracy" if (table["objective_metric"] == "final_val_accuracy").all() else "final test accuracy"
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(grid.index)), [_tick(v) for v in grid.index])
    ax.set_xticks(range(len(grid.columns)), [_tick(v) for v in grid.columns])
    ax.set_ylabel(keys[0])
    ax.set_xlabel(keys[1])
    for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        light = not np.isnan(value) and image.norm(value) > 0.6  # viridis turns yellow at the top
        ax.text(j, i, "n/a" if np.isnan(value) else f"{value:.3f}", ha="center", va="center",
                color="k" if light else "w")
    fig.colorbar(image, ax=ax, label=what)
    ax.set_title(what)


def _log_ticks(ax, values) -> None:
    """Few plain labels on a log axis (0.001, 0.002, 0.005, ...): matplotlib's own label every
    minor tick of an axis under a decade wide, and they run into each other."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    if not len(values):
        return
    low, high = float(values.min()), float(values.max())
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    for subs in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** d for d in decades for m in subs if low / 1.5 <= m * 10.0 ** d <= high * 1.5]
        if len(ticks) <= 5:
            break
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(float(v))))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _tick(value) -> str:
    """A key's value as a tick label: numbers short (0.005, 1e-05), text and bools as they are."""
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def _numeric(values) -> bool:
    """Whether a key's values are numbers to place on an axis (bools and text are categories)."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def setting_curves(history, table, keys: List[str]) -> list:
    """(setting row, mean and std of test accuracy by epoch over its runs), for each row of
    `table`. Values are matched as text, an integral float as its integer (a history column
    with a missing value reads 50 as 50.0), a missing value (a damaged record) as itself."""
    import pandas as pd

    def text(value) -> str:
        if pd.isna(value):
            return "NA"
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    def name(values) -> str:
        return "|".join(text(v) for v in values)

    names = history[keys].apply(name, axis=1)
    return [(setting, history[names == name(setting[k] for k in keys)].groupby("epoch")["test_accuracy"]
             .agg(["mean", "std"]).fillna({"std": 0.0})) for _, setting in table.iterrows()]


def plot_ranked(history, table, keys: List[str], path: Path) -> None:
    """Mean test accuracy by epoch for each setting, with a ±1 std band over its seeds."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(figsize=(9, 5))
    ax = fig.subplots()
    for setting, curve in setting_curves(history, table, keys):
        line, = ax.plot(curve.index, curve["mean"], "o-", ms=3, label=f"#{setting['rank']} " + run_label(setting, keys))
        ax.fill_between(curve.index, curve["mean"] - curve["std"], curve["mean"] + curve["std"],
                        color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{len(table)} settings, ranked")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_search(table, params: List[str], path: Path) -> None:
    """search_figure saved as a PNG."""
    _save(search_figure(table, params), path)


def search_figure(table, params: List[str]):
    """An Optuna search: the objective of each trial in order with the best so far, and the
    objective against each searched parameter (a grid heatmap would be a sparse diagonal)."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(figsize=(5 + 4 * len(params), 4.5))
    axes = fig.subplots(1, 1 + len(params), squeeze=False)[0]
    trials = table.sort_values("job")
    value = trials["objective"].astype(float) if "objective" in trials \
        else trials["final_test_accuracy"].astype(float).where(trials["status"] == "completed")  # as Optuna was told
    ax = axes[0]
    ax.plot(trials["job"], value, "o", ms=4, label="trial")
    best = value.fillna(-np.inf).cummax().replace(-np.inf, np.nan)  # failed trials do not end the line
    ax.plot(trials["job"], best, "-", color="C3", label="best so far")
    failed = trials[value.isna()]
    if len(failed):
        ax.plot(failed["job"], [np.nanmin(value) if value.notna().any() else 0] * len(failed), "x", color="0.4",
                label="pruned, failed or diverged")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("objective: " + ("validation accuracy" if "objective" in trials else "test accuracy"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{len(trials)} trials")
    for ax, param in zip(axes[1:], params):
        _against(ax, trials[param], value, param)
        ax.set_xlabel(param)
        ax.grid(alpha=0.3)
        ax.set_title(f"objective against {param}")
    return fig


def _against(ax, values, objective, param: str) -> None:
    """The objective against one parameter: numbers on a (log, for a wide positive range)
    axis; text and bools (arch, optimizer, batch_norm) as one column per value."""
    if _numeric(values):
        numbers = values.astype(float)
        ax.plot(numbers, objective, "o", ms=4)
        positive = numbers.dropna()
        if param == "lr" or len(positive) and (positive > 0).all() and positive.max() / positive.min() > 50:
            ax.set_xscale("log")
            _log_ticks(ax, positive[positive > 0])
        return
    import pandas as pd

    labels = ["n/a" if pd.isna(v) else _tick(v) for v in values.astype(object)]
    categories = sorted(set(labels))
    ax.plot([categories.index(label) for label in labels], objective, "o", ms=4)
    ax.set_xticks(range(len(categories)), categories)
    ax.set_xlim(-0.5, len(categories) - 0.5)
