"""Atomic file replacement: readers see the old file or the new one, never half of one."""

import os
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path, flags=os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(temp_path) beside `path`, fsync it, then rename the temp file onto `path`.

    If `write` raises (or the process is killed while it writes), `path` is left as it was;
    on an exception the temp file is removed.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give them the usual mode
        _fsync(tmp)  # the bytes are on disk before the name points at them (a crash: old or new file)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
