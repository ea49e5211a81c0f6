"""The run record: what a run leaves in its directory, written so a crash loses nothing.

metrics.csv gains one flushed row per finished epoch; weights.npz and summary.json are
replaced atomically (temp file + rename), so a reader never sees half a file.
"""

import csv
import json
import os
import re
import shutil
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from mnist_exp.files.atomic import write_atomic
from mnist_exp.files.reading import open_regular, why
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


def save_checkpoint(path: Path, arrays: Dict[str, np.ndarray], rng: np.random.Generator, epochs_done: int) -> None:
    """Everything needed to continue exactly: weights (and any optimiser arrays), generator state."""
    rng_state = np.array(json.dumps(rng.bit_generator.state))  # a plain string: no pickle needed

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, rng_state=rng_state, epochs_done=np.array(epochs_done))

    write_atomic(path, write)


class Spec(NamedTuple):
    """An array as its npy header declares it, read without inflating the array."""
    shape: tuple
    dtype: np.dtype


Check = Callable[[Dict[str, Spec], Dict[str, str]], None]  # (specs by today's name, today's -> file's names)
MAX_TEXT = 1 << 16  # the generator's state is ~200 characters


def read_specs(path: Path, what: str) -> Dict[str, Spec]:
    """Each member's name, shape and dtype from its npy header alone: a file's arrays are
    checked before any is inflated (a small zip of zeros can hold gigabytes)."""
    specs = {}
    try:
        with open_regular(path) as file, zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise UserError(f"{path}: holds '{info.filename}', which is not an array: the file is damaged")
                name = info.filename[:-4]
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = {(1, 0): np.lib.format.read_array_header_1_0,
                            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read is None:
                        raise ValueError(f"npy format version {version} of '{name}' is not one this project writes")
                    shape, _, dtype = read(f)
                if dtype.hasobject:
                    raise UserError(f"{path}: array '{name}' holds Python objects (dtype object): refused, "
                                    "as loading it would run code")
                specs[name] = Spec(tuple(shape), dtype)
    except UserError:
        raise
    except OSError as e:  # not a regular file (a FIFO, a directory), a link loop, no permission
        raise UserError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    except Exception as e:  # truncated, empty, not a zip, a damaged header...
        raise UserError(f"{path}: cannot load {what} ({e.__class__.__name__}: {e})") from None
    return specs


TODAYS_NAME = re.compile(r"(?P<prefix>(?:opt/[mv]/|es/best/)?)(?:dense|batchnorm)(?P<layer>\d+)/(?P<array>\w+)")


class FileNames(dict):
    """Today's name -> the file's. An array the file lacks is named as the file would name it:
    in a file from before the layers, 'gamma1', not 'batchnorm1/gamma', which it never held."""

    def get(self, key, default=None):
        if key in self or not any(k != v for k, v in self.items()):
            return super().get(key, default)
        return TODAYS_NAME.sub(r"\g<prefix>\g<array>\g<layer>", key)


def renamed(specs: Dict[str, Spec], path: Path) -> Dict[str, str]:
    """Today's name -> the file's, refusing a file holding one array under both names."""
    names: Dict[str, str] = FileNames()
    for original in specs:
        current = next(iter(current_names({original: None})))
        if current in names:
            first, second = sorted((names[current], original), key=lambda n: n != current)
            raise UserError(f"{path}: holds both '{first}' and '{second}', two copies of one array: the file is damaged")
        names[current] = original
    return names


def _load(path: Path, what: str, check: Optional[Check], extra: Tuple[str, ...] = ()) -> Dict[str, np.ndarray]:
    """The arrays of `path` under today's names (its `extra` ones as they are), after `check`
    has seen their headers."""
    specs = read_specs(path, what)
    names = renamed({k: v for k, v in specs.items() if k not in extra}, path)
    if check is not None:
        check({current: specs[original] for current, original in names.items()}, names)
    try:
        with open_regular(path) as file, np.load(file, allow_pickle=False) as saved:
            arrays = {current: saved[original] for current, original in names.items()}
            arrays.update({k: saved[k] for k in extra if k in specs})
    except Exception as e:
        raise UserError(f"{path}: cannot load {what} ({e.__class__.__name__}: {e})") from None
    return arrays


def load_checkpoint(path: Path, check: Optional[Check] = None) -> Tuple[Dict[str, np.ndarray], np.random.Generator, int]:
    """A checkpoint's arrays, generator and epoch count, each checked: a damaged or foreign file
    is refused with one line (`check` sees the arrays' headers before any is loaded)."""
    specs = read_specs(path, "the checkpoint")
    rng_spec, done_spec = specs.get("rng_state"), specs.get("epochs_done")
    if rng_spec is None or rng_spec.shape != () or rng_spec.dtype.kind != "U" or rng_spec.dtype.itemsize > 4 * MAX_TEXT:
        raise UserError(f"{path}: cannot load the checkpoint (its 'rng_state' is missing or not a generator state)")
    if done_spec is None or done_spec.shape != () or done_spec.dtype.kind not in "iu":
        raise UserError(f"{path}: the checkpoint's epoch count ('epochs_done') is missing or not a number")
    arrays = _load(path, "the checkpoint", check, ("rng_state", "epochs_done"))
    try:
        state = json.loads(str(arrays.pop("rng_state")))
        done = arrays.pop("epochs_done")
        rng = np.random.default_rng()
        rng.bit_generator.state = state
    except Exception as e:  # JSON and generator errors alike: a file we cannot use
        raise UserError(f"{path}: cannot load the checkpoint ({e.__class__.__name__}: {e})") from None
    if int(done) < 1:
        raise UserError(f"{path}: the checkpoint's epoch count ({done!r}) is not a number of finished epochs")
    return arrays, rng, int(done)


def save_weights(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    write_atomic(path, write)


def load_weights(path: Path, check: Optional[Check] = None) -> Dict[str, np.ndarray]:
    """Weights saved by a run, named by layer (older files' "w1"... renamed); plain arrays
    only, so no pickle is ever loaded; `check` sees their headers before any is loaded."""
    return _load(path, "weights", check)


def save_json(path: Path, data: Dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


EXTENSION_COPIES = (METRICS, CHECKPOINT)  # the checkpoint last: with it, the copy is whole


def copy_for_extension(parent: Path, run_dir: Path) -> None:
    """The completed run's metrics and checkpoint, copied (atomically, each) into the new run
    directory of its extension, which goes on from there; the parent is only read."""
    for name in EXTENSION_COPIES:
        source = parent / name
        try:
            original = open_regular(source)
        except OSError as e:  # the parent's file, not this run's: a bad record, not a write error
            raise UserError(f"{source}: cannot read it to extend the run ({why(e)})") from None
        def copy(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(original, out)

        with original:
            write_atomic(run_dir / name, copy)


def discard_extension(run_dir: Path) -> None:
    """An extension stopped before its first epoch ended: its copies go, as if it never began."""
    for name in reversed(EXTENSION_COPIES):
        (run_dir / name).unlink(missing_ok=True)
