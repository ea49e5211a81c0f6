"""The first difference between two run records, file by file: what `reproduce` reports.

Each function returns None when the two agree, else one line naming where they differ (the
epoch and column, the array and index, the class) with both values, recorded first. Wall
times (metrics.csv's `seconds`) are never compared: they are the one thing a rerun changes.
"""

import csv
import io
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from mnist_exp.files.reading import read_text
from mnist_exp import record

NOT_COMPARED = ("seconds",)


def read_rows(path: Path) -> List[Dict[str, str]]:
    """metrics.csv or confusion.csv as rows of text cells (exact: floats are written in full)."""
    return list(csv.DictReader(io.StringIO(read_text(path))))


def confusion_matrix(path: Path) -> bool:
    """Whether confusion.csv is one: a 'true' column, then a count per class, a row per class."""
    rows = read_rows(path)
    header = list(rows[0]) if rows else []
    return bool(rows) and header[0] == "true" and len(rows) == len(header) - 1 and all(
        cell is not None and cell.isdigit() for row in rows for key, cell in row.items() if key != "true")


def metrics(recorded: Path, rerun: Path) -> Optional[str]:
    """metrics.csv, epoch by epoch, every column but `seconds`."""
    old, new = read_rows(recorded / record.METRICS), read_rows(rerun / record.METRICS)
    columns = [c for c in (old[0] if old else {}) if c not in NOT_COMPARED]
    missing = [c for c in columns if new and c not in new[0]] or [c for c in (new[0] if new else {})
                                                                   if c not in NOT_COMPARED and c not in columns]
    if missing:
        return f"metrics.csv: column {missing[0]} is in one record only"
    for a, b in zip(old, new):
        for column in columns:
            if not _same(a[column], b[column]):
                return (f"metrics.csv: epoch {a.get('epoch', '?')}, {column}: recorded {a[column] or 'empty'}, "
                        f"rerun {b[column] or 'empty'}")
    if len(old) != len(new):
        return f"metrics.csv: the run recorded {len(old)} epochs, the rerun {len(new)}"
    return None


def _same(a: str, b: str) -> bool:
    """Cells equal as text, or as the same number (NaN included)."""
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return x == y or math.isnan(x) and math.isnan(y)


def weights(recorded: Path, rerun: Path) -> Optional[str]:
    """weights.npz, array by array, bit for bit (a run that kept none: both have none)."""
    paths = recorded / record.WEIGHTS, rerun / record.WEIGHTS
    if not paths[0].exists() or not paths[1].exists():
        if paths[0].exists() != paths[1].exists():
            return f"weights.npz: {'only the run' if paths[0].exists() else 'only the rerun'} kept weights"
        return None
    old, new = (record.load_weights(p) for p in paths)
    for name in sorted(set(old) | set(new)):
        if name not in old or name not in new:
            return f"weights.npz: array {name} is {'only in the run' if name in old else 'only in the rerun'}"
        a, b = old[name], new[name]
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"weights.npz: {name} is {a.dtype}{list(a.shape)} recorded, {b.dtype}{list(b.shape)} rerun"
        unequal = np.flatnonzero((_bits(a) != _bits(b)).any(axis=1))
        if unequal.size:
            where = [int(i) for i in np.unravel_index(unequal[0], a.shape)]
            return f"weights.npz: {name} differs at {where}: recorded {a.flat[unequal[0]]}, rerun {b.flat[unequal[0]]}"
    return None


def _bits(array: np.ndarray) -> np.ndarray:
    """Each element's bytes as one row: bit-exact equality (-0.0 is not 0.0, NaN equals itself)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    return flat.view(np.uint8).reshape(flat.size, -1) if flat.size else flat.view(np.uint8).reshape(0, 1)


def confusion(recorded: Path, rerun: Path) -> Optional[str]:
    """confusion.csv, cell by cell: true class (row) and predicted class (column); a record
    without one (older versions wrote none) has nothing to compare."""
    paths = recorded / record.CONFUSION, rerun / record.CONFUSION
    if not paths[0].exists():  # a record of an older version, or of a run that kept no weights
        return None
    if not paths[1].exists():
        return "confusion.csv: only the run has per-class results"
    old, new = (read_rows(p) for p in paths)
    for a, b in zip(old, new):
        for predicted in a:
            if predicted != "true" and a[predicted] != b.get(predicted):
                return (f"confusion.csv: true class {a.get('true')} predicted {predicted}: recorded {a[predicted]}, "
                        f"rerun {b.get(predicted)}")
    if len(old) != len(new) or old and list(old[0]) != list(new[0]):
        return f"confusion.csv: {len(old)} classes recorded, {len(new)} in the rerun"
    return None


def summaries(recorded: Dict[str, Any], rerun: Dict[str, Any]) -> Optional[str]:
    """What summary.json says beyond the files: how the run ended, each class's accuracy, the data."""
    for key in ("status", "epochs_run"):
        if recorded.get(key) != rerun.get(key):
            return f"summary.json: {key} recorded {recorded.get(key)}, rerun {rerun.get(key)}"
    old, new = ((s.get("final") or {}) for s in (recorded, rerun))
    for key in old:
        if key not in NOT_COMPARED and old[key] != new.get(key):
            return f"summary.json: final {key} (the kept epoch's) recorded {old[key]}, rerun {new.get(key)}"
    old, new = ((s.get("per_class") or {}).get("accuracy") or {} for s in (recorded, rerun))
    for name in old:
        if old[name] != new.get(name):
            return f"summary.json: per_class accuracy of class {name}: recorded {old[name]}, rerun {new.get(name)}"
    old, new = ((s.get("data") or {}).get("checksums") or {} for s in (recorded, rerun))
    for name in old:
        if old[name] != new.get(name):
            return f"data: {name} has MD5 {old[name]} recorded, {new.get(name)} in the rerun"
    return None


def first_difference(recorded: Path, rerun: Path, old: Dict[str, Any], new: Dict[str, Any]) -> Optional[str]:
    """The first of the differences above, in the order a reader looks: epochs, weights, classes."""
    for compare in (metrics, weights, confusion):
        found = compare(recorded, rerun)
        if found:
            return found
    return summaries(old, new)
