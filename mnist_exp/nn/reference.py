"""The walkthrough's network: 784-H-10, ReLU hidden layer, dropout, no biases, squared error.

Plain NumPy, no config objects: call it from a notebook as easily as from the app.
Everything random comes from the one `numpy.random.Generator` the caller passes in,
drawn in the reference's order: W1, W2, then one dropout mask per training sample.
"""

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from mnist_exp.nn import blas, reference_epoch
from mnist_exp.data.datasets import Split


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
    with blas.one_thread():
        out = predict(weights, data.x)
    loss = np.sum((data.y - out) ** 2) / len(data.x)
    accuracy = np.mean(out.argmax(axis=1) == data.y.argmax(axis=1))
    return float(loss), float(accuracy)


def train_epoch(weights: Weights, data: Split, lr: float, rng: np.random.Generator,
                block: int = 32, done: Optional[Callable[[int], None]] = None) -> Tuple[float, float]:
    """One pass of per-sample SGD in order; returns (mean training loss, training accuracy).

    The documented procedure (literal_epoch), computed in blocks of samples: see reference_epoch.py.
    """
    return reference_epoch.epoch(weights.w1, weights.w2, data.x, data.y, lr, rng, block, done)


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
