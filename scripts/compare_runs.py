#!/usr/bin/env python
"""Rank runs from any mix of run dirs, sweep dirs or outputs/ trees, and plot them.

    python scripts/compare_runs.py outputs/multirun/2026-11-23/10-00-00.000000 [more paths]
    python scripts/compare_runs.py outputs/ --metric best_test_accuracy --out ranked.png

Runs that differ only by seed (e.g. a sweep with seed=1,2,3) are pooled as mean ± std.
"""

import argparse
import sys
from pathlib import Path

from mnist_exp import compare, results
from mnist_exp.plots import plot_ranked


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs, sweep dirs or outputs/ trees")
    parser.add_argument("--metric", default="final_test_accuracy",
                        help="column of results.load_runs to rank by (default: final_test_accuracy)")
    parser.add_argument("--out", type=Path, default=Path("compare_runs.png"), help="figure to write")
    args = parser.parse_args(argv)
    try:
        runs = results.load_runs(args.paths)
    except FileNotFoundError as e:
        print(f"compare_runs: error: {e}", file=sys.stderr)
        return 2
    if runs.empty:
        print(f"compare_runs: error: no runs (no summary.json) under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    if args.metric not in runs.columns:
        print(f"compare_runs: error: unknown metric '{args.metric}'", file=sys.stderr)
        return 2
    table = compare.rank(runs, args.metric)
    keys = compare.setting_keys(runs)
    print(table[["rank", *keys, args.metric, "runs", "completed", "seeds"]].to_string(index=False))
    plot_ranked(results.load_history(args.paths), table, keys, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
