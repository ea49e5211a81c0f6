"""The sweep summary: summary.csv and comparison.png at the root of a sweep directory.

summary.csv is rebuilt from the job directories after every job (inside the worker that ran
it, under a lock), so it is complete whichever jobs failed or whichever launcher ran them;
comparison.png and report.html (mnist_exp.report) are drawn when the sweep ends. Rebuild them
by hand at any time:
    python -m mnist_exp.summarize outputs/multirun/DATE/TIME
"""

import argparse
import functools
import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import pandas as pd
import yaml
from filelock import FileLock
from hydra.core.override_parser.overrides_parser import OverridesParser

from mnist_exp.analysis import results, selection, slurm_jobs
from mnist_exp.files.atomic import write_atomic
from mnist_exp.files.reading import read_text

SUMMARY_CSV = "summary.csv"
COMPARISON_PNG = "comparison.png"


def overridden_keys(runs: pd.DataFrame) -> List[str]:
    """Config keys set on the command line of any job, in the order they were given."""
    keys: List[str] = []
    for overrides in runs["overrides"].dropna():
        for item in overrides.split():
            key = item.split("=", 1)[0].lstrip("+~")
            if key in results.CONFIG_TYPES and key not in keys:
                keys.append(key)
    return keys


def sweep_hydra_config(sweep_dir: Path) -> dict:
    """The `hydra` node of the sweep's multirun.yaml (empty when there is none)."""
    path = sweep_dir / "multirun.yaml"
    if not os.path.lexists(path):
        return {}
    try:
        hydra_cfg = (yaml.safe_load(read_text(path)) or {}).get("hydra", {})
        if not isinstance(hydra_cfg, dict):
            raise ValueError("its hydra node is not a mapping")
        return hydra_cfg
    except (OSError, ValueError, AttributeError, yaml.YAMLError) as e:  # a damaged file: the jobs still tell
        warnings.warn(f"{path}: cannot be read ({e.__class__.__name__}: {str(e)[:200]}); "
                      "the swept keys are taken from the jobs", stacklevel=2)
        return {}


def _sweep_overrides(hydra_cfg: dict) -> list:
    return OverridesParser.create().parse_overrides(hydra_cfg.get("overrides", {}).get("task", []))


def _search(hydra_cfg: dict) -> Optional[dict]:
    """The sweeper's settings, for an Optuna search; None for a grid."""
    sweeper = hydra_cfg.get("sweeper") or {}
    return sweeper if "optuna" in str(sweeper.get("_target_", "")) else None


def declared_sweep_keys(sweep_dir: Path) -> List[str]:
    """Keys the sweep varies by design: sweep overrides (lr=a,b, range(...)) and sweeper params."""
    hydra_cfg = sweep_hydra_config(sweep_dir)
    keys = [o.key_or_group for o in _sweep_overrides(hydra_cfg) if o.is_sweep_override()]
    keys += list((hydra_cfg.get("sweeper") or {}).get("params") or {})
    return [k for k in dict.fromkeys(keys) if k in results.CONFIG_TYPES]


def searched_params(sweep_dir: Path) -> List[str]:
    """The keys an Optuna search varies (empty for a grid sweep)."""
    search = _search(sweep_hydra_config(sweep_dir))
    return [k for k in (search.get("params") or {}) if k in results.CONFIG_TYPES] if search else []


def planned_jobs(sweep_dir: Path) -> Optional[List[str]]:
    """The jobs the sweep was asked for, as their override strings (multirun.yaml): a grid's
    product of values, or an Optuna search's n_trials (no overrides known in advance)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    hydra_cfg = sweep_hydra_config(sweep_dir)
    if not hydra_cfg:
        return None
    search = _search(hydra_cfg)
    if search:
        return [""] * int(search.get("n_trials") or 0)
    overrides = _sweep_overrides(hydra_cfg)
    return [" ".join(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def swept_keys(sweep_dir: Path, runs: pd.DataFrame) -> List[str]:
    """The keys that tell the jobs apart: declared ones, then any others that differ."""
    overridden = overridden_keys(runs)
    varying = [k for k in overridden if runs[k].nunique() > 1]
    return list(dict.fromkeys(declared_sweep_keys(sweep_dir) + varying)) or overridden


def sweep_table(runs: pd.DataFrame, keys: List[str], search: bool = False) -> pd.DataFrame:
    """One row per job, with the value that judges it (`objective`, of a completed job) and
    which metric that is (selection.py); a search's rows also have their trial."""
    runs = runs.copy()
    metric = selection.objective_metric(runs, search)
    runs["objective"] = selection.objective(runs, metric)
    runs["objective_metric"] = metric
    keep = ["job", *(["trial"] if search else []), *keys, "status", "objective", "objective_metric", "reason",
            "epochs_run",
            *(c for c in runs.columns if c.startswith(("final_", "best_"))), "wall_seconds", "run_dir"]
    return runs[keep].sort_values("job", kind="stable").reset_index(drop=True)


def is_search(sweep_dir: Path) -> bool:
    """An Optuna search (a grid otherwise)."""
    return _search(sweep_hydra_config(sweep_dir)) is not None


def write_summary(sweep_dir: Path, figure: bool = True, ask_slurm: bool = True) -> pd.DataFrame:
    """(Re)write summary.csv (and comparison.png) from the job dirs; safe to call concurrently.
    With `ask_slurm`, a SLURM sweep's job states are collected first (analysis/slurm_jobs.py)."""
    sweep_dir = Path(sweep_dir)
    with FileLock(sweep_dir / ".summary.lock"):
        if ask_slurm and os.path.lexists(sweep_dir / slurm_jobs.RECORD):
            slurm_jobs.collect(sweep_dir, results.run_statuses(sweep_dir))
        runs = results.load_runs(sweep_dir, ask_slurm=False)
        keys = swept_keys(sweep_dir, runs)
        table = sweep_table(runs, keys, is_search(sweep_dir))
        whole = with_pending(table, planned_jobs(sweep_dir) or [])
        whole.attrs["keys"] = keys
        write_atomic(sweep_dir / SUMMARY_CSV, lambda tmp: whole.to_csv(tmp, index=False))
        whole.attrs["figure"] = figure and len(table) > 0 and _draw(sweep_dir, table, keys)
        whole.attrs["report"] = figure and len(table) > 0 and _report(sweep_dir)
    return whole


def with_pending(table: pd.DataFrame, planned: List[str]) -> pd.DataFrame:
    """The table with a `pending` row for each planned job that has no record yet, its swept
    values read from its overrides (a search's trials have none before they are asked)."""
    started = started_jobs(table)
    pending = [{"job": num, "status": "pending", **_values(overrides, table.columns)}
               for num, overrides in enumerate(planned) if num not in started]
    if not pending:
        return table
    rows = pd.DataFrame(pending).astype({k: table[k].dtype for k in pending[0] if k in table and k != "status"},
                                        errors="ignore")
    whole = pd.concat([table, rows], ignore_index=True) if len(table) else rows.reindex(columns=table.columns)
    return whole.sort_values("job", kind="stable").reset_index(drop=True)


def started_jobs(table: pd.DataFrame) -> set:
    """The job numbers with a record: a record whose summary cannot be read has no job number,
    but its directory has (hydra.sweep.subdir is the number, unless set otherwise)."""
    unnumbered = table.loc[table["job"].isna(), "run_dir"].dropna()
    return set(table["job"].dropna().astype(int)) | {int(Path(d).name) for d in unnumbered if Path(d).name.isdigit()}


def _values(overrides: str, columns) -> dict:
    """{key: typed value} of a job's plain overrides that are columns of the table."""
    pairs = (_parsed(item) for item in overrides.split())
    return {key: value for key, value in pairs if key in columns}


@functools.lru_cache(maxsize=4096)
def _parsed(item: str) -> tuple:
    """(key, typed value) of one override; a grid repeats each few thousand times (a 10,000-job
    grid's pending rows took 4 s to read value by value)."""
    key, _, text = item.partition("=")
    key = key.lstrip("+~")
    try:
        return (key, results.typed_value(key, yaml.safe_load(text))) if key in results.CONFIG_TYPES else ("", None)
    except yaml.YAMLError:
        return "", None


def _report(sweep_dir: Path) -> bool:
    """report.html beside comparison.png, or False and a one-line warning: a report that cannot
    be built (no plotly, a damaged run) must never fail the sweep."""
    from mnist_exp.report import REPORT_HTML, MissingExtra, build_report

    try:
        build_report(sweep_dir, sweep_dir / REPORT_HTML)
        return True
    except Exception as e:  # noqa: BLE001 (the report is a view: whatever stops it, the sweep stands)
        reason = str(e) if isinstance(e, MissingExtra) else e.strerror if isinstance(e, OSError) and e.strerror \
            else f"{e.__class__.__name__}: {str(e)[:200]}"
        warnings.warn(f"{sweep_dir / REPORT_HTML} not written ({reason})", stacklevel=2)
        return False


def _draw(sweep_dir: Path, table: pd.DataFrame, keys: List[str]) -> bool:
    """comparison.png (written atomically), or False and a one-line warning: a figure that
    cannot be drawn must not cost the table, which is written already."""
    from mnist_exp.analysis.sweep_figures import plot_comparison, plot_search

    try:
        searched = searched_params(sweep_dir)
        if searched:
            plot_search(table, searched, sweep_dir / COMPARISON_PNG)
        else:
            plot_comparison(results.load_history(sweep_dir), table, keys, sweep_dir / COMPARISON_PNG)
        return True
    except Exception as e:  # noqa: BLE001 (matplotlib's errors have no common class)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else f"{e.__class__.__name__}: {str(e)[:200]}"
        warnings.warn(f"{sweep_dir / COMPARISON_PNG} not drawn ({reason}); {SUMMARY_CSV} is complete", stacklevel=2)
        return False


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_exp.summarize",
                                     description="Rebuild a sweep's summary.csv and comparison.png.")
    parser.add_argument("sweep_dir", type=Path)
    args = parser.parse_args(argv)
    results.brief_warnings("mnist_exp.summarize")  # as its errors begin
    if not args.sweep_dir.is_dir():
        _exit(f"{args.sweep_dir}: not a directory", 2)
    try:
        table = write_summary(args.sweep_dir)
    except OSError as e:
        _exit(f"cannot write into {args.sweep_dir}: {e.strerror or e}", 4)
    if table.empty:
        _exit(f"{args.sweep_dir}: no runs found (no */summary.json)", 2)
    shown = [c for c in table.columns if not c.startswith(("final_train", "best_t", "best_train"))]
    shown = [c for c in shown if c not in ("run_dir", "reason", "objective_metric")] + ["best_test_accuracy"]
    print(table[shown].to_string(index=False))
    print(state_lines(table))
    drawn = f", {args.sweep_dir / COMPARISON_PNG}" if table.attrs.get("figure") else ""
    drawn += f", {args.sweep_dir / 'report.html'}" if table.attrs.get("report") else ""
    print(f"wrote {args.sweep_dir / SUMMARY_CSV}{drawn}")
    best = selection.best_line(table, table.attrs["keys"])
    if best:
        print(best)


def state_lines(table: pd.DataFrame) -> str:
    """The sweep's state in words: how many jobs have each status, then why each job that is
    not completed is where it is (pending, running, cancelled, failed ...)."""
    counts = table["status"].value_counts(sort=False)  # in the order the jobs show them
    lines = [f"{len(table)} job{'s' * (len(table) != 1)}: " + ", ".join(f"{n} {status}" for status, n in counts.items())]
    for _, row in table[(table["status"] != "completed") & table["reason"].notna()].iterrows():
        lines.append(f"job {row['job']} {row['status']}: {row['reason']}")
    return "\n".join(lines)


def _exit(message: str, code: int) -> None:
    print(f"mnist_exp.summarize: error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
