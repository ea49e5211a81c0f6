"""metrics.csv: one row per finished epoch, appended, flushed and synced as each epoch ends, so a
crash loses at most the epoch it was in; read back as a stream, a row cut short ending it."""

import csv
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import List, Optional

import numpy as np

from mnist_exp.errors import UserError
from mnist_exp.files.reading import open_regular
from mnist_exp.record.names import METRICS


@dataclass
class EpochMetrics:
    epoch: int  # from 0, as the walkthrough counts
    train_loss: float  # mean loss per sample, with dropout, during the pass
    train_accuracy: float
    test_loss: float  # mean loss per sample, without dropout, after the pass
    test_accuracy: float
    seconds: float  # wall time of the epoch, evaluations included
    val_loss: Optional[float] = None  # only with a validation split
    val_accuracy: Optional[float] = None

    @property
    def finite(self) -> bool:
        losses = [self.train_loss, self.test_loss] + ([self.val_loss] if self.val_loss is not None else [])
        return bool(np.all(np.isfinite(losses)))


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
            with open_regular(self.path) as f:
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
    with open_regular(path) as f:
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
    with open_regular(path) as f:
        header = f.readline(MAX_LINE).decode(errors="replace").rstrip("\r\n").split(",")
        for line in iter(lambda: f.readline(MAX_LINE), b""):
            m = _parse(line, header)
            if m is None or m.epoch == epoch:
                return m
    return None
