"""The run list: `python -m mnist_exp.runs [PATH] [--status S] [--sort KEY]`.

One line per run under PATH (default outputs/), newest first: when it started, its name,
status, the config keys that differ between the runs listed, the test accuracy of the kept
weights and the best one, and the wall time. Deleting a run stays the user's `rm -r`.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

STATUSES = ("running", "completed", "pruned", "diverged", "interrupted", "failed", "unreadable")


def differing_keys(runs) -> List[str]:
    """Config keys whose values differ between the runs (where they ran aside)."""
    from mnist_exp.analysis import results

    return [k for k in results.CONFIG_TYPES if k not in results.LOCATION_KEYS
            and runs[k].astype(str).nunique() > 1]


def table(paths: List[Path], status: Optional[str] = None, sort: Optional[str] = None):
    from mnist_exp.analysis import results

    runs = results.load_runs(paths)
    if status:
        runs = runs[runs["status"] == status]
    keys = differing_keys(runs)
    columns = ["started_at", "name", "status", *keys, "epochs_run", "final_test_accuracy", "best_test_accuracy",
               "wall_seconds", "run_dir"]
    shown = runs[columns].rename(columns={"started_at": "when", "final_test_accuracy": "test_acc",
                                          "best_test_accuracy": "best_acc", "wall_seconds": "seconds"})
    key = {"when": "when", "final_test_accuracy": "test_acc", "best_test_accuracy": "best_acc",
           "wall_seconds": "seconds"}.get(sort, sort) if sort else "when"
    if key not in shown.columns:
        raise KeyError(key)
    ascending = key in ("name", "status", "run_dir")
    return shown.sort_values(key, ascending=ascending, na_position="last", kind="stable").reset_index(drop=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_exp.runs", description=__doc__.splitlines()[0][4:])
    parser.add_argument("path", nargs="*", type=Path, default=[Path("outputs")],
                        help="run dirs, sweep dirs or outputs/ trees (default: outputs)")
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--sort", help="a column to sort by, largest first (default: when, newest first)")
    args = parser.parse_args(argv)
    from mnist_exp.analysis import cli, results

    results.brief_warnings(parser.prog)
    try:
        shown = table(args.path, args.status, args.sort)
    except OSError as e:  # missing, not a directory, no permission
        print(f"{parser.prog}: error: {cli.unreadable(e)}", file=sys.stderr)
        return 2
    except KeyError as e:
        print(f"{parser.prog}: error: --sort {e.args[0]}: not a column of the list", file=sys.stderr)
        return 2
    if shown.empty:
        print(f"no runs under {', '.join(map(str, args.path))}" + (f" with status {args.status}" if args.status else ""))
        return 0
    print(readable(shown).to_string(index=False))
    return 0


def readable(shown):
    """Text for a terminal: times to the second, floats to 4 places, long values cut short."""
    import pandas as pd

    def cell(value) -> str:
        if pd.isna(value):
            return ""
        if isinstance(value, float):
            return f"{value:.4f}"
        text = str(value)
        return text if len(text) <= 40 else text[:18] + "..." + text[-19:]

    shown = shown.copy()
    shown["when"] = shown["when"].str.slice(0, 19).str.replace("T", " ")
    run_dirs = [os.path.relpath(p) for p in shown.pop("run_dir")]  # whole: it is what a user copies
    shown = shown.astype(object).map(cell)
    shown["run_dir"] = run_dirs
    return shown


if __name__ == "__main__":
    sys.exit(main())
