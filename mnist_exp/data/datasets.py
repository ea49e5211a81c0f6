"""The MNIST data pipeline: a verified local cache, downloads on a miss, preprocessing.

Files are looked up in the cache dir as `name` or `name.gz`, then in any read-only
fallback dirs (data.fallback_dirs). Valid files present means no network access at all. A missing or bad file is downloaded (once, even with
several processes sharing the cache: a file lock guards each file).
"""

import hashlib
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from mnist_exp.data import idx
from mnist_exp.files import ownership
from mnist_exp.files.atomic import write_atomic
from mnist_exp.config import DataConfig, FileSpec
from mnist_exp.data.download import MAX_BACKOFF, fetch
from mnist_exp.errors import DataError

log = logging.getLogger(__name__)

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass
class Dataset:
    train_images: np.ndarray  # (60000, 784) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 784) uint8
    test_labels: np.ndarray  # (10000,) uint8
    checksums: Dict[str, str]  # file name -> MD5 of its decompressed bytes
    paths: Dict[str, str] = None  # file name -> the file it was really read from (cache, fallback, download)

    @property
    def dir(self) -> str:
        """The directory the files were read from (several, comma-separated, if they differ)."""
        return ", ".join(dict.fromkeys(str(Path(p).parent) for p in self.paths.values()))


@dataclass
class Split:
    """One preprocessed subset, as the walkthrough feeds it to the network."""

    x: np.ndarray  # (n, 784) float64 in [0, 1]
    y: np.ndarray  # (n, 10) one-hot float64
    pixels: Optional[np.ndarray] = None  # (n, 784) the bytes x was scaled from: a shuffle gathers fewer bytes


def cache_dir(cfg: DataConfig) -> Path:
    """data.dir, else $MNIST_EXP_DATA_DIR (MNIST only), else a per-user cache ($XDG_CACHE_HOME honoured)."""
    if cfg.dir:
        return Path(cfg.dir).expanduser().absolute()  # absolute: the run record must say where, from anywhere
    if cfg.name == "mnist" and os.environ.get("MNIST_EXP_DATA_DIR"):
        return Path(os.environ["MNIST_EXP_DATA_DIR"]).expanduser().absolute()
    return user_cache() / cfg.name


def load_dataset(cfg: DataConfig) -> Dataset:
    directory = cache_dir(cfg)
    arrays, checksums, paths = {}, {}, {}
    for role in ROLES:
        spec: FileSpec = getattr(cfg, role)
        arrays[role], path = _load_file(role, spec, directory, cfg)
        checksums[spec.name], paths[spec.name] = spec.md5, str(path)
    return Dataset(checksums=checksums, paths=paths, **arrays)


def split(images: np.ndarray, labels: np.ndarray, n: int, start: int = 0, dtype=np.float64) -> Split:
    """n samples from `start` in file order (the FIRST n by default), pixels scaled to [0, 1],
    labels one-hot."""
    pixels = images[start:start + n]
    y = np.eye(idx.NUM_CLASSES, dtype=dtype)[labels[start:start + n]]
    return Split(scale(pixels, np.empty(pixels.shape, dtype)), y, pixels)


def scale(pixels: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Bytes to [0, 1] in out's precision: float32 division is exactly rounded, so for each of
    the 256 bytes it gives the float64 quotient rounded to float32, at a third of the cost."""
    return np.divide(pixels, out.dtype.type(255), out=out)


def _existing(directory: Path, name: str) -> Optional[Path]:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _verified(path: Path, role: str, spec: FileSpec) -> np.ndarray:
    raw = idx.read_bytes(path)
    found = idx.md5(raw)
    if found != spec.md5:
        raise DataError(f"{path}: MD5 {found} does not match the expected {spec.md5}")
    if role.endswith("images"):
        return idx.parse_images(raw, str(path))
    return idx.parse_labels(raw, str(path))


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist_exp"


def parsed_cache_dir() -> Path:
    return user_cache() / "parsed"


def _verified_cached(path: Path, role: str, spec: FileSpec) -> np.ndarray:
    """_verified, remembered as a .npy in the user's cache: a warm load skips gunzip and MD5.

    The .npy is keyed by the file's checksum and its path, size and mtime: it is used only
    while the file it was made from is unchanged, so a replaced or damaged file is checked again.
    """
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = parsed_cache_dir() / f"{spec.name}.{spec.md5}.{key}.npy"
    try:
        array = np.load(cached, mmap_mode="r", allow_pickle=False)
        if array.dtype == np.uint8 and array.ndim == (2 if role.endswith("images") else 1):
            return array
    except (OSError, ValueError):
        pass
    array = _verified(path, role, spec)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, lambda tmp: _save_npy(tmp, array))
    except OSError as e:  # a read-only home only costs speed
        log.debug("cannot cache parsed %s in %s: %s", spec.name, cached.parent, e)
    return array


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def _load_file(role: str, spec: FileSpec, directory: Path, cfg: DataConfig) -> Tuple[np.ndarray, Path]:
    """The file's array, and the path it was read from."""
    path = _existing(directory, spec.name)
    problem = f"not in {directory}"
    if path is not None:
        try:
            return _verified_cached(path, role, spec), path
        except DataError as e:
            problem = f"the cached copy is bad ({e})"
            log.warning("%s: %s; downloading it again", spec.name, problem)
    for fallback in map(Path, cfg.fallback_dirs):  # e.g. a distribution's data package, read only
        candidate = _existing(fallback, spec.name)
        if candidate is not None:
            try:
                return _verified_cached(candidate, role, spec), candidate.absolute()
            except DataError as e:
                log.warning("%s: ignoring the copy in %s (%s)", spec.name, fallback, e)
    try:
        return _download(role, spec, directory, cfg)
    except DataError as e:
        raise DataError(f"{spec.name}: {problem}, and {e}; offline, point data.dir (or MNIST_EXP_DATA_DIR) at a "
                        "directory that holds the four files") from None


def _download(role: str, spec: FileSpec, directory: Path, cfg: DataConfig) -> Tuple[np.ndarray, Path]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot write to the data cache {directory} ({e.strerror or e}); "
                        "set data.dir or MNIST_EXP_DATA_DIR to a writable directory") from None
    target = directory / f"{spec.name}.gz"
    with _file_lock(directory / f".{spec.name}.lock", f"downloading {target.name} into {directory}",
                    _longest_download(cfg)):
        for stale in directory.glob(f".{target.name}.*.part"):  # a killed download's: no one else writes here
            stale.unlink(missing_ok=True)
        path = _existing(directory, spec.name)
        if path is not None:  # another process may have fetched it while we waited
            try:
                return _verified(path, role, spec), path
            except DataError:
                pass
        log.info("downloading %s into %s", target.name, directory)
        fetch(target.name, cfg.mirrors, target, lambda p: _verified(p, role, spec),
              timeout=cfg.timeout, retries=cfg.retries, deadline=cfg.deadline)
        if path is not None and path != target:
            path.unlink()  # the bad decompressed copy would shadow the good download
        return _verified(target, role, spec), target


def _longest_download(cfg: DataConfig) -> float:
    """How long a download of one file can take at most (every mirror, attempt and pause)."""
    return len(cfg.mirrors) * cfg.retries * (cfg.deadline + MAX_BACKOFF) + 60


@contextmanager
def _file_lock(path: Path, doing: str, patience: float) -> Iterator[None]:
    """An flock on `path`, which names its holder while held and is removed when released (no
    stray .lock files). The kernel frees it when the holder dies; a waiter says whom it waits
    for, and gives up after `patience` seconds."""
    began, next_note = time.monotonic(), 0.0
    while True:
        fd = _open_lock(path)
        holder = ownership.try_lock(fd)
        if holder is not None:
            os.close(fd)
            waited = time.monotonic() - began
            if waited > patience:
                raise DataError(f"gave up after {waited:.0f} s waiting for {holder}") from None
            if waited >= next_note:
                log.warning("waiting for %s", holder)
                next_note = waited + 60
            time.sleep(1.0)
            continue
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder removed that file as it let go: lock the new one
    try:
        ownership.sign(fd, doing)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: a waiter on this file retries on a new one
        os.close(fd)


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise DataError(f"cannot write to the data cache {path.parent} ({e.strerror or e}); "
                        "set data.dir or MNIST_EXP_DATA_DIR to a writable directory") from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
