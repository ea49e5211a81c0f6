"""Runs as pandas DataFrames, for comparing experiments in a notebook.

    from mnist_exp import results
    runs = results.load_runs("outputs/")        # one row per run
    history = results.load_history("outputs/")  # one row per run per epoch

Both take a run dir, a sweep dir, a whole outputs/ tree, or a list of those. Config keys
are typed columns (float lr, int hidden_size, ...), whatever the JSON or CSV held.
"""

import json
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Union

import pandas as pd

from mnist_exp.config import RUN_KEYS, Config
from mnist_exp.record import METRICS, SUMMARY

PathLike = Union[str, Path]
# Top-level config keys of the schema -> their Python type (nested groups like data are left out).
CONFIG_TYPES = {f.name: f.type for f in fields(Config) if not is_dataclass(f.type) and f.name not in RUN_KEYS}
METRIC_NAMES = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
_DTYPES = {float: "float64", int: "Int64", str: "string", bool: "boolean"}


def find_run_dirs(paths: Union[PathLike, Iterable[PathLike]]) -> List[Path]:
    """Every directory holding a summary.json at or below `paths`, sorted, no duplicates."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found = set()
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such run, sweep or outputs directory")
        if (path / SUMMARY).is_file():
            found.add(path.resolve())
        found.update(p.parent.resolve() for p in path.rglob(SUMMARY) if not _hidden(p, path))
    return sorted(found, key=_natural)


def load_runs(paths: Union[PathLike, Iterable[PathLike]]) -> pd.DataFrame:
    """One row per run: config keys, status, reason, epochs run, final and best metrics, run dir."""
    rows = [_run_row(run_dir) for run_dir in find_run_dirs(paths)]
    columns = ["job", *CONFIG_TYPES, "status", "reason", "epochs_run",
               *(f"final_{m}" for m in METRIC_NAMES), "best_epoch", *(f"best_{m}" for m in METRIC_NAMES),
               "wall_seconds", "overrides", "run_dir"]
    return _typed(pd.DataFrame(rows, columns=columns))


def load_history(paths: Union[PathLike, Iterable[PathLike]]) -> pd.DataFrame:
    """One row per run per epoch: the metrics.csv columns plus the run's config keys and status."""
    frames = []
    for run_dir in find_run_dirs(paths):
        if not (run_dir / METRICS).is_file():
            continue
        metrics = pd.read_csv(run_dir / METRICS)
        run = _run_row(run_dir)
        for key in ["job", *CONFIG_TYPES, "status"]:
            metrics[key] = run[key]
        metrics["run_dir"] = str(run_dir)
        frames.append(metrics)
    if not frames:
        return _typed(pd.DataFrame(columns=["epoch", *METRIC_NAMES, "seconds", "job", *CONFIG_TYPES,
                                            "status", "run_dir"]))
    return _typed(pd.concat(frames, ignore_index=True))


def _run_row(run_dir: Path) -> Dict[str, Any]:
    summary = json.loads((run_dir / SUMMARY).read_text())
    config = summary.get("config") or {}
    job = summary.get("job") or {}
    final, best = summary.get("final") or {}, summary.get("best") or {}
    row = {"job": job.get("num"), **{key: config.get(key) for key in CONFIG_TYPES},
           "status": summary.get("status"), "reason": summary.get("reason"),
           "epochs_run": summary.get("epochs_run", 0), "best_epoch": best.get("epoch"),
           "wall_seconds": summary.get("wall_seconds"), "overrides": " ".join(job.get("overrides", [])),
           "run_dir": str(run_dir)}
    for m in METRIC_NAMES:
        row[f"final_{m}"], row[f"best_{m}"] = final.get(m), best.get(m)
    return row


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Config columns typed by the schema; ints stay ints (nullable where a value is missing)."""
    types = {key: _DTYPES[t] for key, t in CONFIG_TYPES.items() if t in _DTYPES and key in df}
    types.update({c: "Int64" for c in ("job", "epoch", "epochs_run", "best_epoch") if c in df})
    for column, dtype in types.items():
        df[column] = df[column].astype(dtype)
        if dtype == "Int64" and df[column].notna().all():
            df[column] = df[column].astype("int64")
    for column in df.columns:
        if column in METRIC_NAMES or column.startswith(("final_", "best_")) and column != "best_epoch":
            df[column] = df[column].astype("float64")
    return df


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _natural(path: Path):
    """Sort job dirs 0, 1, 2, ..., 10 rather than 0, 1, 10, 2."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]
