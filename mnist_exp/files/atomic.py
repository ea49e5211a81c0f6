"""Atomic file replacement: readers see the old file or the new one, never half of one.

The temp file beside the target is named `.<name>.<host>-<pid>.<random>.part`, so the next
writer of the same file can tell a killed writer's leftover (its pid gone on this host) from a
live writer's, and remove it.
"""

import glob
import os
import socket
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


_HOST = socket.gethostname().replace(".", "_")[:32] or "host"  # a shared disk's other hosts have other pids


def _remove_stale(path: Path) -> None:
    """Remove the temp files of writers of `path` on this host whose process is gone."""
    prefix = f".{path.name}.{_HOST}-"
    for stale in glob.glob(os.path.join(glob.escape(str(path.parent)), glob.escape(prefix) + "*.part")):
        pid = os.path.basename(stale)[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            Path(stale).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """A process that runs: a zombie (dead, not yet reaped, as a killed run's figure helper
    can stay where nothing reaps orphans) has written its last byte."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(temp_path) beside `path`, fsync it, then rename the temp file onto `path`.

    If `write` raises (or the process is killed while it writes), `path` is left as it was;
    on an exception the temp file is removed.
    """
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".part")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give them the usual mode
        _fsync(tmp)  # the bytes are on disk before the name points at them (a crash: old or new file)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
