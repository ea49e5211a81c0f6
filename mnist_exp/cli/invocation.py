"""What one invocation of the command line learns while Hydra runs it: the jobs that ended in a
user-facing error, the sweep it launched (and whether it waits for it), the directories it
claimed.

Hydra drops a single run's return value and builds its callbacks and launchers itself, so
these reach the entry point through this one object; each invocation begins a new one, so a
program that calls the entry point many times (the tests) carries nothing from one to the next.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Tuple


@dataclass
class Invocation:
    failures: List[Tuple[int, str]] = field(default_factory=list)  # (exit code, one-line message) per job
    sweep_dir: Optional[Path] = None  # the multirun this invocation launched
    detached: bool = False  # its jobs were submitted, and nobody waits for them (SLURM wait=false)
    claimed: List[Path] = field(default_factory=list)  # run or sweep dirs, removed if nothing ever ran
    resuming: Any = None  # the sweep it finishes (-m resume=SWEEP_DIR): a sweep_resume.Resume


_current = Invocation()


def begin() -> Invocation:
    global _current
    _current = Invocation()
    return _current


def current() -> Invocation:
    return _current
