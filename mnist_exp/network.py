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
    """
    with _blas_controller().limit(limits=1, user_api="blas"):  # small products: threads cost more than they give
        return _block_epoch(weights, data, lr, rng, block)


@lru_cache(maxsize=1)
def _blas_controller():
    """Found once per process: scanning the loaded libraries costs ~1.5 ms, every epoch otherwise."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _block_epoch(weights: Weights, data: Split, lr: float, rng: np.random.Generator, block: int):
    w1, w2 = weights.w1, weights.w2
    n, hidden = len(data.x), w1.shape[1]
    masks = rng.integers(low=0, high=2, size=(n, hidden)).astype(w1.dtype)  # (n, H) of 0/1
    scaled = masks * 2  # dropout, scaled so the expected activation is unchanged
    errors = np.empty((n, 1, 10))  # y - out of every sample: its loss and accuracy at the end
    hs, d1s, step = np.empty((block, hidden, 1)), np.empty((block, hidden)), np.empty((hidden, 10))
    dot, maximum, multiply, subtract = np.dot, np.maximum, np.multiply, np.subtract
    for start, active, xs, gram in _blocks(data, block):
        w1s = w1[active]
        z0 = dot(xs, w1s)  # (b, active) @ (active, H): hidden inputs with the block-start W1
        lr_gram = gram * lr
        for k in range(len(xs)):
            i, h = start + k, hs[k, :, 0]
            z = z0[k] + dot(lr_gram[k, :k], d1s[:k]) if k else z0[k]  # the pending W1 updates
            maximum(z, 0.0, out=h)  # relu
            multiply(h, scaled[i], out=h)
            d2 = subtract(data.y[i], dot(h, w2), out=errors[i, 0])  # (H,) @ (H, 10)
            # d1 = (W2 @ d2) * relu'(h) * mask: the reference's derivative is 1, and it applies
            # the mask without the x2 scale; both kept on purpose, they make the published numbers.
            multiply(dot(w2, d2), masks[i], out=d1s[k])
            dot(hs[k], errors[i], out=step)  # outer(h, d2) as an (H, 1) @ (1, 10) product
            step *= lr
            w2 += step
        pending = d1s[:len(xs)]
        pending *= lr
        w1s += dot(xs.T, pending)  # (active, b) @ (b, H)
        w1[active] = w1s
    errors = errors[:, 0]
    loss = float(np.sum(errors * errors))
    correct = int(np.sum((data.y - errors).argmax(axis=1) == data.y.argmax(axis=1)))
    return loss / n, correct / n


# Block structure of recent training sets: it depends only on the inputs, which a run
# does not change between epochs. Small sets only (it holds a copy of their active pixels).
_BLOCKS: dict = {}
_BLOCKS_MAX_VALUES = 10_000_000


def _blocks(data: Split, block: int) -> list:
    """Per block: (first sample, pixels nonzero in it, those pixels of its inputs, Gram matrix)."""
    key = (id(data.x), block)
    if key in _BLOCKS and _BLOCKS[key][0] is data.x:
        return _BLOCKS[key][1]
    blocks = []
    for start in range(0, len(data.x), block):
        x = data.x[start:start + block]
        active = np.flatnonzero(x.any(axis=0))
        xs = x[:, active]
        blocks.append((start, active, xs, xs @ xs.T))
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
