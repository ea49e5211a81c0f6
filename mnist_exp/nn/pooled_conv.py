"""The first convolution and the max pooling after it, as one layer (cnn.py builds it).

Its pixels are computed in pooling-offset order: every window's top-left pixel, then every
window's next one, and so on, as one product over im2col rows laid out that way. Pooling is
then an elementwise maximum of contiguous blocks (3.3x faster than over strided offsets), its
gradient is written into contiguous blocks that the weight gradient's product reads as they
are, and the convolution's output is never laid out as an image. The bias is added after
pooling (max(x + b) = max(x) + b: a quarter of the additions). A window's gradient goes to its
first maximum, as MaxPool2D's does. Pixels beyond the last whole window are never computed.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from mnist_exp.nn.conv import Conv2D


class PooledConv(Conv2D):
    """Conv2D of one input channel followed by MaxPool2D(pool); saves the same arrays as Conv2D.
    Only ever the lowest layer with parameters, so it makes no input gradient."""

    def __init__(self, w: np.ndarray, bias: bool = True, pool: int = 2):
        super().__init__(w, bias)
        if w.shape[2] != 1:
            raise ValueError(f"PooledConv takes one input channel, not {w.shape[2]}")
        self.pool = pool
        self._blocks, self._max = None, None

    def forward(self, x, training):
        kh, kw, _, cout = self.params["w"].shape
        s, (n, h, w) = self.pool, x.shape[:3]
        rows = self._offset_rows(x[..., 0], kh, kw)  # (kh*kw, s*s*n*(h//s)*(w//s))
        blocks = (rows.T @ self.params["w"].reshape(kh * kw, cout)).reshape(s * s, -1, cout)
        top = blocks[0].copy()  # (n*(h//s)*(w//s), cout), before the bias
        for block in blocks[1:]:
            np.maximum(top, block, out=top)
        out = top + self.params["b"] if "b" in self.params else top.copy()
        self._cols, self._blocks, self._max = (rows, blocks, top) if training is not None else (None, None, None)
        return out.reshape(n, h // s, w // s, cout)

    def backward(self, dy, need_dx=True):
        if need_dx:
            raise ValueError("PooledConv is the lowest layer with parameters: no input gradient is needed")
        kh, kw, _, cout = self.params["w"].shape
        dy2 = dy.reshape(-1, cout)
        if "b" in self.params:
            self.grads["b"] = dy2.sum(axis=0)
        blocks, top = self._blocks, self._max
        spread = self._buffer("spread", blocks.shape, dy.dtype)  # the pooling's input gradient, block by block
        first, unclaimed = np.empty(top.shape, bool), np.ones(top.shape, bool)  # windows still to find their maximum
        for block, out in zip(blocks, spread):
            np.equal(block, top, out=first)
            first &= unclaimed
            np.multiply(dy2, first, out=out)
            unclaimed ^= first  # first lies within unclaimed
        dw = np.dot(self._cols, spread.reshape(-1, cout), out=self._buffer("dw", (kh * kw, cout), dy.dtype))
        self.grads["w"] = dw.reshape(self.params["w"].shape)
        return None

    def _offset_rows(self, x: np.ndarray, kh: int, kw: int) -> np.ndarray:
        """(kh*kw, s*s*n*(h//s)*(w//s)): row (a, b) holds, for each pooling offset (i, j), image and
        window, the pixel at kernel offset (a, b) from the window's pixel (i, j); one copy."""
        s, (n, h, w) = self.pool, x.shape
        padded = self._padded(x, kh, kw, "x")  # (n, h + kh - 1, w + kw - 1)
        sn, sh, sw = padded.strides
        view = as_strided(padded, (kh, kw, s, s, n, h // s, w // s), (sh, sw, sh, sw, sn, s * sh, s * sw),
                          writeable=False)
        rows = self._buffer("x_rows", view.shape, x.dtype)
        np.copyto(rows, view)
        return rows.reshape(kh * kw, -1)
