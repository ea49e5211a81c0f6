"""Reading and checking IDX files (the MNIST format), compressed or not.

Layout: a big-endian header (magic, count, then rows and cols for images) and then
unsigned bytes. Every check names the file, so a bad download is easy to find.
"""

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from mnist_exp.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
NUM_CLASSES = 10  # MNIST's and Fashion-MNIST's classes, and the side of their square images:
IMAGE_SIDE = 28  # defined here once, where the files are read
# Larger than any MNIST-like file (47 MB): stops a gzip bomb from filling memory.
MAX_BYTES = 64 * 1024 * 1024


def read_bytes(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The decompressed content of `path` (gzip is detected by its magic, not its name)."""
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as f:
            raw = f.read(limit + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    if len(raw) > limit:
        raise DataError(f"{path}: larger than {limit} bytes once decompressed, refused")
    return raw


def md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def _header(raw: bytes, source: str, magic: int, dims: int) -> tuple:
    size = 4 * (1 + dims)
    if len(raw) < size:
        raise DataError(f"{source}: too short for an IDX header ({len(raw)} bytes)")
    found, *shape = struct.unpack(f">{1 + dims}I", raw[:size])
    if found != magic:
        raise DataError(f"{source}: wrong IDX magic {found} (expected {magic})")
    expected = size + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{source}: {len(raw)} bytes, the header promises {expected}")
    return size, shape


def parse_images(raw: bytes, source: str, rows: int = IMAGE_SIDE, cols: int = IMAGE_SIDE) -> np.ndarray:
    """Images as a (count, rows*cols) uint8 array."""
    offset, (count, r, c) = _header(raw, source, IMAGES_MAGIC, 3)
    if (r, c) != (rows, cols):
        raise DataError(f"{source}: images are {r}x{c}, expected {rows}x{cols}")
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(count, r * c)


def parse_labels(raw: bytes, source: str) -> np.ndarray:
    """Labels as a (count,) uint8 array, each in 0..9."""
    offset, _ = _header(raw, source, LABELS_MAGIC, 1)
    labels = np.frombuffer(raw, np.uint8, offset=offset)
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(f"{source}: label {labels.max()} outside 0..{NUM_CLASSES - 1}")
    return labels


def encode_images(images: np.ndarray) -> bytes:
    """IDX bytes for a (count, rows, cols) uint8 array: for tests and tools."""
    count, rows, cols = images.shape
    return struct.pack(">4I", IMAGES_MAGIC, count, rows, cols) + images.astype(np.uint8).tobytes()


def encode_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">2I", LABELS_MAGIC, len(labels)) + labels.astype(np.uint8).tobytes()
