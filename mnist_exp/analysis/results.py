"""Runs as pandas DataFrames, for comparing experiments in a notebook.

    from mnist_exp import results
    runs = results.load_runs("outputs/")        # one row per run
    history = results.load_history("outputs/")  # one row per run per epoch

Both take a run dir, a sweep dir, a whole outputs/ tree, or a list of those. Every config
key is a typed column (float lr, int hidden_size, string data.name, ...), whatever the JSON or
CSV held; lists (tags, data.mirrors) are comma-joined strings. `final_*` is the epoch whose
weights the run keeps (early stopping may have restored an earlier one than the last).
"""

import json
import os
import sys
import warnings
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import numpy as np
import pandas as pd

from mnist_exp.analysis import liveness, slurm_jobs
from mnist_exp.config import DATA_LOCATION, RUN_KEYS, Config
from mnist_exp.files.reading import open_regular, read_text, why
from mnist_exp.record import METRICS, SUMMARY

PathLike = Union[str, Path]


def _leaf_types(schema: type, prefix: str = "") -> Dict[str, type]:
    """Every config key of the schema, dotted (data.name, data.train_images.md5), -> its type;
    lists and optional strings are text."""
    types = {}
    for f in fields(schema):
        if is_dataclass(f.type):
            types.update(_leaf_types(f.type, f"{prefix}{f.name}."))
        else:
            types[f"{prefix}{f.name}"] = f.type if f.type in (int, float, bool, str) else str
    return types


CONFIG_TYPES = _leaf_types(Config)
# Keys that say where or how a run ran, not what it is: never what tells settings apart.
LOCATION_KEYS = (*RUN_KEYS, *(f"data.{key}" for key in DATA_LOCATION))
METRIC_NAMES = ["train_loss", "train_accuracy", "test_loss", "test_accuracy", "val_loss", "val_accuracy"]
KILLED = "it stopped without recording how (killed, or its machine went down)"
_DTYPES = {float: "float64", int: "Int64", str: "string", bool: "boolean"}


def brief_warnings(prog: str) -> None:
    """For command-line tools: a warning about one damaged run is one line on stderr."""
    shown = set()

    def show(message, *args, **kwargs) -> None:
        if str(message) not in shown:
            shown.add(str(message))
            print(f"{prog}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show


def find_run_dirs(paths: Union[PathLike, Iterable[PathLike]], slurm_sweeps: Optional[set] = None) -> List[Path]:
    """Every directory holding a summary.json (whatever it is) at or below `paths`, sorted, no
    duplicates; a folder below them that cannot be read is skipped with a warning. Sweep dirs
    with a record of SLURM jobs go into `slurm_sweeps`, if given."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found = set()
    for path in map(Path, paths):
        if not os.path.lexists(path):
            raise FileNotFoundError(f"{path}: no such run, sweep or outputs directory")
        if os.path.lexists(path / SUMMARY):
            found.add(path.resolve())
        if not path.is_dir():
            os.scandir(path).close()  # raises what makes it unreadable (not a directory, no permission)
        found.update(_walk(path, set() if slurm_sweeps is None else slurm_sweeps))
    return sorted(found, key=_natural)


def _walk(root: Path, slurm_sweeps: set) -> Iterable[Path]:
    """Run dirs below `root`, leaving out hidden folders (Hydra's .hydra/)."""
    for folder, dirs, files in os.walk(root, onerror=lambda e: _unreadable(e, root)):
        if SUMMARY in files or SUMMARY in dirs:
            yield Path(folder).resolve()
        if slurm_jobs.RECORD in files:
            slurm_sweeps.add(Path(folder).resolve())
        dirs[:] = [d for d in dirs if not d.startswith(".")]


def _unreadable(error: OSError, root: Path) -> None:
    if Path(error.filename) == root:
        raise error  # the folder asked for: the caller says it cannot be read
    warnings.warn(f"{error.filename}: skipped, it cannot be read ({error.strerror or error})", stacklevel=2)


def load_runs(paths: Union[PathLike, Iterable[PathLike]], per_class: bool = False,
              ask_slurm: bool = True) -> pd.DataFrame:
    """One row per run: config keys, status, reason, epochs run, the kept epoch's and the best
    metrics, run dir; with `per_class`, each class's test accuracy (test_accuracy_<class>).
    A SLURM sweep's jobs that have not started, or that SLURM ended, are as SLURM says (asked
    with `ask_slurm` where sacct exists, else as last collected; see analysis/slurm_jobs.py)."""
    sweeps: set = set()
    rows = [_run_row(run_dir, per_class) for run_dir in find_run_dirs(paths, sweeps)]
    rows += _slurm_rows(rows, sweeps, ask_slurm)
    classes = sorted({k for row in rows for k in row if k.startswith("test_accuracy_")}, key=_class_order)
    columns = ["job", "trial", *CONFIG_TYPES, "status", "reason", "epochs_run", "final_epoch",
               *(f"final_{m}" for m in METRIC_NAMES), "best_epoch", *(f"best_{m}" for m in METRIC_NAMES), *classes,
               "wall_seconds", "started_at", "overrides", "run_dir"]
    return _typed(pd.DataFrame(rows, columns=columns))


def run_statuses(sweep_dir: PathLike) -> Dict[Path, Optional[str]]:
    """Each run dir at or below `sweep_dir` -> the status its summary.json records."""
    return {run_dir: _text(_summary(run_dir).get("status")) for run_dir in find_run_dirs(sweep_dir)}


def _slurm_rows(rows: List[Dict[str, Any]], sweeps: set, ask: bool) -> List[Dict[str, Any]]:
    """SLURM's word on the rows of jobs it ended (updated in place), and a row for each job
    that has no directory yet (pending, or cancelled before it started)."""
    by_dir = {Path(row["run_dir"]): row for row in rows}
    own = {run_dir: row["status"] for run_dir, row in by_dir.items()}
    added = []
    for sweep_dir in sorted(sweeps):
        record = slurm_jobs.read(sweep_dir)
        for job in slurm_jobs.job_states(sweep_dir, record, own, ask) if record else []:
            if job["dir"] in by_dir:
                by_dir[job["dir"]].update(status=job["status"], reason=job["reason"])
                continue
            config = job.get("config") if isinstance(job.get("config"), dict) else {}
            added.append({"job": _value_int(job["num"]),
                          **{key: typed_value(key, _lookup(config, key)) for key in CONFIG_TYPES},
                          "status": job["status"], "reason": job["reason"], "epochs_run": 0,
                          "overrides": " ".join(map(str, job.get("overrides") or [])), "run_dir": str(job["dir"])})
    return added


def load_history(paths: Union[PathLike, Iterable[PathLike]]) -> pd.DataFrame:
    """One row per run per epoch: the metrics.csv columns plus the run's config keys and status.
    A metrics.csv that cannot be read is left out with a warning; the others still load."""
    keys = ["job", *CONFIG_TYPES, "status", "run_dir"]
    frames, runs = [], []
    for run_dir in find_run_dirs(paths):
        if not (run_dir / METRICS).is_file():
            continue
        metrics = _read_metrics(run_dir / METRICS)
        if metrics is None:
            continue
        run = _run_row(run_dir)
        frames.append(metrics)
        runs.append({key: run[key] for key in keys})
    if not frames:
        return _typed(pd.DataFrame(columns=["epoch", *METRIC_NAMES, "seconds", *keys]))
    # each run's keys repeated over its epochs at once: column by column per run took most of
    # the time of a 1,000-run history
    per_row = pd.DataFrame(runs, columns=keys).iloc[np.repeat(np.arange(len(runs)), [len(f) for f in frames])]
    history = pd.concat(frames, ignore_index=True)
    return _typed(pd.concat([history, per_row.reset_index(drop=True)], axis=1))


def _read_metrics(path: Path) -> Optional[pd.DataFrame]:
    """A run's metrics.csv with numeric columns, or None (and a warning) if it is not one."""
    try:
        with open_regular(path) as f:
            metrics = pd.read_csv(f, engine="c", on_bad_lines="skip")
        if "epoch" not in metrics.columns:
            raise ValueError("no epoch column")
        metrics = metrics.apply(pd.to_numeric, errors="coerce")  # a damaged cell is NaN, not text
        return metrics.dropna(subset=["epoch"])
    except Exception as e:  # empty, binary, damaged: one run's problem must not hide the others
        warnings.warn(f"{path}: left out, it cannot be read ({why(e)})", stacklevel=3)
        return None


def _summary(run_dir: Path) -> Dict[str, Any]:
    """summary.json as a dict; an unreadable one gives a row with status 'unreadable' and a warning."""
    try:
        summary = json.loads(read_text(run_dir / SUMMARY))
        if not isinstance(summary, dict):
            raise ValueError(f"holds a {type(summary).__name__}, not an object")
        return summary
    except (OSError, ValueError) as e:
        reason = f"{run_dir / SUMMARY} cannot be read ({why(e)})"
        warnings.warn(reason, stacklevel=4)
        return {"status": "unreadable", "reason": reason}


def typed_value(key: str, value: Any) -> Any:
    """A config value as its schema type, or None (missing) when the record holds something else:
    a hand-edited or damaged summary must not make the whole column unusable."""
    kind = CONFIG_TYPES[key]
    if value is None or (kind is not bool and isinstance(value, bool)):
        return None
    try:
        if kind is int:
            number = int(value) if isinstance(value, int) or float(value).is_integer() else None
            return number if number is not None and -2**63 <= number < 2**63 else None
        if kind is float:
            return float(value)
        if kind is bool:
            return value if isinstance(value, bool) else None
        return str(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _section(summary: Dict[str, Any], key: str) -> Dict[str, Any]:
    value = summary.get(key)
    return value if isinstance(value, dict) else {}


def _class_order(column: str):
    name = column[len("test_accuracy_"):]
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _lookup(config: Dict[str, Any], dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, list):
        return ",".join(map(str, value))
    return value


def _typed_overrides(run_dir: Path) -> List[str]:
    """What was typed for a single run, from Hydra's .hydra/overrides.yaml (a sweep job's are in
    its summary); none if that file is missing or is not a list of strings."""
    import yaml

    try:
        typed = yaml.safe_load(read_text(run_dir / ".hydra" / "overrides.yaml"))
    except (OSError, ValueError, yaml.YAMLError):
        return []
    return typed if isinstance(typed, list) and all(isinstance(t, str) for t in typed) else []


def _run_row(run_dir: Path, per_class: bool = False) -> Dict[str, Any]:
    summary = _summary(run_dir)
    config, job = _section(summary, "config"), _section(summary, "job")
    final, best = _section(summary, "final"), _section(summary, "best")
    row = {"job": _value_int(job.get("num")), "trial": _value_int(_section(summary, "trial").get("number")),
           **{key: typed_value(key, _lookup(config, key)) for key in CONFIG_TYPES}, "final_epoch": _value_int(final.get("epoch")),
           "status": _text(summary.get("status")) or "unreadable", "reason": _text(summary.get("reason")),
           "epochs_run": _value_int(summary.get("epochs_run", 0)), "best_epoch": _value_int(best.get("epoch")),
           "wall_seconds": _number(summary.get("wall_seconds")), "started_at": _text(summary.get("started_at")),
           "overrides": " ".join(map(str, job.get("overrides") or _typed_overrides(run_dir))), "run_dir": str(run_dir)}
    if row["status"] == "running" and liveness.owner(run_dir) == "":  # no live process holds it
        row["status"], row["reason"] = "interrupted", KILLED
    for m in METRIC_NAMES:
        row[f"final_{m}"], row[f"best_{m}"] = _number(final.get(m)), _number(best.get(m))
    if per_class:
        accuracy = _section(_section(summary, "per_class"), "accuracy")
        row.update({f"test_accuracy_{name}": _number(value) for name, value in accuracy.items()})
    return row


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _value_int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63 else None


def _number(value: Any) -> Optional[float]:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Config columns typed by the schema; ints stay ints (nullable where a value is missing)."""
    types = {key: _DTYPES[t] for key, t in CONFIG_TYPES.items() if t in _DTYPES and key in df}
    types.update({c: "Int64" for c in ("job", "trial", "epoch", "epochs_run", "final_epoch", "best_epoch") if c in df})
    for column, dtype in types.items():
        df[column] = df[column].astype(dtype)
        if dtype == "Int64" and df[column].notna().all():
            df[column] = df[column].astype("int64")
    for column in df.columns:
        if column in METRIC_NAMES or column.startswith(("final_", "best_", "test_accuracy_")) \
                and column not in ("best_epoch", "final_epoch"):
            df[column] = df[column].astype("float64")
    return df


def _natural(path: Path):
    """Sort job dirs 0, 1, 2, ..., 10 rather than 0, 1, 10, 2."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]
