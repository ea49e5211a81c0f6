"""Whether a run is still going: its summary.json says `running` from its start until it ends,
and a run killed by SIGKILL (or whose machine went down) never rewrites it. The process that
runs it holds an flock on its `.mnist_exp.lock` (files/ownership.py), which the kernel drops when
it dies: a lock held means running, a lock free means the run is gone.

Read without taking the lock (a reader must never make a resume refused): on Linux from
/proc/locks; elsewhere from whether the pid the lock file names is alive.
"""

import os
import platform
import re
from pathlib import Path
from typing import Optional

from mnist_exp.files.ownership import LOCK
from mnist_exp.files.reading import read_text

_SIGNED = re.compile(r"pid (\d+) on (\S+)")


def owner(run_dir: Path) -> Optional[str]:
    """The line the live holder of the run's lock signed ("pid N on HOST since T"); "" when no
    live process holds it; None when this machine cannot tell (no lock file, another host's)."""
    try:
        signed = read_text(Path(run_dir) / LOCK).strip()
        info = os.stat(Path(run_dir) / LOCK)
    except (OSError, ValueError):
        return None
    found = _SIGNED.match(signed)
    if found is None or found.group(2) != platform.node():
        return None  # not signed (yet), or held on another machine: its locks are not visible here
    held = _held_by_flock(info)
    if held is None:
        held = _alive(int(found.group(1)))
    return signed if held else ""


def _held_by_flock(info: os.stat_result) -> Optional[bool]:
    """Whether /proc/locks lists a lock on that file (None where there is no /proc/locks)."""
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks") as f:
            return any([t for t in line.split() if t != "->"][5:6] == [device] for line in f)  # "->": a waiter
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
