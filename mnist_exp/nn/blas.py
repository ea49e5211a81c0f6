"""NumPy's own BLAS: sections on one thread, and W -= A^T B or C += A B as one GEMM call (beta = 1).

Both find the library through threadpoolctl, once per process.

NumPy's matmul cannot add into its output, so an SGD step is a product into a buffer, then
a subtraction on one thread. For W1 at batch 128 that subtraction cost ~45 µs a batch, ~10% of
a float32 epoch: the product came from two BLAS threads and half of it sat in the other
core's cache. The GEMM updates W in place, on BLAS's own threads. Only the OpenBLAS found
(by threadpoolctl) inside NumPy's own folders is used, through its CBLAS entry point; with any
other BLAS, `subtract_product` says no and the caller multiplies and subtracts as before.
"""

import ctypes
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS's enums
# ILP64 CBLAS names of the OpenBLAS in NumPy's wheels: NumPy 2.x (scipy-openblas), then 1.x
SYMBOLS = ("scipy_cblas_{}gemm64_", "cblas_{}gemm64_")


def subtract_product(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """w -= a.T @ b in place, in one BLAS call; False (w untouched) where that cannot be done."""
    if not _suitable(w, a, b):
        return False
    gemm = _gemm(w.dtype.char)
    if gemm is None:
        return False
    (k, m), n = a.shape, b.shape[1]
    if k and w.size:  # else there is nothing to subtract
        gemm(ROW_MAJOR, TRANS, NO_TRANS, m, n, k, -1.0, _address(a), m, _address(b), n, 1.0, _address(w), n)
    return True


def add_product(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """c += a @ b in place, in one BLAS call; a and b may be transposed views of C-ordered arrays.
    False (c untouched) where that cannot be done. A convolution sums its weight gradient over
    cache-sized chunks of a batch this way, without a temporary per chunk."""
    orders = [_order(x) for x in (a, b)]
    if (None in orders or c.dtype.char not in "fd" or a.dtype != c.dtype or b.dtype != c.dtype
            or not (c.flags.c_contiguous and c.flags.writeable) or a.ndim != 2 or b.ndim != 2
            or c.shape != (a.shape[0], b.shape[1]) or a.shape[1] != b.shape[0]
            or np.may_share_memory(c, a) or np.may_share_memory(c, b)):
        return False
    gemm = _gemm(c.dtype.char)
    if gemm is None:
        return False
    (m, k), n = a.shape, b.shape[1]
    if k and c.size:
        (ta, la, xa), (tb, lb, xb) = orders
        gemm(ROW_MAJOR, ta, tb, m, n, k, 1.0, _address(xa), la, _address(xb), lb, 1.0, _address(c), n)
    return True


def _order(x: np.ndarray):
    """(CBLAS transpose flag, leading dimension, the C-ordered array) of a C-ordered writable
    array or of the transpose of one; None for anything else."""
    if x.ndim == 2 and x.flags.c_contiguous and x.flags.writeable:
        return NO_TRANS, max(x.shape[1], 1), x
    if x.ndim == 2 and x.flags.f_contiguous and x.flags.writeable:
        return TRANS, max(x.shape[0], 1), x.T
    return None


def _address(array: np.ndarray) -> int:
    """Where a writable array's data starts: 0.3 µs, where array.ctypes.data takes 1.8 µs."""
    return ctypes.addressof(ctypes.c_char.from_buffer(array))


def _suitable(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    flags = (w.flags, a.flags, b.flags)
    return (w.dtype.char in "fd" and a.dtype == w.dtype and b.dtype == w.dtype
            and flags[0].c_contiguous and flags[1].c_contiguous and flags[2].c_contiguous
            and flags[0].writeable and flags[1].writeable and flags[2].writeable  # see _address
            and a.ndim == b.ndim == 2 and a.shape[0] == b.shape[0] and w.shape == (a.shape[1], b.shape[1])
            and not np.may_share_memory(w, a) and not np.may_share_memory(w, b))


def one_thread():
    """A context in which BLAS runs on the calling thread alone.

    For small products, where threads cost more than they give, and for the exact path's
    evaluation: after a product on two threads, OpenBLAS's worker spins for a while on the
    other core, where the run's figure helper (figure_process.py) is importing matplotlib;
    three busy threads on two cores made the epochs ~2x slower.
    """
    return _controller().limit(limits=1, user_api="blas")


def threads() -> int:
    """The BLAS threads allowed now (a sweep's job may be limited to fewer than the cores); 1
    where no BLAS is found."""
    return max((lib["num_threads"] for lib in _controller().info() if lib["user_api"] == "blas"), default=1)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@lru_cache(maxsize=1)
def _controller():
    """Found once per process: scanning the loaded libraries costs ~1.5 ms, every epoch otherwise."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@lru_cache(maxsize=None)
def _gemm(kind: str) -> Optional[Callable]:
    """cblas_sgemm ("f") or cblas_dgemm ("d") of NumPy's own OpenBLAS, or None."""
    numpy_dir = Path(np.__file__).resolve().parent
    for lib in _controller().info():
        path = Path(lib["filepath"]).resolve()
        ours = path.parent.name == "numpy.libs" or numpy_dir in path.parents  # Linux/Windows, macOS wheels
        if lib.get("internal_api") != "openblas" or not ours:
            continue
        library = ctypes.CDLL(str(path))
        for symbol in SYMBOLS:
            gemm = getattr(library, symbol.format("s" if kind == "f" else "d"), None)
            if gemm is not None:
                return _declare(gemm, ctypes.c_float if kind == "f" else ctypes.c_double)
    return None


def _declare(gemm, real) -> Callable:
    size, pointer, enum = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    gemm.argtypes = [enum, enum, enum, size, size, size, real, pointer, size, pointer, size, real, pointer, size]
    gemm.restype = None
    return gemm
