"""W -= A^T B in one call of NumPy's own OpenBLAS GEMM, and the cases it must leave to NumPy."""

from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from mnist_exp.nn.blas import add_product, subtract_product

# PyPI's NumPy wheels (what the README installs) bundle OpenBLAS in numpy.libs or numpy/.dylibs
BUNDLED = any(lib.get("internal_api") == "openblas" and {"numpy.libs", "numpy"} & set(Path(lib["filepath"]).parts)
              for lib in threadpool_info())


def arrays(dtype, k=128, m=717, n=100, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((m, n)).astype(dtype), rng.random((k, m)).astype(dtype), rng.random((k, n)).astype(dtype)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("k", [128, 1, 0])
def test_the_update_is_the_product_subtracted(dtype, rtol, k):
    w, a, b = arrays(dtype, k)
    expected = w - a.T @ b
    done = subtract_product(w, a, b)
    assert done == BUNDLED  # with NumPy's wheels, the one-call path must be the one taken
    if done:
        np.testing.assert_allclose(w, expected, rtol=rtol)


@pytest.mark.parametrize("case", ["strided a", "float32 into float64", "w is read-only", "a is read-only",
                                  "w overlaps a", "shapes disagree"])
def test_what_blas_cannot_take_is_refused_and_left_untouched(case):
    w, a, b = arrays(np.float64, k=8, m=8, n=8)
    if case == "strided a":
        a = np.ascontiguousarray(np.repeat(a, 2, axis=1))[:, ::2]
    elif case == "float32 into float64":
        b = b.astype(np.float32)
    elif case.endswith("read-only"):
        (w if case.startswith("w") else a).flags.writeable = False
    elif case == "w overlaps a":
        a = w
    else:
        b = b[:, :5]
    before = w.copy()
    assert subtract_product(w, a, b) is False
    np.testing.assert_array_equal(w, before)


@pytest.mark.parametrize("transposed", ["neither", "a", "b", "both"])
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_a_product_is_added_in_place_with_either_operand_transposed(transposed, dtype, rtol):
    rng = np.random.default_rng(1)
    c, a, b = (rng.random(s).astype(dtype) for s in ((6, 5), (6, 9), (9, 5)))
    if transposed in ("a", "both"):
        a = np.ascontiguousarray(a.T).T  # an F-ordered view: the transpose of a C-ordered array
    if transposed in ("b", "both"):
        b = np.ascontiguousarray(b.T).T
    expected = c + a @ b
    done = add_product(c, a, b)
    assert done == BUNDLED
    if done:
        np.testing.assert_allclose(c, expected, rtol=rtol)


@pytest.mark.parametrize("case", ["strided a", "mixed dtypes", "c is read-only", "c overlaps b", "shapes disagree"])
def test_what_an_added_product_cannot_take_is_refused_and_left_untouched(case):
    rng = np.random.default_rng(2)
    c, a, b = (rng.random(s) for s in ((4, 4), (4, 4), (4, 4)))
    if case == "strided a":
        a = rng.random((4, 8))[:, ::2]
    elif case == "mixed dtypes":
        b = b.astype(np.float32)
    elif case == "c is read-only":
        c.flags.writeable = False
    elif case == "c overlaps b":
        b = c
    else:
        b = b[:3]
    before = c.copy()
    assert add_product(c, a, b) is False
    np.testing.assert_array_equal(c, before)
