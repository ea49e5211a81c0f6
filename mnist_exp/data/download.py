"""Fetching one file from an ordered list of mirrors, safely and within bounds.

Each attempt streams into a temp file beside the target and is renamed into place only
once `check` accepts it, so no reader ever sees half a file. Failed attempts are retried
with exponential backoff (capped), then the next mirror is tried.

An attempt runs in a child process (`python -m mnist_exp.data.download`) that the caller kills at
the attempt's deadline: a socket timeout bounds only the wait between bytes, so a mirror
that trickles a byte a second (or its headers) would otherwise hold the run, and the cache's
file lock, forever. A child also stops at MAX_BYTES: no MNIST file is that large, and, as
curl's --speed-limit/--speed-time do, when fewer than SPEED_LIMIT bytes a second arrived over
SPEED_TIME seconds (headers included): that mirror is then given up for the next one, so a
trickling mirror costs SPEED_TIME, not data.deadline times the retries.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Sequence

from mnist_exp.files.atomic import write_atomic
from mnist_exp.errors import DataError

CHUNK = 1 << 16
MAX_BYTES = 64 << 20  # a download larger than this is not an MNIST file (the biggest is 47 MB)
MAX_BACKOFF = 8.0  # seconds between two attempts at the most
EXIT_TOO_LARGE = 3  # the child's exit code for a payload over MAX_BYTES: that mirror is given up
SPEED_LIMIT = 1024  # bytes/s: a mirror slower than this over SPEED_TIME is given up (an MNIST file is ~10 MB)
SPEED_TIME = 30.0  # seconds; like the socket timeout, long enough for a congested but working link
EXIT_TOO_SLOW = 4  # the child's exit code for a mirror under the speed floor: given up, not retried


def _backoff_sleep(seconds: float) -> None:
    """The pause between two attempts: its own name, so tests count these pauses and not the
    time.sleep calls of subprocess's waits."""
    time.sleep(seconds)


class Failed(Exception):
    """One attempt failed for a reason worth retrying (network, HTTP status, deadline)."""


def _stream(url: str, dest: Path, timeout: float, max_bytes: int, speed: "_SpeedFloor") -> None:
    """Download `url` to `dest` (in the child), with a progress bar when stderr is a terminal."""
    import requests
    from tqdm import tqdm

    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length") or 0) or None
        if total is not None and total > max_bytes:
            raise OverflowError(f"{total} bytes announced, over the {max_bytes >> 20} MiB limit")
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                   disable=not sys.stderr.isatty(), leave=False)
        received = 0
        with bar, open(dest, "wb") as f:
            for chunk in response.iter_content(speed.chunk):
                received += len(chunk)
                speed.received = received
                if received > max_bytes:
                    raise OverflowError(f"over {max_bytes >> 20} MiB received, the limit")
                f.write(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise requests.exceptions.ChunkedEncodingError("connection dropped mid-file")


def _attempt(url: str, dest: Path, timeout: float, deadline: float, max_bytes: int, floor: tuple) -> None:
    """One download in a child process, killed at `deadline` seconds (or when we are stopped);
    `floor` is (speed_limit, speed_time)."""
    child = subprocess.Popen([sys.executable, "-m", "mnist_exp.data.download", url, str(dest), repr(timeout),
                              str(max_bytes), repr(deadline), *map(repr, floor)], stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
    try:
        reason, _ = child.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        raise Failed(f"not complete after {deadline:g} s (data.deadline)") from None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode in (EXIT_TOO_LARGE, EXIT_TOO_SLOW):
        raise DataError(reason.strip())
    if child.returncode != 0:
        raise Failed(reason.strip() or f"the download process ended with code {child.returncode}")


def fetch(filename: str, mirrors: Sequence[str], target: Path, check: Callable[[Path], None],
          timeout: float = 30.0, retries: int = 3, backoff: float = 0.5, deadline: float = 600.0,
          max_bytes: int = MAX_BYTES, speed_limit: int = SPEED_LIMIT, speed_time: float = SPEED_TIME) -> Path:
    """Download `filename` from the first mirror that serves a copy `check` accepts.

    `check` raises DataError for a bad payload; that mirror is then given up at once
    (a retry would serve the same bytes), as it is when it sends under `speed_limit` bytes/s
    for `speed_time` s. Other failures are retried `retries` times.
    """
    floor = (speed_limit, speed_time)
    tried: List[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        for attempt in range(retries):
            try:
                write_atomic(target, lambda tmp: _checked(url, tmp, check, timeout, deadline, max_bytes, floor))
                return target
            except DataError as e:
                tried.append(f"{url}: {e}")
                break
            except (Failed, OSError) as e:
                if attempt + 1 == retries:
                    tried.append(f"{url}: {e}" + (f" ({retries} attempts)" if retries > 1 else ""))
                else:
                    _backoff_sleep(min(backoff * 2 ** attempt, MAX_BACKOFF))
    raise DataError(f"could not download {filename}; tried " + "; ".join(tried))


def _checked(url: str, tmp: Path, check: Callable[[Path], None], timeout: float, deadline: float,
             max_bytes: int, floor: tuple) -> None:
    _attempt(url, tmp, timeout, deadline, max_bytes, floor)
    try:
        check(tmp)
    except DataError as e:  # name what was downloaded, not the temp file that is about to go
        raise DataError(str(e).replace(f"{tmp}: ", "").replace(str(tmp), url.rsplit("/", 1)[-1])) from None


def _short(error: Exception) -> str:
    """A one-line reason: requests' messages nest the whole urllib3 chain."""
    import requests

    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}"
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "connection dropped mid-file"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    if isinstance(error, requests.exceptions.InvalidURL):
        return f"not a valid URL ({error})"
    return f"{error.__class__.__name__}: {error}"


def main(argv: List[str]) -> int:
    """The child: download URL to DEST; on failure one line on stdout and a non-zero exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills us
    url, dest, timeout, max_bytes, deadline = argv[0], Path(argv[1]), float(argv[2]), int(argv[3]), float(argv[4])
    signal.alarm(int(deadline) + 5)  # ends us even if the parent was killed before it could
    speed = _SpeedFloor(int(argv[5]), float(argv[6]))
    try:
        _stream(url, dest, timeout, max_bytes, speed)
    except OverflowError as e:
        print(f"not an MNIST file: {e}")
        return EXIT_TOO_LARGE
    except Exception as e:
        print(_short(e))
        return 1
    return 0


class _SpeedFloor:
    """In the child: a watchdog thread that ends the process (EXIT_TOO_SLOW, the reason on
    stdout) when fewer than limit * seconds bytes arrived in the last `seconds`. A blocked
    read cannot be interrupted from a thread, hence the exit; reads are small enough
    (`chunk`) that a mirror at the floor delivers several in each window."""

    def __init__(self, limit: int, seconds: float):
        self.limit, self.seconds, self.received = limit, seconds, 0
        self.chunk = max(1, min(CHUNK, int(limit * seconds) // 16))
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        counted = 0
        while True:
            time.sleep(self.seconds)
            if self.received - counted < self.limit * self.seconds:
                print(f"too slow: under {self.limit} bytes/s for {self.seconds:g} s "
                      f"({self.received - counted} bytes)", flush=True)
                os._exit(EXIT_TOO_SLOW)
            counted = self.received


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
