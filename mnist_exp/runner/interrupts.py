"""Ctrl-C and SIGTERM stop a run between writes, never in the middle of one.

Inside `graceful_interrupts()`, SIGINT and SIGTERM raise `Interrupted` (a KeyboardInterrupt)
at once, unless a `critical()` block is running: then the signal waits for the block's end.
"""

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


_state = {"depth": 0, "pending": None}


def _handler(signum, frame) -> None:
    if _state["depth"]:
        _state["pending"] = signum
    else:
        raise Interrupted(signum)


@contextmanager
def graceful_interrupts() -> Iterator[None]:
    """Install the handlers (main thread only: elsewhere Python cannot take signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def critical() -> Iterator[None]:
    """A block that a signal must not cut short, e.g. a metrics row and its checkpoint."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            raise Interrupted(signum)
