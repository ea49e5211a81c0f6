"""The walkthrough's network: 784-H-10, ReLU hidden layer, dropout, no biases, squared error.

Plain NumPy, no config objects: call it from a notebook as easily as from the app.
Everything random comes from the one `numpy.random.Generator` the caller passes in,
drawn in the reference's order: W1, W2, then one dropout mask per training sample.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Tuple

import numpy as np

from mnist_exp.data import Split


@dataclass
class Weights:
    w1: np.ndarray  # (784, H) input -> hidden
    w2: np.ndarray  # (H, 10) hidden -> output


def init_weights(rng: np.random.Generator, hidden: int, n_in: int = 784, n_out: int = 10) -> Weights:
    """Uniform in [-0.1, 0.1): W1 drawn first, then W2, as the reference does."""
    w1 = 0.2 * rng.random((n_in, hidden)) - 0.1
    w2 = 0.2 * rng.random((hidden, n_out)) - 0.1
    return Weights(w1, w2)


def relu(x: np.ndarray) -> np.ndarray:
    return (x >= 0) * x


def predict(weights: Weights, x: np.ndarray) -> np.ndarray:
    """Network outputs without dropout: (n, 784) @ (784, H) -> (n, H) @ (H, 10) -> (n, 10)."""
    return relu(x @ weights.w1) @ weights.w2


def evaluate(weights: Weights, data: Split) -> Tuple[float, float]:
    """(mean squared-error loss per sample, accuracy) over a whole split."""
    out = predict(weights, data.x)
    loss = np.sum((data.y - out) ** 2) / len(data.x)
    accuracy = np.mean(out.argmax(axis=1) == data.y.argmax(axis=1))
    return float(loss), float(accuracy)


def train_epoch(weights: Weights, data: Split, lr: float, rng: np.random.Generator,
                block: int = 32) -> Tuple[float, float]:
    """One pass of per-sample SGD in order; returns (mean training loss, training accuracy).

    The documented procedure (see literal_epoch), computed faster but to the same numbers
    (within a few units in the last place: the sums run in another order):
    - all dropout masks of the epoch are drawn at once: one (n, H) draw consumes the
      generator exactly as n draws of (H,) do;
    - W1 (784 x H) is updated once per block of samples, as one matrix product over the
      pixels that are nonzero in the block (~half of them). Meanwhile each sample's hidden
      input is corrected for the block's pending updates: x_k @ (W1 + lr sum_j x_j d1_j^T)
      = x_k @ W1 + lr sum_j (x_k . x_j) d1_j, with the Gram matrix of the block's inputs;
    - W2 (H x 10) is small, so it is updated after every sample, exactly as documented.
    Python's cost per call dominates at this size, so each sample takes nine calls: see _Epoch.
    """
    with _blas_controller().limit(limits=1, user_api="blas"):  # small products: threads cost more than they give
        return _Epoch(weights, data, lr, rng, block).run()


@lru_cache(maxsize=1)
def _blas_controller():
    """Found once per process: scanning the loaded libraries costs ~1.5 ms, every epoch otherwise."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class _Epoch:
    """One epoch's buffers, laid out so that every step of a sample is one BLAS call or ufunc.

    Scalings by powers of two are exact, so they move freely: h is kept without dropout's x2
    and W2 is held doubled; lr and the mask are folded into one factor of d1. A row [h | -y]
    times [[2 W2], [I]] gives out - y in one product.
    """

    def __init__(self, weights: Weights, data: Split, lr: float, rng: np.random.Generator, block: int):
        n, hidden = len(data.x), weights.w1.shape[1]
        self.weights, self.data, self.lr, self.block = weights, data, lr, block
        masks = rng.integers(low=0, high=2, size=(n, hidden)).astype(np.float64)  # (n, H) of 0/1
        self.masks = masks
        self.factors = masks * (-0.5 * lr)  # d1 = (2 W2 @ (out - y)) * factor = lr (W2 @ d2) * mask
        self.rows = np.empty((n, hidden + 10))  # [h | -y] of every sample
        self.rows[:, hidden:] = -data.y
        self.errors = np.empty((n, 10))  # out - y of every sample: its loss and accuracy at the end
        self.w2_eye = np.empty((hidden + 10, 10))  # [[2 W2], [I]]
        self.w2_eye[hidden:] = np.eye(10)
        self.mixed = np.zeros((2 * block, hidden))  # the block's [x W1 at its start; lr d1 so far]
        self.step = np.empty((hidden, 10))

    def run(self) -> Tuple[float, float]:
        hidden = self.weights.w2.shape[0]
        w2x2 = self.w2_eye[:hidden]
        np.multiply(self.weights.w2, 2.0, out=w2x2)
        for block in _blocks(self.data, self.block):
            self._train_block(block, w2x2)
        np.multiply(w2x2, 0.5, out=self.weights.w2)
        errors, y = self.errors, self.data.y
        correct = int(np.sum((y + errors).argmax(axis=1) == y.argmax(axis=1)))
        return float(np.sum(errors * errors)) / len(y), correct / len(y)

    def _train_block(self, block: "_Block", w2x2: np.ndarray) -> None:
        w1, b, mixed, hidden = self.weights.w1, self.block, self.mixed, w2x2.shape[0]
        stop = block.start + len(block.xs)
        w1s = w1[block.active]
        np.dot(block.xs, w1s, out=mixed[:len(block.xs)])  # hidden inputs with the block-start W1
        mixed[b:] = 0.0  # rows of d1 not yet computed weigh zero, and must not hold an earlier inf
        d1s = mixed[b:b + len(block.xs)]
        w2_eye, step, alpha = self.w2_eye, self.step, -4.0 * self.lr
        dot, maximum, multiply, add = np.dot, np.maximum, np.multiply, np.add
        rows, errors = self.rows[block.start:stop], self.errors[block.start:stop]
        for mix, row, h, h_column, mask, factor, error, error_row, d1 in zip(
                block.mix, rows, rows[:, :hidden], rows[:, :hidden, None], self.masks[block.start:stop],
                self.factors[block.start:stop], errors, errors[:, None], d1s):
            dot(mix, mixed, out=h)  # x_k W1 plus the pending updates' share
            maximum(h, 0.0, out=h)  # relu
            multiply(h, mask, out=h)  # dropout (its x2 lives in 2 W2)
            dot(row, w2_eye, out=error)  # out - y
            # d1 = (W2 @ d2) * relu'(h) * mask: the reference's derivative is 1, and it applies
            # the mask without the x2 scale; both kept on purpose, they make the published numbers.
            dot(w2x2, error, out=d1)
            multiply(d1, factor, out=d1)
            dot(h_column, error_row, out=step)  # outer(h, out - y) as an (H, 1) @ (1, 10) product
            step *= alpha
            add(w2x2, step, out=w2x2)  # 2 W2 += 2 lr outer(2 h, y - out)
        w1s += np.dot(block.xs.T, d1s)
        w1[block.active] = w1s


@dataclass
class _Block:
    start: int  # its first sample
    active: np.ndarray  # the pixels nonzero in it
    xs: np.ndarray  # (b, active): those pixels of its inputs
    mix: np.ndarray  # (b, 2 block): row k picks x_k W1 and weighs d1_j by x_k . x_j for j < k


# Block structure of recent training sets: it depends only on the inputs, which a run
# does not change between epochs. Small sets only (it holds a copy of their active pixels).
_BLOCKS: dict = {}
_BLOCKS_MAX_VALUES = 10_000_000


def _blocks(data: Split, block: int) -> list:
    key = (id(data.x), block)
    if key in _BLOCKS and _BLOCKS[key][0] is data.x:
        return _BLOCKS[key][1]
    first, lower = np.eye(block, 2 * block), np.tri(block, k=-1, dtype=bool)  # lower: j < k
    blocks = []
    for start in range(0, len(data.x), block):
        x = data.x[start:start + block]
        m, active = len(x), np.flatnonzero(x.any(axis=0))
        xs = x[:, active]
        mix = first[:m].copy()
        np.multiply(xs @ xs.T, lower[:m, :m], out=mix[:, block:block + m])
        blocks.append(_Block(start, active, xs, mix))
    if data.x.size <= _BLOCKS_MAX_VALUES:
        _BLOCKS.clear()  # keep one training set: a run trains on one
        _BLOCKS[key] = (data.x, blocks)
    return blocks


def literal_epoch(weights: Weights, data: Split, lr: float, rng: np.random.Generator) -> Tuple[float, float]:
    """The documented procedure as the walkthrough writes it, one sample at a time.

    The reference for tests and benchmarks; train_epoch gives the same numbers faster.
    """
    w1, w2 = weights.w1, weights.w2
    loss, correct = 0.0, 0
    for x, y in zip(data.x, data.y):
        h = relu(x @ w1)  # (784,) @ (784, H) -> (H,)
        mask = rng.integers(low=0, high=2, size=w1.shape[1])
        h *= mask * 2
        out = h @ w2  # (H,) @ (H, 10) -> (10,)
        loss += np.sum((y - out) ** 2)
        correct += int(np.argmax(out) == np.argmax(y))
        d2 = y - out
        d1 = (w2 @ d2) * (h >= 0)  # the reference's "derivative": always 1
        d1 *= mask  # mask only, not the x2 scale
        w1 += lr * np.outer(x, d1)  # both deltas are computed before either update
        w2 += lr * np.outer(h, d2)
    n = len(data.x)
    return float(loss) / n, correct / n
