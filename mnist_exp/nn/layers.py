"""The general network's layers: small objects, each owning its parameters and gradients.

A layer's `forward(x, training)` keeps what its `backward(dy, need_dx)` needs; backward
fills `grads` and returns the gradient w.r.t. its input (None where nobody needs it). Both may
work in place on what they are given: a layer's input is an array the layer below made
(never the batch itself, which only a dense layer reads), and a gradient is its own.
`training` is None when evaluating: no dropout, batch norm on its running statistics.
Arrays a layer saves are `params` (trained) and `stats` (running statistics, not trained).
"""

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from mnist_exp.nn import blas

BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # running statistics: new = 0.9 old + 0.1 batch


class EpochBits:
    """An epoch's dropout bits, drawn at once: a draw per batch costs more than its bits."""

    def __init__(self, rng: np.random.Generator, sizes: Iterable[int]):
        self._bytes = np.frombuffer(rng.bytes(sum((size + 7) // 8 for size in sizes)), np.uint8)
        self._at = 0

    def take(self, size: int) -> np.ndarray:
        """The next `size` bits, as 0/1 bytes (each take starts on a byte)."""
        start, self._at = self._at, self._at + (size + 7) // 8
        return np.unpackbits(self._bytes[start:self._at], count=size)


@dataclass
class Training:
    """What a training pass hands every layer: the generator (dropout), the epoch's dropout
    bits if drawn, and `descend`: plain SGD with lr already in the output gradient, so dense
    layers take their step inside backward (see Dense.backward)."""
    rng: Optional[np.random.Generator]
    bits: Optional[EpochBits] = None
    descend: bool = False
    masks: Optional[Dict[str, Tuple[np.ndarray, float]]] = None  # dropout masks drawn beforehand, by layer name


class Layer:
    """Attributes named with a leading underscore hold one batch's state and reused buffers:
    a replica (stack.Stack.replica) shares params and stats and starts those empty."""
    kind = "layer"  # names in saved files: kind + number, e.g. dense1, batchnorm2
    decayed: Tuple[str, ...] = ()  # the params weight decay applies to

    def __init__(self):
        self.name = self.kind
        self.params: Dict[str, np.ndarray] = {}
        self.stats: Dict[str, np.ndarray] = {}
        self.grads: Dict[str, np.ndarray] = {}
        self._grad_out: Dict[str, np.ndarray] = {}  # where backward may write a param's gradient (Stack.pack)

    def forward(self, x: np.ndarray, training: Optional[Training]) -> np.ndarray:
        raise NotImplementedError

    def _gradient_buffer(self, name: str, shape: tuple, dtype) -> Optional[np.ndarray]:
        """The buffer Stack.pack gave `name`'s gradient, if it fits."""
        out = self._grad_out.get(name)
        return out if out is not None and out.shape == shape and out.dtype == dtype else None

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> Optional[np.ndarray]:
        raise NotImplementedError


class Dense(Layer):
    """y = x W (+ b). Its weight gradient goes into a buffer kept from batch to batch (a fresh
    W1-sized array per batch costs page faults): valid until the next backward."""
    kind = "dense"
    decayed = ("w",)

    def __init__(self, w: np.ndarray, bias: bool = False):
        super().__init__()
        self.params["w"] = w
        if bias:
            self.params["b"] = np.zeros(w.shape[1], w.dtype)
        self._x, self._training, self._dw = None, None, None

    def forward(self, x, training):
        self._x, self._training = (x, training) if training is not None else (None, None)
        y = x @ self.params["w"]  # (n, fan_in) @ (fan_in, fan_out)
        if "b" in self.params:
            y += self.params["b"]
        return y

    def backward(self, dy, need_dx=True):
        """With training.descend, W takes its SGD step here (after dx used it), W -= x^T dy, in one
        BLAS call where blas.subtract_product can; the bias gradient is left for the optimiser."""
        w, x = self.params["w"], self._x
        dx = dy @ w.T if need_dx else None  # before the weights change
        self.grads.clear()
        if not self._training.descend:
            self.grads["w"] = self._product(x.T, dy)
        elif not blas.subtract_product(w, x, dy):
            w -= self._product(x.T, dy)
        if "b" in self.params:
            self.grads["b"] = np.sum(dy, axis=0, out=self._gradient_buffer("b", dy.shape[1:], dy.dtype))
        return dx

    def _product(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        shape, dtype = (a.shape[0], b.shape[1]), np.result_type(a, b)
        out = self._gradient_buffer("w", shape, dtype)
        if out is None:
            if self._dw is None or self._dw.shape != shape or self._dw.dtype != dtype:
                self._dw = np.empty(shape, dtype)
            out = self._dw
        return np.dot(a, b, out=out)


class ReLU(Layer):
    """max(x, 0), in place. derivative="reference" keeps the walkthrough's quirk: its derivative
    taken on the post-dropout output, which is always >= 0, so the gradient passes unchanged.

    "correct" multiplies by y > 0 on the output it kept, which a dropout above may have scaled
    or zeroed in place since: where it zeroed a unit its mask zeroes the gradient anyway, and a
    kept unit stays > 0 exactly where x was."""
    kind = "relu"

    def __init__(self, derivative: str = "correct"):
        super().__init__()
        self.derivative, self._y = derivative, None

    def forward(self, x, training):
        y = np.maximum(x, 0, out=x)
        self._y = y if training is not None else None
        return y

    def backward(self, dy, need_dx=True):
        if self.derivative == "correct":
            dy *= self._y > 0
        return dy


class Dropout(Layer):
    """Inverted dropout of a share `rate` of `width` units while training; the identity when
    evaluating. derivative="reference" applies the mask without its scale going back, as the
    walkthrough does. Works in place on its input (a fresh array from the layer below)."""
    kind = "dropout"

    def __init__(self, rate: float, width: int, derivative: str = "correct"):
        super().__init__()
        self.rate, self.width, self.derivative = rate, width, derivative
        self._mask, self._scale = None, 1.0

    def forward(self, x, training):
        self._mask = None
        if training is None or self.rate <= 0:
            return x
        if training.masks is not None:
            self._mask, self._scale = training.masks[self.name]
        else:
            self._mask, self._scale = dropout_mask(training.rng, x.shape, self.rate, training.bits)
        x *= self._mask
        x *= self._scale
        return x

    def backward(self, dy, need_dx=True):
        if self._mask is not None:
            dy *= self._mask
            if self.derivative == "correct":
                dy *= self._scale
        return dy


class BatchNorm(Layer):
    """Normalises each unit over the batch while training (keeping running statistics, which
    evaluation uses), then scales by gamma and shifts by beta."""
    kind = "batchnorm"

    def __init__(self, width: int, dtype=np.float64):
        super().__init__()
        self.params.update(gamma=np.ones(width, dtype), beta=np.zeros(width, dtype))
        self.stats.update(mean=np.zeros(width, dtype), var=np.ones(width, dtype))
        self._zhat, self._std = None, None

    def forward(self, x, training):
        if training is not None:
            mean, var = x.mean(axis=0), x.var(axis=0)
            self.stats["mean"][...] = BN_MOMENTUM * self.stats["mean"] + (1 - BN_MOMENTUM) * mean
            self.stats["var"][...] = BN_MOMENTUM * self.stats["var"] + (1 - BN_MOMENTUM) * var
        else:
            mean, var = self.stats["mean"], self.stats["var"]
        std = np.sqrt(var + BN_EPS)
        zhat = (x - mean) / std
        if training is not None:
            self._zhat, self._std = zhat, std
        return self.params["gamma"] * zhat + self.params["beta"]

    def backward(self, dy, need_dx=True):
        zhat, std = self._zhat, self._std
        self.grads["gamma"] = (dy * zhat).sum(axis=0)
        self.grads["beta"] = dy.sum(axis=0)
        dzhat = dy * self.params["gamma"]
        return (dzhat - dzhat.mean(axis=0) - zhat * (dzhat * zhat).mean(axis=0)) / std


def dropout_mask(rng: np.random.Generator, shape: Tuple[int, int], rate: float,
                 bits: Optional[EpochBits] = None) -> Tuple[np.ndarray, float]:
    """(0/1 mask, scale) for dropping a share `rate` of units.

    For one sample at rate 0.5 this is the reference's own draw, integers(0, 2), so a
    per-sample run consumes the generator as the walkthrough does. Mini-batches at rate
    0.5 take one random bit per unit instead (from `bits` when the epoch drew them):
    the same distribution, 64 times fewer bytes.
    """
    if rate == 0.5 and shape[0] == 1:
        return rng.integers(low=0, high=2, size=shape).astype(np.uint8), 2.0
    if rate == 0.5:
        size = shape[0] * shape[1]
        if bits is None:
            bits = EpochBits(rng, [size])
        return bits.take(size).reshape(shape), 2.0
    return (rng.random(shape) >= rate).view(np.uint8), 1.0 / (1.0 - rate)
