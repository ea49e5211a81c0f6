"""A sweep's figures (comparison.png): every job's test accuracy by epoch with a heatmap of the
objective for a two-key grid, an Optuna search's history and objective against each parameter,
and compare_runs.py's settings ranked over their seeds."""

from pathlib import Path
from typing import List

import numpy as np

from mnist_exp.analysis import selection
from mnist_exp.files.figure_files import new_figure, save


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
    fig = new_figure(figsize=(13 if heatmap else 8, 5))
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
    save(fig, path)


def _heatmap(ax, table, keys: List[str], fig) -> None:
    """The objective that judges the sweep (its validation accuracy where it has one) of each
    completed job, by the two swept keys."""
    grid = table.pivot_table(index=keys[0], columns=keys[1], values="objective", aggfunc="mean")
    what = selection.AXIS[selection.VALIDATION if (table["objective_metric"] == selection.VALIDATION).all()
                          else selection.TEST]
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

    fig = new_figure(figsize=(9, 5))
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
    save(fig, path)


def plot_search(table, params: List[str], path: Path) -> None:
    """search_figure saved as a PNG."""
    save(search_figure(table, params), path)


def search_figure(table, params: List[str]):
    """An Optuna search: the objective of each trial in order with the best so far, and the
    objective against each searched parameter (a grid heatmap would be a sparse diagonal)."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(figsize=(5 + 4 * len(params), 4.5))
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
