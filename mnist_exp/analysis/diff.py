"""Two runs side by side: `python -m mnist_exp.diff RUN_A RUN_B`.

Prints the config keys whose values differ (equal keys hidden, as are where each ran), the data
set if it differs, and the metrics of each with B - A.
"""

import argparse
import warnings
from pathlib import Path
from typing import List, Tuple

import pandas as pd

from mnist_exp.analysis import varying

METRICS = ["final_test_accuracy", "best_test_accuracy", "final_test_loss", "final_train_accuracy",
           "final_train_loss", "epochs_run", "wall_seconds"]


def config_diff(a: pd.Series, b: pd.Series) -> List[Tuple[str, str, str]]:
    """(key, A's value, B's value) for each compared key that differs; a network key of the
    other architecture shows as blank."""
    rows = []
    for key in varying.COMPARED_KEYS:
        left, right = varying.value(a, key), varying.value(b, key)
        if repr(left) != repr(right):
            rows.append((key, varying.short(left), varying.short(right)))
    if varying.data_files_differ(a, b) and not any(key == "data.name" for key, _, _ in rows):
        rows.append(("data files (MD5)", "", "differ"))
    return rows


def metric_deltas(a: pd.Series, b: pd.Series) -> List[Tuple[str, str, str, str]]:
    """(metric, A, B, B - A), for the metrics both runs have or either has."""
    rows = []
    for metric in ["status", *METRICS]:
        left, right = a.get(metric), b.get(metric)
        if metric == "status":
            rows.append((metric, str(left), str(right), "" if left == right else "differs"))
            continue
        delta = right - left if pd.notna(left) and pd.notna(right) else None
        rows.append((metric, varying.short(left), varying.short(right),
                     "" if delta is None else f"{delta:+.4g}"))
    return rows


def load_pair(run_a: Path, run_b: Path) -> Tuple[pd.Series, pd.Series]:
    """The two runs' rows of results.load_runs; ValueError if a path holds no single readable run."""
    from mnist_exp.analysis import results

    pair = []
    for path in (run_a, run_b):
        with warnings.catch_warnings():  # a damaged record is the one error line below, not a warning too
            warnings.simplefilter("ignore")
            runs = results.load_runs(path)
        if len(runs) != 1:
            raise ValueError(f"{path}: holds {len(runs)} runs, not one (give a run dir)")
        if runs.iloc[0]["status"] == "unreadable":  # no config to compare: say why, not 'every key differs'
            raise ValueError(runs.iloc[0]["reason"])
        pair.append(runs.iloc[0])
    return pair[0], pair[1]


def render(a: pd.Series, b: pd.Series) -> str:
    """The diff as text for a terminal."""
    config = config_diff(a, b)
    lines = [f"A: {a['run_dir']}", f"B: {b['run_dir']}", ""]
    if config:
        lines += _columns([("config", "A", "B"), *config])
    else:
        lines.append("config: the same (where and how they ran aside)")
    lines += ["", *_columns([("metric", "A", "B", "B - A"), *metric_deltas(a, b)])]
    return "\n".join(lines)


def _columns(rows) -> List[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_exp.diff", description=__doc__.splitlines()[0][:-1])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args(argv)
    from mnist_exp.analysis import cli, results

    results.brief_warnings(parser.prog)
    try:
        a, b = load_pair(args.run_a, args.run_b)
    except OSError as e:
        return cli.fail(parser.prog, cli.unreadable(e))
    except ValueError as e:
        return cli.fail(parser.prog, str(e))
    print(render(a, b))
    return 0
