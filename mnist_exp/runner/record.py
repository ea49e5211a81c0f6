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

from mnist_exp.files.atomic import write_atomic
from mnist_exp.nn.stack import current_names
from mnist_exp.errors import UserError
from mnist_exp.runner.train import EpochMetrics

METRICS = "metrics.csv"
WEIGHTS = "weights.npz"
SUMMARY = "summary.json"
CURVES = "curves.png"
MODEL_CARD = "model_card.md"
CHECKPOINT = "checkpoint.npz"
CONFUSION = "confusion.csv"
CONFUSION_PNG = "confusion.png"
MISTAKES_PNG = "misclassified.png"
COLUMNS = [f.name for f in fields(EpochMetrics) if not f.name.startswith("val_")]
VAL_COLUMNS = ["val_loss", "val_accuracy"]  # only in runs with a validation split


MAX_LINE = 1 << 16  # a metrics row is ~150 bytes; a longer line is not one of ours


class Tally:
    """What the summary needs of the rows so far, kept as they come: O(1) per epoch."""

    def __init__(self) -> None:
        self.count, self.last, self.best = 0, None, None  # best: highest test accuracy, earliest epoch

    def add(self, m: EpochMetrics) -> None:
        self.count, self.last = self.count + 1, m
        if m.finite and (self.best is None or m.test_accuracy > self.best.test_accuracy):
            self.best = m


class MetricsWriter:
    """Appends one row per epoch to metrics.csv, flushed and synced as each epoch ends.

    A new run refuses a directory that already holds metrics. Resuming checks the first
    `resume_rows` rows (those the checkpoint covers) as a stream, and changes nothing until
    the first new row: then the rows after the checkpoint's are cut off and the new row added.
    """

    def __init__(self, run_dir: Path, validation: bool = False, resume_rows: Optional[int] = None):
        self.path = run_dir / METRICS
        self.columns = COLUMNS + (VAL_COLUMNS if validation else [])
        self.tally = Tally()
        self._file = None
        if resume_rows is None:
            try:
                self._file = open(self.path, "x", newline="")  # "x": never write over another run
            except FileExistsError:
                raise UserError(f"{run_dir} already holds a run ({METRICS} exists); refusing to write "
                                "into it: choose another hydra.run.dir, or resume it with resume=DIR") from None
            self._csv = csv.writer(self._file)
            self._write(self.columns)
            return
        self._keep = self._scan(resume_rows)

    def _scan(self, rows: int) -> int:
        """Tally the rows the checkpoint covers; returns the byte offset where they end."""
        try:
            with open(self.path, "rb") as f:
                header = f.readline(MAX_LINE)
                if header.decode(errors="replace").rstrip("\r\n").split(",") != self.columns:
                    raise UserError(f"{self.path}: its columns are not those of this run ({', '.join(self.columns)})")
                offset = len(header)
                for epoch in range(rows):
                    line = f.readline(MAX_LINE)
                    m = _parse(line, self.columns)
                    if m is None or m.epoch != epoch:
                        raise UserError(f"{self.path}: holds {epoch} complete epochs, but the checkpoint "
                                        f"covers {rows}; the record is damaged and cannot be continued")
                    self.tally.add(m)
                    offset += len(line)
        except OSError as e:
            raise UserError(f"{self.path}: cannot read it ({e.strerror or e})") from None
        return offset

    def append(self, metrics: EpochMetrics) -> None:
        if self._file is None:  # the first new row of a resumed run: drop rows the checkpoint lacks
            with open(self.path, "r+b") as f:
                f.truncate(self._keep)
            self._file = open(self.path, "a", newline="")
            self._csv = csv.writer(self._file)
        self._write(_cells(metrics, self.columns))
        self.tally.add(metrics)

    def _write(self, row: list) -> None:
        self._csv.writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _cells(metrics: EpochMetrics, columns: List[str]) -> list:
    # repr keeps every digit of a float: the CSV holds full precision
    values = [getattr(metrics, c) for c in columns]
    return [repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in values]


def _parse(line: bytes, header: List[str]) -> Optional[EpochMetrics]:
    """One complete row, or None for a row cut short by a crash (or not a row at all)."""
    if not line.endswith(b"\n"):
        return None
    cells = line.decode(errors="replace").rstrip("\r\n").split(",")
    if len(cells) != len(header):
        return None
    try:
        return EpochMetrics(**{c: (int(v) if c == "epoch" else float(v)) for c, v in zip(header, cells)})
    except (ValueError, TypeError):
        return None


def read_metrics(path: Path, step: int = 1) -> List[EpochMetrics]:
    """The complete rows of a metrics.csv (every `step`-th epoch, and the last), read as a stream;
    a row cut short by a crash ends them."""
    rows: List[EpochMetrics] = []
    with open(path, "rb") as f:
        header = f.readline(MAX_LINE).decode(errors="replace").rstrip("\r\n").split(",")
        last = None
        for line in iter(lambda: f.readline(MAX_LINE), b""):
            m = _parse(line, header)
            if m is None:
                break
            last = m
            if m.epoch % step == 0:
                rows.append(m)
        if last is not None and (not rows or rows[-1] is not last):
            rows.append(last)
    return rows


def find_row(path: Path, epoch: int) -> Optional[EpochMetrics]:
    """The row of one epoch, read as a stream (early stopping's restored epoch)."""
    with open(path, "rb") as f:
        header = f.readline(MAX_LINE).decode(errors="replace").rstrip("\r\n").split(",")
        for line in iter(lambda: f.readline(MAX_LINE), b""):
            m = _parse(line, header)
            if m is None or m.epoch == epoch:
                return m
    return None


def save_checkpoint(path: Path, arrays: Dict[str, np.ndarray], rng: np.random.Generator, epochs_done: int) -> None:
    """Everything needed to continue exactly: weights (and any optimiser arrays), generator state."""
    rng_state = np.array(json.dumps(rng.bit_generator.state))  # a plain string: no pickle needed

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, rng_state=rng_state, epochs_done=np.array(epochs_done))

    write_atomic(path, write)


def load_checkpoint(path: Path) -> Tuple[Dict[str, np.ndarray], np.random.Generator, int]:
    """A checkpoint's arrays, generator and epoch count, each checked: a damaged or foreign file
    is refused with one line (its arrays are checked against the model by model.restore)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files}
        state = json.loads(str(arrays.pop("rng_state")))
        done = arrays.pop("epochs_done")
        rng = np.random.default_rng()
        rng.bit_generator.state = state
    except Exception as e:  # zip, npy, JSON and generator errors alike: a file we cannot use
        raise UserError(f"{path}: cannot load the checkpoint ({e.__class__.__name__}: {e})") from None
    if done.shape != () or done.dtype.kind not in "iu" or int(done) < 1:
        raise UserError(f"{path}: the checkpoint's epoch count ({done!r}) is not a number of finished epochs")
    return current_names(arrays), rng, int(done)


def save_weights(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    write_atomic(path, write)


def load_weights(path: Path) -> Dict[str, np.ndarray]:
    """Weights saved by a run, named by layer (older files' "w1"... renamed); plain arrays
    only, so no pickle is ever loaded."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            return current_names({k: saved[k] for k in saved.files})
    except Exception as e:  # truncated, empty, not a zip, a pickled array...
        raise UserError(f"{path}: cannot load weights ({e.__class__.__name__}: {e})") from None


def save_json(path: Path, data: Dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))
