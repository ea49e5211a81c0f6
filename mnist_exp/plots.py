"""Figures: learning curves of one run, and the comparison of a sweep's runs."""

import io
from pathlib import Path
from typing import BinaryIO, List, Union

import numpy as np

from mnist_exp.train import EpochMetrics


def _figure(layout="constrained", **kwargs):
    """A bare Figure: no pyplot, so no GUI backend, no global state, a faster import."""
    from matplotlib.figure import Figure

    return Figure(layout=layout, **kwargs)


def warm_up() -> None:
    """Import matplotlib and draw a throwaway figure (fonts, text layout, PNG writer), so the
    next figure costs only its own drawing: figure_process's helper does this while a run trains."""
    rows = [EpochMetrics(epoch, 1.0, 0.5, 1.0, 0.5, 0.0) for epoch in (0, 1)]
    plot_curves(rows, "warm-up", io.BytesIO())


def plot_curves(rows: List[EpochMetrics], title: str, path: Union[Path, BinaryIO]) -> None:
    """Loss and accuracy, train (and validation) and test, against the epoch, saved as a PNG."""
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in rows]
    splits = ["train", "val", "test"] if rows and rows[0].val_loss is not None else ["train", "test"]
    fig = _figure(layout=None, figsize=(11, 4.2))  # a fixed layout: half the time of a constrained one
    fig.subplots_adjust(left=0.065, right=0.985, bottom=0.12, top=0.88, wspace=0.22)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, key, label in ((ax_loss, "loss", "loss per sample"), (ax_acc, "accuracy", "accuracy")):
        for name, marker in zip(splits, "o^s" if len(splits) == 3 else "os"):
            ax.plot(epochs, [getattr(r, f"{name}_{key}") for r in rows], f"{marker}-", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(min(epochs, default=0) - 0.5, max(epochs, default=0) + 0.5)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_acc.set_ylim(0, 1)
    fig.suptitle(title, fontsize="medium", wrap=True)
    fig.savefig(path, dpi=110)


def run_label(row, keys: List[str]) -> str:
    label = " ".join(f"{k}={row[k]:g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys)
    return label or f"job {row['job']}"


def plot_comparison(history, table, keys: List[str], path: Path) -> None:
    """Test accuracy of every run by epoch; with two swept keys, also a heatmap of the final one.

    `history` and `table` are results.load_history / the sweep table (pandas DataFrames).
    """
    from matplotlib.ticker import MaxNLocator

    heatmap = (len(keys) == 2 and table[keys].drop_duplicates().shape[0] > 1
               and table["final_test_accuracy"].notna().any())  # nothing to colour when every job failed
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
    fig.savefig(path, format="png", dpi=110)


def _heatmap(ax, table, keys: List[str], fig) -> None:
    grid = table.pivot_table(index=keys[0], columns=keys[1], values="final_test_accuracy", aggfunc="mean")
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index])
    ax.set_xticks(range(len(grid.columns)), [f"{v:g}" for v in grid.columns])
    ax.set_ylabel(keys[0])
    ax.set_xlabel(keys[1])
    for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        light = not np.isnan(value) and image.norm(value) > 0.6  # viridis turns yellow at the top
        ax.text(j, i, "n/a" if np.isnan(value) else f"{value:.3f}", ha="center", va="center",
                color="k" if light else "w")
    fig.colorbar(image, ax=ax, label="final test accuracy")
    ax.set_title("final test accuracy")


def plot_ranked(history, table, keys: List[str], path: Path) -> None:
    """Mean test accuracy by epoch for each setting, with a ±1 std band over its seeds."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(figsize=(9, 5))
    ax = fig.subplots()
    import pandas as pd

    def name(values) -> str:  # as text: a missing value (a damaged record) equals itself
        return "|".join("NA" if pd.isna(v) else str(v) for v in values)

    names = history[keys].apply(name, axis=1)
    for _, setting in table.iterrows():
        mask = names == name(setting[k] for k in keys)
        curve = history[mask].groupby("epoch")["test_accuracy"].agg(["mean", "std"]).fillna({"std": 0.0})
        line, = ax.plot(curve.index, curve["mean"], "o-", ms=3, label=f"#{setting['rank']} " + run_label(setting, keys))
        ax.fill_between(curve.index, curve["mean"] - curve["std"], curve["mean"] + curve["std"],
                        color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{len(table)} settings, ranked")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
