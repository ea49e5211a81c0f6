"""Fetching one file from an ordered list of mirrors, safely.

Each attempt streams into a temp file beside the target and is renamed into place
only once `check` accepts it, so no reader ever sees half a file. Failed attempts
are retried with exponential backoff, then the next mirror is tried.
"""

import sys
import time
from pathlib import Path
from typing import Callable, List, Sequence

from mnist_exp.atomic import write_atomic
from mnist_exp.errors import DataError

CHUNK = 1 << 16


def _stream(url: str, dest: Path, timeout: float) -> None:
    """Download `url` to `dest`, with a progress bar when stderr is a terminal."""
    import requests
    from tqdm import tqdm

    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length") or 0) or None
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                   disable=not sys.stderr.isatty(), leave=False)
        with bar, open(dest, "wb") as f:
            for chunk in response.iter_content(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
        if total is not None and dest.stat().st_size != total:
            raise requests.exceptions.ChunkedEncodingError("connection dropped mid-file")


def fetch(filename: str, mirrors: Sequence[str], target: Path, check: Callable[[Path], None],
          timeout: float = 30.0, retries: int = 3, backoff: float = 0.5) -> Path:
    """Download `filename` from the first mirror that serves a copy `check` accepts.

    `check` raises DataError for a bad payload; that mirror is then given up at once
    (a retry would serve the same bytes). Network errors are retried `retries` times.
    """
    import requests  # only a download needs it: a warm start skips the import

    tried: List[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        for attempt in range(retries):
            try:
                write_atomic(target, lambda tmp: (_stream(url, tmp, timeout), check(tmp)))
                return target
            except DataError as e:
                tried.append(f"{url}: {e}")
                break
            except (requests.RequestException, OSError) as e:
                reason = _short(e)
                if attempt + 1 == retries:
                    tried.append(f"{url}: {reason}" + (f" ({retries} attempts)" if retries > 1 else ""))
                else:
                    time.sleep(backoff * 2 ** attempt)
    raise DataError(f"could not download {filename}; tried " + "; ".join(tried))


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
    return f"{error.__class__.__name__}: {error}"
