"""Ranking runs across sweeps: settings that differ only by seed are pooled as mean ± std.

Used by scripts/compare_runs.py (figure: sweep_figures.plot_ranked); callable from a notebook on
results.load_runs output.
"""

from typing import List

import pandas as pd

from mnist_exp.analysis import results


def setting_keys(runs: pd.DataFrame) -> List[str]:
    """Config keys that tell settings apart: those that vary across runs, the seed and where
    the run ran aside. The data set (its name and files) is one of them, so runs on different
    data are never pooled."""
    candidates = [k for k in results.CONFIG_TYPES if k != "seed" and k not in results.LOCATION_KEYS]
    keys = [k for k in candidates if runs[k].nunique(dropna=False) > 1]
    return keys or [k for k in candidates if not k.startswith("data.")]


def rank(runs: pd.DataFrame, metric: str = "final_test_accuracy") -> pd.DataFrame:
    """One row per setting, best mean first: mean, std and count of `metric` over its seeds.
    Repeats of one seed are one sample (their mean), not several: a spread needs two seeds."""
    keys = setting_keys(runs)
    completed = runs.assign(_done=runs["status"] == "completed")
    per_seed = completed.groupby([*keys, "seed"], dropna=False).agg(
        value=(metric, "mean"), done=("_done", "any")).reset_index()
    grouped, by_seed = runs.groupby(keys, dropna=False), per_seed.groupby(keys, dropna=False)
    table = by_seed["value"].agg(mean="mean", std="std").reset_index()
    table["runs"] = grouped.size().to_numpy()
    table["completed"] = grouped["status"].agg(lambda s: int((s == "completed").sum())).to_numpy()
    table["seeds"] = grouped["seed"].agg(lambda s: ",".join(map(str, sorted(s.dropna().unique())))).to_numpy()
    seeds_done = by_seed["done"].sum().to_numpy()
    table = table.assign(_seeds_done=seeds_done)
    table = table.sort_values("mean", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    table[metric] = [_pm(m, s, n) for m, s, n in zip(table["mean"], table["std"], table["_seeds_done"])]
    return table.drop(columns="_seeds_done")


def _pm(mean: float, std: float, n: int) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.4f}" if n < 2 or pd.isna(std) else f"{mean:.4f} ± {std:.4f}"
