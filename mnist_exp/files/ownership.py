"""One process owns a run (or sweep) directory at a time, and a new run only takes a new one.

A claim is an exclusive flock on `<dir>/.mnist_exp.lock`, which names its holder (pid, host,
since when). The kernel drops the lock when the holder dies, even by SIGKILL, so a dead owner
never blocks anyone; a live one is named in the refusal. A fresh claim also refuses a
directory that already holds anything but the lock file: Hydra and the run would write over
the record that is there.
"""

import fcntl
import logging
import os
import shutil
import platform
import time
from pathlib import Path
from typing import Dict, Iterable, Optional, Set

from mnist_exp.errors import RecordError, UserError

LOCK = ".mnist_exp.lock"
_HELD: Dict[Path, int] = {}  # directory -> the open lock file of this process's claim
_MADE: Set[Path] = set()  # directories this process's claims created


class DirectoryInUse(UserError):
    """The directory is someone else's: nothing may be written into it, not even a failure record."""


def claim(directory: Path, fresh: bool, what: str = "run", ignore: Iterable[str] = ()) -> Path:
    """Take `directory` for this process (made if missing); refuse it if another process holds it,
    or, when `fresh`, if it already holds anything but the names in `ignore` (a sweep job's
    `.hydra/`, written by Hydra before the job runs). Claiming it again here is a no-op."""
    directory = Path(directory).absolute()
    if directory in _HELD:
        return directory
    try:
        made = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RecordError(f"cannot create the {what} directory {_short(directory)}: {e.strerror or e}") from None
    owner = try_lock(fd)
    if owner is not None:
        os.close(fd)
        raise DirectoryInUse(f"{directory} is in use by {owner}; wait for it to end, or choose another "
                             "directory")
    if fresh and any(p.name not in {LOCK, *ignore} for p in directory.iterdir()):
        os.close(fd)
        raise DirectoryInUse(f"{directory} already holds a {what} (it is not empty); nothing was written: choose "
                             "a new directory" + (f", or continue the run with resume={directory}"
                                                   if (directory / "checkpoint.npz").is_file() else ""))
    sign(fd)
    _HELD[directory] = fd
    if made:
        _MADE.add(directory)
    return directory


def try_lock(fd: int) -> Optional[str]:
    """An exclusive flock on an open lock file, without waiting: None when taken, else the line
    its holder signed (the kernel frees the lock when the holder dies, even by SIGKILL)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.pread(fd, 400, 0).decode(errors="replace").strip() or "another process"


def sign(fd: int, doing: str = "") -> None:
    """Write who holds the lock into its file, for whoever is refused or waits."""
    line = f"pid {os.getpid()} on {platform.node()}{', ' + doing if doing else ''} since " \
           f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, line.encode(), 0)


def release(directory: Path) -> None:
    fd = _HELD.pop(Path(directory).absolute(), None)
    if fd is not None:
        os.close(fd)  # closing drops the flock; the file stays, naming the last owner


def discard(directory: Path, keep_if_holding_more_than: Iterable[str]) -> bool:
    """Remove a directory this process made and holds, if it holds nothing but the lock and
    the given names (Hydra's .hydra/ and log of a run refused before it started)."""
    directory = Path(directory).absolute()
    if directory not in _HELD or directory not in _MADE:
        return False
    allowed = {LOCK, *keep_if_holding_more_than}
    if any(p.name not in allowed for p in directory.iterdir()):
        return False
    for handler in list(logging.root.handlers):  # Hydra's job log file lives there
        if Path(getattr(handler, "baseFilename", "/")).parent == directory:
            handler.close()
            logging.root.removeHandler(handler)
    release(directory)
    shutil.rmtree(directory, ignore_errors=True)
    return True


def _short(path: Path) -> str:
    """A path for a one-line message: a very long one keeps its two ends."""
    text = str(path)
    return text if len(text) <= 160 else f"{text[:70]}...{text[-70:]}"
