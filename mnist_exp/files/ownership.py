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
from typing import Dict, Iterable, List, Optional

from mnist_exp.errors import RecordError, UserError

LOCK = ".mnist_exp.lock"
_HELD: Dict[Path, int] = {}  # directory -> the open lock file of this process's claim
_MADE: Dict[Path, List[str]] = {}  # claimed directory -> what its claim created: folders (real paths, outermost
# first) and the lock file, so a refused run removes exactly those and never a folder that existed


class DirectoryInUse(UserError):
    """The directory is someone else's: nothing may be written into it, not even a failure record."""


def claim(directory: Path, fresh: bool, what: str = "run", ignore: Iterable[str] = ()) -> Path:
    """Take `directory` for this process (made if missing); refuse it if another process holds it,
    or, when `fresh`, if it already holds anything but the names in `ignore` (a sweep job's
    `.hydra/`, written by Hydra before the job runs). Claiming it again here is a no-op."""
    directory = Path(directory).absolute()
    if directory in _HELD:
        return directory
    made: List[str] = []
    try:
        make_folders(directory, made)
        fd = _open_lock(directory, made)
    except OSError as e:
        _remove(made)
        raise RecordError(f"cannot create the {what} directory {_short(directory)}: {e.strerror or e}") from None
    owner = try_lock(fd)
    for _ in range(10):
        if owner is not None or _lock_is_current(directory, fd):
            break
        os.close(fd)  # the lock file went while this process waited for it: take the new one
        fd = _open_lock(directory, made)
        owner = try_lock(fd)
    if owner is not None:
        os.close(fd)
        _remove(made)
        raise DirectoryInUse(f"{directory} is in use by {owner}; wait for it to end, or choose another "
                             "directory")
    if fresh and any(p.name not in {LOCK, *ignore} for p in directory.iterdir()):
        _remove(made)
        os.close(fd)
        raise DirectoryInUse(f"{directory} already holds a {what} (it is not empty); nothing was written: choose "
                             "a new directory" + (f", or continue the run with resume={directory}"
                                                   if (directory / "checkpoint.npz").is_file() else ""))
    sign(fd)
    _HELD[directory] = fd
    _MADE[directory] = made
    return directory


def make_folders(directory: Path, made: List[str]) -> None:
    """Make `directory` and the folders on the way to it, one level at a time, appending the real
    path of each one made here to `made`: a path through a missing folder and `..` (missing/../old)
    reaches an existing folder, which is never counted as made (mkdir(parents=True) cannot tell)."""
    path = Path(directory.anchor)
    for part in directory.parts[1:]:
        path = path / part
        if part in (".", "..") or os.path.isdir(path):
            continue
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            continue  # made by someone else meanwhile: not ours
        made.append(os.path.realpath(path))


def _open_lock(directory: Path, made: List[str]) -> int:
    """The lock file's descriptor; its path goes into `made` when this call created it."""
    lock = directory / LOCK
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    made.append(os.path.realpath(lock))
    return fd


def _lock_is_current(directory: Path, fd: int) -> bool:
    """The locked file is still the one at <dir>/.mnist_exp.lock (a refused run removes the lock
    file it created, while holding it: one opened before then is stale)."""
    try:
        return os.stat(directory / LOCK).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


def _remove(made: List[str]) -> None:
    """Undo a claim's creations, innermost first: the lock file, then each folder if it is empty."""
    for path in reversed(made):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass  # something else is in it now: it stays
    made.clear()


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
    """Undo the claim of a run refused before it started, if the directory holds nothing but
    the lock and the given names (Hydra's .hydra/ and log): those go, then whatever the claim
    created (the lock file, the directory and the folders made on the way); a directory that
    existed before the claim stays, as it was."""
    directory = Path(directory).absolute()
    if directory not in _HELD:
        return False
    allowed = {LOCK, *keep_if_holding_more_than}
    if any(p.name not in allowed for p in directory.iterdir()):
        return False
    for handler in list(logging.root.handlers):  # Hydra's job log file lives there
        if Path(getattr(handler, "baseFilename", "/")).parent == directory:
            handler.close()
            logging.root.removeHandler(handler)
    for name in keep_if_holding_more_than:  # written after the fresh claim found the directory empty
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    made = _MADE.pop(directory, [])
    lock = os.path.realpath(directory / LOCK)
    if lock in made:  # the lock goes while it is held: no one can have taken it meanwhile
        os.unlink(lock)
        made.remove(lock)
    release(directory)
    _remove(made)
    return True


def _short(path: Path) -> str:
    """A path for a one-line message: a very long one keeps its two ends."""
    text = str(path)
    return text if len(text) <= 160 else f"{text[:70]}...{text[-70:]}"
