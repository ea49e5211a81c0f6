"""Convolution layers in NumPy: images channels-last (n, height, width, channels).

Conv2D is two GEMMs over an im2col buffer: each output pixel's receptive field copied into
one row, in (kernel row, kernel column, channel) order so each copied run is contiguous.
MaxPool2D sends a window's gradient to its first maximum (MNIST's blank background makes
exact ties common; any one maximum is a valid subgradient, the first is deterministic).
"""

from typing import Dict, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mnist_exp.nn.layers import Layer


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
        self._cols: Optional[np.ndarray] = None  # the training batch's im2col rows (transposed if cin == 1)

    def forward(self, x, training):
        kh, kw, cin, cout = self.params["w"].shape
        n, h, w, _ = x.shape
        w2 = self.params["w"].reshape(kh * kw * cin, cout)
        if cin == 1:  # one channel: each kernel offset's pixels as one contiguous row, 4x faster
            cols = self._im2col_rows(x[..., 0], kh, kw)
            y = cols.T @ w2
        else:
            cols = self._im2col(x, kh, kw, "x")
            y = cols @ w2
        if "b" in self.params:
            y += self.params["b"]
        if training is not None:
            self._cols = cols
        return y.reshape(n, h, w, cout)

    def backward(self, dy, need_dx=True):
        kh, kw, cin, cout = self.params["w"].shape
        dy2 = dy.reshape(-1, cout)
        if cin == 1:  # _cols holds (kh*kw, pixels)
            dw = np.dot(self._cols, dy2, out=self._buffer("dw", (kh * kw * cin, cout), dy.dtype))
        else:  # (dy^T cols)^T: 1.4x faster than cols^T dy for these long, narrow products
            dw = np.dot(dy2.T, self._cols, out=self._buffer("dw", (cout, kh * kw * cin), dy.dtype)).T
        self.grads["w"] = dw.reshape(self.params["w"].shape)
        if "b" in self.params:
            self.grads["b"] = dy2.sum(axis=0)
        if not need_dx:
            return None
        turned = self.params["w"][::-1, ::-1].transpose(0, 1, 3, 2).reshape(kh * kw * cout, cin)
        return (self._im2col(dy, kh, kw, "dy") @ turned).reshape(*dy.shape[:3], cin)

    def _buffer(self, name: str, shape: tuple, dtype) -> np.ndarray:
        array = self._buffers.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._buffers[name] = np.zeros(shape, dtype)
        return array

    def _padded(self, x: np.ndarray, kh: int, kw: int, name: str) -> np.ndarray:
        """x inside a zero border of half a kernel (the border is never written, so stays 0)."""
        (n, h, w), ph, pw = x.shape[:3], kh // 2, kw // 2
        padded = self._buffer(name + "_padded", (n, h + 2 * ph, w + 2 * pw, *x.shape[3:]), x.dtype)
        padded[:, ph:ph + h, pw:pw + w] = x
        return padded

    def _im2col(self, x: np.ndarray, kh: int, kw: int, name: str) -> np.ndarray:
        """(n*h*w, kh*kw*c): one row per pixel, its receptive field in (row, column, channel)
        order, so every copied run is a pixel's c contiguous channels."""
        (n, h, w, c) = x.shape
        windows = sliding_window_view(self._padded(x, kh, kw, name), (kh, kw), axis=(1, 2))  # (n, h, w, c, kh, kw)
        cols = self._buffer(name + "_cols", (n, h, w, kh, kw, c), x.dtype)
        np.copyto(cols, windows.transpose(0, 1, 2, 4, 5, 3))
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

