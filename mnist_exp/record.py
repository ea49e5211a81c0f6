"""The run record: what a run leaves in its directory, written so a crash loses nothing.

metrics.csv gains one flushed row per finished epoch; weights.npz and summary.json are
replaced atomically (temp file + rename), so a reader never sees half a file.
"""

import csv
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mnist_exp.atomic import write_atomic
from mnist_exp.errors import UserError
from mnist_exp.train import EpochMetrics

METRICS = "metrics.csv"
WEIGHTS = "weights.npz"
SUMMARY = "summary.json"
CURVES = "curves.png"
MODEL_CARD = "model_card.md"
CHECKPOINT = "checkpoint.npz"
COLUMNS = [f.name for f in fields(EpochMetrics) if not f.name.startswith("val_")]
VAL_COLUMNS = ["val_loss", "val_accuracy"]  # only in runs with a validation split


class MetricsWriter:
    """Appends one row per epoch to metrics.csv, flushed and synced as each epoch ends.

    A new run refuses a directory that already holds metrics. Resuming keeps the first
    `resume_rows` rows (those the checkpoint covers) and drops anything after them.
    """

    def __init__(self, run_dir: Path, validation: bool = False, resume_rows: Optional[int] = None):
        self.path = run_dir / METRICS
        self.columns = COLUMNS + (VAL_COLUMNS if validation else [])
        self.rows: List[EpochMetrics] = []
        if resume_rows is None:
            try:
                self._file = open(self.path, "x", newline="")  # "x": never write over another run
            except FileExistsError:
                raise UserError(f"{run_dir} already holds a run ({METRICS} exists); refusing to write "
                                "into it: choose another hydra.run.dir, or resume it with resume=DIR") from None
            self._csv = csv.writer(self._file)
            self._write(self.columns)
            return
        self.rows = read_metrics(self.path)[:resume_rows]
        if len(self.rows) < resume_rows:
            raise UserError(f"{self.path}: holds {len(self.rows)} epochs, the checkpoint {resume_rows}")
        write_atomic(self.path, lambda tmp: _write_rows(tmp, self.columns, self.rows))
        self._file = open(self.path, "a", newline="")
        self._csv = csv.writer(self._file)

    def append(self, metrics: EpochMetrics) -> None:
        self._write(_cells(metrics, self.columns))
        self.rows.append(metrics)

    def _write(self, row: list) -> None:
        self._csv.writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _cells(metrics: EpochMetrics, columns: List[str]) -> list:
    # repr keeps every digit of a float: the CSV holds full precision
    values = [getattr(metrics, c) for c in columns]
    return [repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in values]


def _write_rows(path: Path, columns: List[str], rows: List[EpochMetrics]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(_cells(m, columns) for m in rows)


def read_metrics(path: Path) -> List[EpochMetrics]:
    """The complete rows of a metrics.csv; a row cut short by a crash is left out."""
    rows = []
    with open(path, newline="") as f:
        header, *lines = list(csv.reader(f)) or [[]]
        for cells in lines:
            if len(cells) != len(header):
                break
            try:
                values = {c: (int(v) if c == "epoch" else float(v)) for c, v in zip(header, cells)}
            except ValueError:
                break
            rows.append(EpochMetrics(**values))
    return rows


def save_checkpoint(path: Path, arrays: Dict[str, np.ndarray], rng: np.random.Generator, epochs_done: int) -> None:
    """Everything needed to continue exactly: weights (and any optimiser arrays), generator state."""
    rng_state = np.array(json.dumps(rng.bit_generator.state))  # a plain string: no pickle needed

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, rng_state=rng_state, epochs_done=np.array(epochs_done))

    write_atomic(path, write)


def load_checkpoint(path: Path) -> Tuple[Dict[str, np.ndarray], np.random.Generator, int]:
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files if k not in ("rng_state", "epochs_done")}
            rng = np.random.default_rng()
            rng.bit_generator.state = json.loads(str(saved["rng_state"]))
            return arrays, rng, int(saved["epochs_done"])
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{path}: cannot load the checkpoint ({e.__class__.__name__}: {e})") from None


def save_weights(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    write_atomic(path, write)


def load_weights(path: Path) -> Dict[str, np.ndarray]:
    """Weights saved by a run; plain arrays only, so no pickle is ever loaded."""
    with np.load(path, allow_pickle=False) as saved:
        return {k: saved[k] for k in saved.files}


def save_json(path: Path, data: Dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))
