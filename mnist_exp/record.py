"""The run record: what a run leaves in its directory, written so a crash loses nothing.

metrics.csv gains one flushed row per finished epoch; weights.npz and summary.json are
replaced atomically (temp file + rename), so a reader never sees half a file.
"""

import csv
import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from mnist_exp.atomic import write_atomic
from mnist_exp.network import Weights
from mnist_exp.train import EpochMetrics

METRICS = "metrics.csv"
WEIGHTS = "weights.npz"
SUMMARY = "summary.json"
CURVES = "curves.png"
MODEL_CARD = "model_card.md"
COLUMNS = [f.name for f in fields(EpochMetrics)]


class MetricsWriter:
    """Appends one row per epoch to metrics.csv, flushed and synced as each epoch ends."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / METRICS
        self._file = open(self.path, "x", newline="")  # "x": never write over another run
        self._csv = csv.writer(self._file)
        self._write(COLUMNS)
        self.rows: List[EpochMetrics] = []

    def append(self, metrics: EpochMetrics) -> None:
        # repr keeps every digit of a float: the CSV holds full precision
        self._write([repr(float(v)) if isinstance(v, float) else v for v in asdict(metrics).values()])
        self.rows.append(metrics)

    def _write(self, row: list) -> None:
        self._csv.writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def save_weights(path: Path, weights: Weights) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, w1=weights.w1, w2=weights.w2)

    write_atomic(path, write)


def load_weights(path: Path) -> Weights:
    """Weights saved by a run; plain arrays only, so no pickle is ever loaded."""
    with np.load(path, allow_pickle=False) as saved:
        return Weights(saved["w1"], saved["w2"])


def save_json(path: Path, data: Dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))
