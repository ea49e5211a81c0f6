"""curves.png drawn by a forked helper that imports matplotlib while the run trains.

Importing matplotlib takes ~0.35 s, a quarter of a default run, and the exact training
path keeps one core busy. A child forked as the run starts imports it on the other core,
then waits for the metrics rows. If anything is amiss (no fork on this platform, the child
failed, or stalled for WAIT_SECONDS), the run draws the figure itself as before: the helper only
saves time. The wait ends at once on Ctrl-C or SIGTERM. The child lets go of every descriptor
it inherits but its pipes (an inherited flock, the run's lock, would outlive a killed run) and
dies with its parent.
"""

import os
import time
import pickle
import select
import signal
import sys
import warnings
from typing import List, Optional, Tuple

from mnist_exp.runner import interrupts
from mnist_exp.runner.plots import draw, warm_up

WAIT_SECONDS = 20.0  # for the child to finish once it has the rows (~1 s); then the run draws them
GRACE_SECONDS = 3.0  # after a Ctrl-C, for figures already being drawn
POLL_SECONDS = 0.05  # how often the wait looks for a Ctrl-C, which a critical block holds back
PIPE_BYTES = 60_000  # the rows must fit a pipe's buffer (64 KiB on Linux): writing never blocks


class FigureHelper:
    """`with FigureHelper() as figure: ...; figure.draw(jobs)` (see plots.draw); the child is
    always gone when the block ends."""

    def __init__(self, enabled: bool = True):
        self.pid: Optional[int] = None
        self._enabled = enabled and hasattr(os, "fork") and sys.platform != "darwin"  # macOS: fork-unsafe
        self._to_child = self._from_child = -1

    def __enter__(self) -> "FigureHelper":
        if self._enabled:
            self._start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop(wait=False)  # nothing left for the child to do

    def draw(self, jobs: List[Tuple[str, dict]]) -> bool:
        """Draw the figures (plots.draw's jobs); True if the helper drew them, False if this
        process had to."""
        if self.pid is not None and self._drawn_by_child(jobs):
            return True
        draw(jobs)
        return False

    def _start(self) -> None:
        parent, prctl = os.getpid(), _prctl()  # looked up here: the child calls it at once
        requests, self._to_child = os.pipe()
        self._from_child, replies = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # the child may print (a matplotlib warning): not the run's pending output too
        with warnings.catch_warnings():  # Python 3.12+ warns when BLAS worker threads exist;
            warnings.simplefilter("ignore", DeprecationWarning)  # the child needs none of their locks
            pid = os.fork()
        if pid == 0:
            _child(requests, replies, parent, prctl)
        os.close(requests)
        os.close(replies)
        self.pid = pid

    def _drawn_by_child(self, jobs) -> bool:
        request, done = pickle.dumps(jobs), False
        try:
            if len(request) <= PIPE_BYTES and os.write(self._to_child, request) == len(request):
                os.close(self._to_child)  # EOF: the request is whole
                self._to_child = -1
                done = self._answered() and os.read(self._from_child, 1) == b"1"
        except OSError:  # the child is gone: a broken pipe
            pass
        self._stop(wait=done)  # done: it is exiting; else it is killed
        return done

    def _answered(self) -> bool:
        """Wait up to WAIT_SECONDS for the child's answer (or EOF). A signal held back by the
        run's critical block gives the child GRACE_SECONDS more (figures take ~1 s: the record
        then completes), then ends the wait (interrupts.raise_pending)."""
        deadline, signalled = time.monotonic() + WAIT_SECONDS, None
        while (left := deadline - time.monotonic()) > 0:
            if select.select([self._from_child], [], [], min(left, POLL_SECONDS))[0]:
                return True
            if interrupts.pending():
                signalled = signalled or time.monotonic()
                if time.monotonic() - signalled > GRACE_SECONDS:
                    interrupts.raise_pending()
        return False

    def _stop(self, wait: bool) -> None:
        """Close our ends and reap the child, killed first unless it is known to be exiting."""
        for fd in (self._to_child, self._from_child):
            if fd >= 0:
                os.close(fd)
        self._to_child = self._from_child = -1
        if self.pid is None:
            return
        if not wait:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.waitpid(self.pid, 0)
        self.pid = None


def _child(requests: int, replies: int, parent: int, prctl) -> None:
    """Import matplotlib, read the rows (EOF: nothing to draw), draw, answer b"1". Never returns."""
    code = 1
    try:
        _die_with(parent, prctl)
        _close_inherited(keep=(0, 1, 2, requests, replies))
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # so is SLURM's preemption signal (submitit's handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        warm_up()
        with os.fdopen(requests, "rb") as pipe:
            request = pipe.read()
        if request:
            draw(pickle.loads(request))
            os.write(replies, b"1")
            code = 0
    except BaseException:  # the run draws the figure itself
        pass
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's buffers


def _prctl():
    """libc's prctl on Linux (ctypes is loaded already, by NumPy), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with(parent: int, prctl) -> None:
    """SIGKILL this process when its parent dies (Linux), even while it is stopped; a parent
    already gone before that took effect ends it here."""
    if prctl is not None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _close_inherited(keep) -> None:
    """Let go of every descriptor but `keep` (the run's lock file, its metrics file, the sweep's
    lock) by pointing it at /dev/null: the numbers stay taken, so a file object of the parent's
    that is collected here closes /dev/null, not a file this process opened since."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: the usual range
        fds = range(min(os.sysconf("SC_OPEN_MAX"), 1 << 16))
    null = os.open(os.devnull, os.O_RDWR)
    for fd in set(fds) - set(keep) - {null}:
        try:
            os.fstat(fd)  # open (not listdir's own descriptor, gone by now)
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)
