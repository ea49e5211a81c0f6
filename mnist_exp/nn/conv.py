"""Convolution layers in NumPy: images channels-last (n, height, width, channels).

Conv2D is GEMMs over im2col rows: each output pixel's receptive field copied into one row, in
(kernel row, kernel column, channel) order so each copied run is contiguous, a cache-sized chunk
of the batch at a time (see Conv2D._chunks).
MaxPool2D sends a window's gradient to its first maximum (MNIST's blank background makes
exact ties common; any one maximum is a valid subgradient, the first is deterministic).
"""

from typing import Dict, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mnist_exp.nn import blas
from mnist_exp.nn.layers import Layer

CHUNK_VALUES = 2 ** 18  # im2col values per chunk of a batch: 1 MB of float32, within a core's L2 cache


def _add_product(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """c += a @ b: one GEMM adding into c where NumPy's OpenBLAS is found, else a product and a sum."""
    if not blas.add_product(c, a, b):
        c += a @ b


def _windows(padded: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """(n, h, w, kh, kw, c): each output pixel's receptive field in images inside their zero
    border, a view. Made once per batch and sliced per chunk (sliding_window_view takes ~20 µs)."""
    return sliding_window_view(padded, (kh, kw), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)


class Image(Layer):
    """Rows of pixels (n, height * width * channels) as images (n, height, width, channels)."""
    kind = "image"

    def __init__(self, height: int, width: int, channels: int = 1):
        super().__init__()
        self.shape = (height, width, channels)

    def forward(self, x, training):
        return x.reshape(len(x), *self.shape)

    def backward(self, dy, need_dx=True):
        return dy.reshape(len(dy), int(np.prod(self.shape))) if need_dx else None  # not -1: 0 rows too


class Conv2D(Layer):
    """A 'same'-padded convolution (stride 1, odd kernel) with a bias per output channel.
    w: (kernel rows, kernel columns, in channels, out channels).

    The input's gradient is itself a 'same' convolution: of the output's gradient with the
    kernel turned 180 degrees and its channels swapped. Computed that way it is one more
    im2col and GEMM; adding each im2col row's gradient back where it came from (col2im) took
    three times as long, in 25 strided passes. Buffers are kept from batch to batch."""
    kind = "conv"
    decayed = ("w",)

    def __init__(self, w: np.ndarray, bias: bool = True):
        super().__init__()
        if w.shape[0] % 2 == 0 or w.shape[1] % 2 == 0:
            raise ValueError(f"a 'same' convolution needs an odd kernel, not {w.shape[:2]}")
        self.params["w"] = w
        if bias:
            self.params["b"] = np.zeros(w.shape[3], w.dtype)
        self._buffers: Dict[str, np.ndarray] = {}
        self._cols: Optional[np.ndarray] = None  # one channel: the training batch's (kh*kw, pixels) rows

    def forward(self, x, training):
        kh, kw, cin, cout = self.params["w"].shape
        n, h, w, _ = x.shape
        w2 = self.params["w"].reshape(kh * kw * cin, cout)
        if cin == 1:  # one channel: each kernel offset's pixels as one contiguous row, 4x faster
            cols = self._im2col_rows(x[..., 0], kh, kw)
            y = cols.T @ w2
            if "b" in self.params:
                y += self.params["b"]
            if training is not None:
                self._cols = cols
            return y.reshape(n, h, w, cout)
        windows, y = _windows(self._padded(x, kh, kw, "x"), kh, kw), np.empty((n * h * w, cout), x.dtype)
        for rows, images in self._chunks(n, h * w, kh * kw * cin):  # (pixels, kh*kw*cin) @ (kh*kw*cin, cout)
            np.matmul(self._im2col(windows[images], "x"), w2, out=y[rows])
            if "b" in self.params:
                y[rows] += self.params["b"]
        self._cols = None  # backward copies the windows again from the padded input it keeps
        return y.reshape(n, h, w, cout)

    def backward(self, dy, need_dx=True):
        kh, kw, cin, cout = self.params["w"].shape
        dy2 = dy.reshape(-1, cout)
        if "b" in self.params:
            self.grads["b"] = dy2.sum(axis=0)
        if cin == 1:  # _cols holds (kh*kw, pixels)
            dw = np.dot(self._cols, dy2, out=self._buffer("dw", (kh * kw * cin, cout), dy.dtype))
            self.grads["w"] = dw.reshape(self.params["w"].shape)
            return None if not need_dx else self._input_gradient(dy)
        n, h, w, _ = dy.shape
        windows = _windows(self._buffers["x_padded"], kh, kw)  # forward's input, still inside its zero border
        dw = self._buffer("dw", (cout, kh * kw * cin), dy.dtype)  # (dy^T cols)^T: long, narrow products
        dw[...] = 0
        for rows, images in self._chunks(n, h * w, kh * kw * cin):
            _add_product(dw, dy2[rows].T, self._im2col(windows[images], "x"))
        self.grads["w"] = dw.T.reshape(self.params["w"].shape)
        if not need_dx:
            return None
        # the input's gradient: a 'same' convolution of dy with the turned kernel, in chunks of its own
        # (sharing the weight gradient's loop, the two chunks' rows did not fit in the cache together)
        turned, windows = self._turned(), _windows(self._padded(dy, kh, kw, "dy"), kh, kw)
        dx = np.empty((n * h * w, cin), dy.dtype)
        for rows, images in self._chunks(n, h * w, kh * kw * cout):
            np.matmul(self._im2col(windows[images], "dy"), turned, out=dx[rows])
        return dx.reshape(n, h, w, cin)

    def _turned(self) -> np.ndarray:
        """The kernel turned 180 degrees with its channels swapped: (kh*kw*cout, cin)."""
        kh, kw, cin, cout = self.params["w"].shape
        return self.params["w"][::-1, ::-1].transpose(0, 1, 3, 2).reshape(kh * kw * cout, cin)

    def _input_gradient(self, dy: np.ndarray) -> np.ndarray:
        kh, kw, cin, _ = self.params["w"].shape
        return (self._im2col(_windows(self._padded(dy, kh, kw, "dy"), kh, kw), "dy") @ self._turned()).reshape(
            *dy.shape[:3], cin)

    @staticmethod
    def _chunks(n: int, pixels: int, width: int):
        """(rows of the output, images) of consecutive chunks of the batch whose im2col rows,
        `width` values each, fill about CHUNK_VALUES: a chunk's rows stay in a core's cache
        between the copy that makes them and the product that reads them (the whole batch's,
        20-40 MB, went to memory and back: conv2 took twice as long inside the network as alone)."""
        step = max(1, CHUNK_VALUES // (pixels * width))
        for start in range(0, n, step):
            stop = min(n, start + step)
            yield slice(start * pixels, stop * pixels), slice(start, stop)

    def _buffer(self, name: str, shape: tuple, dtype) -> np.ndarray:
        array = self._buffers.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._buffers[name] = np.zeros(shape, dtype)
        return array

    def _scratch(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """An uninitialised array of `shape` in a buffer kept at the largest size asked for (a
        batch's last, smaller chunk does not make a new one)."""
        size, array = int(np.prod(shape)), self._buffers.get(name)
        if array is None or array.size < size or array.dtype != dtype:
            array = self._buffers[name] = np.empty(size, dtype)
        return array[:size].reshape(shape)

    def _padded(self, x: np.ndarray, kh: int, kw: int, name: str) -> np.ndarray:
        """x inside a zero border of half a kernel (the border is never written, so stays 0)."""
        (n, h, w), ph, pw = x.shape[:3], kh // 2, kw // 2
        padded = self._buffer(name + "_padded", (n, h + 2 * ph, w + 2 * pw, *x.shape[3:]), x.dtype)
        padded[:, ph:ph + h, pw:pw + w] = x
        return padded

    def _im2col(self, windows: np.ndarray, name: str) -> np.ndarray:
        """(n*h*w, kh*kw*c) from _windows: one row per pixel, its receptive field in (row, column,
        channel) order, so every copied run is a pixel's c contiguous channels."""
        n, h, w, kh, kw, c = windows.shape
        cols = self._scratch(name + "_cols", windows.shape, windows.dtype)
        np.copyto(cols, windows)
        return cols.reshape(n * h * w, kh * kw * c)

    def _im2col_rows(self, x: np.ndarray, kh: int, kw: int) -> np.ndarray:
        """(kh*kw, n*h*w) for one channel: row a*kw+b holds every pixel's neighbour at offset (a, b)."""
        n, h, w = x.shape
        windows = sliding_window_view(self._padded(x, kh, kw, "x"), (kh, kw), axis=(1, 2))  # (n, h, w, kh, kw)
        rows = self._buffer("x_rows", (kh, kw, n, h, w), x.dtype)
        np.copyto(rows, windows.transpose(3, 4, 0, 1, 2))
        return rows.reshape(kh * kw, n * h * w)


class MaxPool2D(Layer):
    """Maximum over non-overlapping size x size windows; rows or columns left over are dropped.
    Taken offset by offset over strided views (a reduction over the windows' axes was 3x
    slower); backward finds each window's first maximum the same way, in reused buffers."""
    kind = "maxpool"

    def __init__(self, size: int = 2):
        super().__init__()
        self.size = size
        self._x, self._y = None, None

    def _offsets(self, shape: tuple):
        s, (h, w) = self.size, shape[1:3]
        for a in range(s):
            for b in range(s):
                yield (slice(None), slice(a, h // s * s, s), slice(b, w // s * s, s))

    def forward(self, x, training):
        offsets = self._offsets(x.shape)
        y = x[next(offsets)].copy()
        for where in offsets:
            np.maximum(y, x[where], out=y)
        self._x, self._y = (x, y) if training is not None else (None, None)
        return y

    def backward(self, dy, need_dx=True):
        x, y, s = self._x, self._y, self.size
        covered = x.shape[1] % s == 0 and x.shape[2] % s == 0  # the windows cover every pixel
        dx = np.empty(x.shape, dy.dtype) if covered else np.zeros(x.shape, dy.dtype)
        first, unclaimed = np.empty(y.shape, bool), np.ones(y.shape, bool)  # windows still to find their maximum
        for where in self._offsets(x.shape):
            np.equal(x[where], y, out=first)
            first &= unclaimed
            np.multiply(dy, first, out=dx[where])
            unclaimed ^= first  # first lies within unclaimed
        return dx


class Flatten(Layer):
    """Images (n, height, width, channels) as rows (n, height * width * channels)."""
    kind = "flatten"

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x, training):
        self._shape = x.shape
        return x.reshape(len(x), int(np.prod(x.shape[1:])))  # not -1, which cannot reshape 0 rows

    def backward(self, dy, need_dx=True):
        return dy.reshape(self._shape)

