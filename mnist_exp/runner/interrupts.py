"""Ctrl-C and SIGTERM stop a run between writes, never in the middle of one.

Inside `graceful_interrupts()`, SIGINT and SIGTERM raise `Interrupted` (a KeyboardInterrupt)
at once, unless a `critical()` block is running: then the signal waits for the block's end.
Once one has been raised the run is stopping: a second Ctrl-C a moment later (users press it
twice) is noted, not raised, so it cannot cut short the recording of the first.
"""

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class RunStopped(KeyboardInterrupt):
    """A run that Ctrl-C or a signal (`cause`) stopped, once its record says so: `resume_from`
    is its directory when a finished epoch can be continued (None when none finished), `ended`
    whether the run had recorded its end before the signal came (its record is complete). Still
    a KeyboardInterrupt: it stops a sweep as the signal would."""

    def __init__(self, cause: KeyboardInterrupt, resume_from: Optional[Path], ended: bool):
        super().__init__(*cause.args)
        self.cause, self.resume_from, self.ended = cause, resume_from, ended

    @property
    def exit_code(self) -> int:
        return self.cause.exit_code if isinstance(self.cause, Interrupted) else 130


_state = {"depth": 0, "pending": None, "stopping": False}


def _handler(signum, frame) -> None:
    if _state["stopping"]:
        return
    if _state["depth"]:
        _state["pending"] = signum
    else:
        _state["stopping"] = True
        raise Interrupted(signum)


@contextmanager
def graceful_interrupts() -> Iterator[None]:
    """Install the handlers (main thread only: elsewhere Python cannot take signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    _state["stopping"] = False
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state["stopping"] = False


@contextmanager
def critical() -> Iterator[None]:
    """A block that a signal must not cut short, e.g. a metrics row and its checkpoint."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"]:
            raise_pending()


def pending() -> bool:
    """A signal arrived inside a critical block and waits for it to end."""
    return _state["pending"] is not None


def raise_pending() -> None:
    """Inside a critical block that waits on something else (the figure helper): raise a signal
    that arrived meanwhile now, rather than after the wait."""
    if _state["pending"] is not None:
        signum, _state["pending"] = _state["pending"], None
        _state["stopping"] = True
        raise Interrupted(signum)


def ignore_further() -> None:
    """The command line is reporting an interruption: later signals must not cut its one line."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)
