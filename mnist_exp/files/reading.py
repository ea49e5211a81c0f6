"""Reading a run's record files: only regular files, each no larger than its kind can be.

A FIFO, socket, device or directory under a record's name would block a reader for ever or
feed it without end (a summary.json linked to /dev/zero). Opening with O_NONBLOCK cannot
block, even on a FIFO with no writer; fstat then says what the name really is, before a byte
is read. Every reader of summary.json, metrics.csv, multirun.yaml, weights.npz and
checkpoint.npz goes through here.
"""

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO, Union

MiB, GiB = 1 << 20, 1 << 30
# The largest file of each kind a reader accepts. A summary is a few kilobytes; a metrics row
# ~150 bytes (a million epochs: 150 MB); an .npz's arrays are checked against the model from
# their headers before any is loaded, so its bound only stops what no model could need.
LIMITS = {".json": 16 * MiB, ".yaml": 16 * MiB, ".csv": 1 * GiB, ".npz": 16 * GiB, ".lock": 64 * 1024}
KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class UnreadableFile(OSError):
    """A record file that is not a regular file, or larger than its kind can be."""

    def __str__(self) -> str:
        return self.strerror


def limit(path: Path) -> int:
    return LIMITS.get(Path(path).suffix, 16 * MiB)


def open_regular(path: Union[str, Path]) -> BinaryIO:
    """`path` opened for reading in binary, if it is a regular file within its kind's bound;
    else an OSError (UnreadableFile naming what it is, or the system's: ELOOP, ENOENT...)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if not os.path.islink(path):
            raise
        raise UnreadableFile(errno.ENOENT, f"a link to {os.readlink(path)}, which does not exist", str(path)) from None
    try:
        info = os.fstat(fd)
        what = next((name for test, name in KINDS if test(info.st_mode)), None)
        if what is not None or not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(errno.EINVAL, f"{what or 'not a file'}, not a regular file", str(path))
        if info.st_size > limit(path):
            raise UnreadableFile(errno.EFBIG, f"{info.st_size} bytes, more than a {Path(path).suffix} record file "
                                              f"can hold ({limit(path)})", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Union[str, Path]) -> bytes:
    """The whole of a regular record file, never more than its bound (it may grow meanwhile)."""
    with open_regular(path) as f:
        data = f.read(limit(path) + 1)
    if len(data) > limit(path):
        raise UnreadableFile(errno.EFBIG, f"more than a {Path(path).suffix} record file can hold ({limit(path)} "
                                          "bytes)", str(path))
    return data


def why(error: Exception) -> str:
    """A read error for a one-line message: ours say what the file is; others keep their class."""
    if isinstance(error, UnreadableFile):
        return str(error)
    return f"{error.__class__.__name__}: {str(error)[:200]}"


def read_text(path: Union[str, Path]) -> str:
    """read_bytes as UTF-8 text (a UnicodeDecodeError is a ValueError, as json's are)."""
    return read_bytes(path).decode("utf-8")
