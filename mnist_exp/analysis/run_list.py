"""The run list: `python -m mnist_exp.runs [PATH...] [--status S] [--tag T] [--name N]
[--where "lr>0.001"] [--sort KEY] [--format table|csv|json] [--width N]`.

One line per run under PATH (default outputs/), newest first: when it started, its name, status,
tags, the config keys that differ between the runs listed (a network key only for the runs of
its architecture), the test accuracy of the kept weights and the best one, and the wall time.
The table fits the terminal (or --width N; whole lines into a pipe); csv and json
hold every column whole, for export. Deleting a run
stays the user's `rm -r`.
"""

import argparse
import fnmatch
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd

STATUSES = ("pending", "running", "completed", "pruned", "diverged", "interrupted", "cancelled", "failed", "unreadable")
RENAMED = {"started_at": "when", "final_test_accuracy": "test_acc", "best_test_accuracy": "best_acc",
           "wall_seconds": "seconds"}
WHERE = re.compile(r"\s*([\w.]+)\s*(>=|<=|!=|==|=|>|<)\s*(.+?)\s*$")
NARROWEST = 6  # a column is cut to no fewer characters than this ("0.0...")
LONGEST = 24  # a cell longer than this is cut in the middle (a name, tags, a list of channels)
KEPT = ("when", "name", "status", "test_acc", "run_dir")  # never left out nor cut


def differing_keys(runs) -> List[str]:
    """Config keys whose values differ between the runs (where they ran aside)."""
    from mnist_exp.analysis import varying

    return varying.varying_keys(runs)


def select(runs: pd.DataFrame, status: Optional[str] = None, tags: Sequence[str] = (), name: Optional[str] = None,
           where: Sequence[str] = ()) -> pd.DataFrame:
    """The runs with that status, every one of the tags, a name matching `name` (text in it, or
    a glob such as 'base*') and every `where` condition true; ValueError names a bad condition."""
    keep = pd.Series(True, index=runs.index)
    if status:
        keep &= runs["status"] == status
    for tag in tags:
        keep &= runs["tags"].fillna("").map(lambda text: tag in text.split(","))
    if name:
        pattern = name if any(c in name for c in "*?[") else f"*{name}*"
        keep &= runs["name"].fillna("").map(lambda text: fnmatch.fnmatchcase(text, pattern))
    for condition in where:
        keep &= _condition(runs, condition)
    return runs[keep]


def _condition(runs: pd.DataFrame, condition: str) -> pd.Series:
    """A `--where` condition (`key OP value`, OP one of > >= < <= = == !=) as a row mask."""
    match = WHERE.fullmatch(condition)
    if not match:
        raise ValueError(f'--where "{condition}": not KEY OP VALUE (OP one of > >= < <= = !=), e.g. "lr>0.001"')
    key, op, text = match.groups()
    key = {v: k for k, v in RENAMED.items()}.get(key, key)
    if key not in runs.columns or key in ("run_dir", "overrides", "reason"):
        raise ValueError(f'--where "{condition}": {key} is not a config key or metric of the runs')
    column = runs[key]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    try:
        wanted = float(text) if numeric else text.strip("'\"")
    except ValueError:
        raise ValueError(f'--where "{condition}": {key} is a number, and {text!r} is not one') from None
    values = column.astype(float) if numeric else column.astype(str).str.replace("True", "true").str.replace(
        "False", "false")
    if not numeric and op in (">", ">=", "<", "<="):
        raise ValueError(f'--where "{condition}": {key} is not a number; use = or !=')
    mask = {">": values > wanted, ">=": values >= wanted, "<": values < wanted, "<=": values <= wanted,
            "=": values == wanted, "==": values == wanted, "!=": values != wanted}[op]
    return mask.fillna(False).astype(bool)


def table(paths: List[Path], status: Optional[str] = None, sort: Optional[str] = None, tags: Sequence[str] = (),
          name: Optional[str] = None, where: Sequence[str] = ()):
    """The listed runs' columns (varying keys blank where they do not apply), sorted."""
    from mnist_exp.analysis import results, varying

    runs = select(results.load_runs(paths), status, tags, name, where)
    keys = differing_keys(runs)
    columns = ["started_at", "name", "status", *(["tags"] if runs["tags"].fillna("").str.len().any() else []),
               *keys, "epochs_run", "final_test_accuracy", "best_test_accuracy", "wall_seconds", "run_dir"]
    shown = runs[columns].astype(object)
    for key in keys:
        shown[key] = [varying.value(run, key) for _, run in runs.iterrows()]
    shown = shown.rename(columns=RENAMED)
    key = RENAMED.get(sort, sort) if sort else "when"
    if key not in shown.columns:
        raise KeyError(key)
    ascending = key in ("name", "status", "run_dir", "tags")
    present = shown[key].notna()  # blanks last, whichever the order
    shown = pd.concat([shown[present].sort_values(key, ascending=ascending, kind="stable"), shown[~present]])
    return shown.reset_index(drop=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_exp.runs", description="List runs, newest first.")
    parser.add_argument("path", nargs="*", type=Path, default=[Path("outputs")],
                        help="run dirs, sweep dirs or outputs/ trees (default: outputs)")
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--tag", action="append", default=[], help="only runs with this tag (repeat: all of them)")
    parser.add_argument("--name", help="only runs whose name holds this text, or matches this glob ('base*')")
    parser.add_argument("--where", action="append", default=[], metavar="COND",
                        help='only runs where KEY OP VALUE holds, e.g. "lr>0.001", "optimizer=adam" (repeat: all)')
    parser.add_argument("--sort", help="a column to sort by, largest first (default: when, newest first)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="table (fits the terminal, default), or csv / json with every column whole")
    parser.add_argument("--width", type=int, metavar="N",
                        help="fit the table in N columns (default: the terminal's; 0, or into a pipe: whole lines)")
    args = parser.parse_args(argv)
    from mnist_exp.analysis import cli, results

    results.brief_warnings(parser.prog)
    if args.width is not None and args.width < 0:
        parser.error(f"--width {args.width}: give a number of columns >= 0")
    try:
        shown = table(args.path, args.status, args.sort, args.tag, args.name, args.where)
    except OSError as e:  # missing, not a directory, no permission
        return cli.fail(parser.prog, cli.unreadable(e))
    except KeyError as e:
        return cli.fail(parser.prog, f"--sort {e.args[0]}: not a column of the list")
    except ValueError as e:
        return cli.fail(parser.prog, str(e))
    if args.format != "table":
        _export(shown, args.format)
        return 0
    if shown.empty:
        print(f"no runs under {', '.join(map(str, args.path))}" + (" that match" if _filtered(args) else ""))
        return 0
    text, width = readable(shown), _terminal_width() if args.width is None else args.width or None
    root = _common_root(text["run_dir"]) if width else ""
    if root:  # the part every run dir shares, said once below: what is left fits beside the rest
        text["run_dir"] = [os.path.relpath(p, root) for p in text["run_dir"]]
    print(fit(text, width or 1 << 30))
    if root:
        print(f"(run dirs under {root}{os.sep})")
    return 0


def _terminal_width() -> Optional[int]:
    """The terminal's columns; None (whole lines) into a pipe or a file."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return None


def _common_root(run_dirs: pd.Series) -> str:
    """The folder all the (relative) run dirs lie in, if there is more than one and it is not here."""
    if len(run_dirs) < 2:
        return ""
    root = os.path.commonpath(list(run_dirs))
    return "" if root in ("", ".", os.sep) or root in set(run_dirs) else root


def _filtered(args) -> bool:
    return bool(args.status or args.tag or args.name or args.where)


def _export(shown: pd.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        shown.to_csv(sys.stdout, index=False)
    else:
        sys.stdout.write(shown.to_json(orient="records", indent=1) + "\n")


def readable(shown):
    """Text for a terminal: times to the second, numbers as written (1e-05, 0.005), accuracies
    to 4 places, run dirs relative."""
    from mnist_exp.analysis import varying

    def cell(column: str, value) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        if column in ("test_acc", "best_acc"):
            return f"{value:.4f}"
        if column == "seconds":
            return f"{value:.1f}"
        return varying.short(value)

    text = pd.DataFrame({c: [cell(c, v) for v in shown[c]] for c in shown.columns})
    text["when"] = text["when"].str.slice(0, 19).str.replace("T", " ")
    text["run_dir"] = [os.path.relpath(p) for p in shown["run_dir"]]  # whole: it is what a user copies
    return text


def fit(text: pd.DataFrame, width: int) -> str:
    """The table in at most `width` columns: long cells cut in the middle to LONGEST, then the
    least needed columns left out (said below the table), then the widest cells cut further.
    when, name, status, test_acc and run_dir stay whole; tags may be cut, never left out."""
    cut = {c: min(max([len(c), *map(len, text[c])]), LONGEST if c not in KEPT else 1 << 30) for c in text.columns}
    left_out = []
    for column in _least_needed(list(text.columns)):
        if _width(cut) <= width:
            break
        left_out.append(column)
        del cut[column]
    while _width(cut) > width:
        widest = max((c for c in cut if c not in KEPT), key=lambda c: cut[c], default=None)
        if widest is None or cut[widest] <= max(NARROWEST, len(widest)):
            break
        cut[widest] -= 1
    lines = ["  ".join(_cell(c, c, cut[c]) for c in cut).rstrip()]
    lines += ["  ".join(_cell(row[c], c, cut[c]) for c in cut).rstrip() for _, row in text.iterrows()]
    if left_out:
        note = f"(left out to fit {width} columns: {', '.join(left_out)}; --format csv has them all)"
        lines += textwrap.wrap(note, max(width, 40), break_on_hyphens=False)
    return "\n".join(lines)


def _least_needed(columns: List[str]) -> List[str]:
    """Columns in the order they give way: the extras, then the varying keys from the last."""
    extras = [c for c in ("seconds", "epochs_run", "best_acc") if c in columns]
    keys = [c for c in columns if c not in KEPT and c not in extras and c != "tags"]  # tags are cut, never left out
    return extras + keys[::-1]


def _width(cut: dict) -> int:
    return sum(cut.values()) + 2 * (len(cut) - 1)


def _cell(value: str, column: str, width: int) -> str:
    if len(value) > width:
        value = value[:(width - 1) // 2] + "…" + value[-(width - 1 - (width - 1) // 2):]
    numeric = column in ("epochs_run", "test_acc", "best_acc", "seconds")
    return value.rjust(width) if numeric else value.ljust(width)


if __name__ == "__main__":
    sys.exit(main())
