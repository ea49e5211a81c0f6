#!/usr/bin/env python
"""Rank runs from any mix of run dirs, sweep dirs or outputs/ trees, and plot them.

    python scripts/compare_runs.py outputs/multirun/2026-11-23/10-00-00.000000 [more paths]
    python scripts/compare_runs.py outputs/ --metric best_test_accuracy --out ranked.png

Runs that differ only by seed (e.g. a sweep with seed=1,2,3) are pooled as mean ± std.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from mnist_exp.analysis import cli, compare, results
from mnist_exp.analysis.sweep_figures import plot_ranked


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs, sweep dirs or outputs/ trees")
    parser.add_argument("--metric", default="final_test_accuracy",
                        help="column of results.load_runs to rank by (default: final_test_accuracy)")
    parser.add_argument("--out", type=Path, default=Path("compare_runs.png"), help="figure to write")
    args = parser.parse_args(argv)
    results.brief_warnings("compare_runs")
    try:
        runs = results.load_runs(args.paths)
    except OSError as e:  # missing, not a directory, no permission
        print(f"compare_runs: error: {cli.unreadable(e)}", file=sys.stderr)
        return 2
    runs = runs[runs["status"] != "unreadable"]  # each was named in a warning
    if runs.empty:
        print(f"compare_runs: error: no runs (no summary.json) under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    numeric = [c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c]) and c.startswith(("final_", "best_"))]
    if args.metric not in numeric:
        print(f"compare_runs: error: --metric {args.metric} is not a metric column; choose one of "
              f"{', '.join(numeric)}", file=sys.stderr)
        return 2
    try:
        out = figure_path(args.out)
    except ValueError as e:
        print(f"compare_runs: error: --out {args.out}: {e}", file=sys.stderr)
        return 2
    table = compare.rank(runs, args.metric)
    keys = compare.setting_keys(runs)
    print(table[["rank", *keys, args.metric, "runs", "completed", "seeds"]].to_string(index=False))
    try:
        history = results.load_history(args.paths)
        plot_ranked(history[history["run_dir"].isin(runs["run_dir"])], table, keys, out)
    except OSError as e:
        print(f"compare_runs: error: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 4
    print(f"wrote {out}")
    return 0


def figure_path(out: Path) -> Path:
    """Where the figure goes: into an existing directory as compare_runs.png, a name without a
    suffix as .png; a suffix matplotlib cannot write, or a missing directory, is refused."""
    from matplotlib.figure import Figure

    if out.is_dir():
        return out / "compare_runs.png"
    if not out.suffix:
        out = out.with_suffix(".png")
    formats = Figure().canvas.get_supported_filetypes()
    if out.suffix[1:].lower() not in formats:
        raise ValueError(f"matplotlib cannot write {out.suffix} files; use one of {', '.join('.' + f for f in sorted(formats))}")
    if not out.parent.is_dir():
        raise ValueError(f"the directory {out.parent} does not exist")
    return out


if __name__ == "__main__":
    from mnist_exp.analysis.cli import run_main

    sys.exit(run_main("compare_runs", main))
