"""The walkthrough's network: 784-H-10, ReLU hidden layer, dropout, no biases, squared error.

Plain NumPy, no config objects: call it from a notebook as easily as from the app.
Everything random comes from the one `numpy.random.Generator` the caller passes in,
drawn in the reference's order: W1, W2, then one dropout mask per training sample.
"""

from dataclasses import dataclass
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


def train_epoch(weights: Weights, data: Split, lr: float, rng: np.random.Generator) -> Tuple[float, float]:
    """One pass of per-sample SGD in order; returns (mean training loss, training accuracy).

    All masks of the epoch are drawn at once: one (n, H) draw consumes the generator
    exactly as n draws of (H,) do, so the numbers stay the reference's.
    """
    w1, w2 = weights.w1, weights.w2
    masks = rng.integers(low=0, high=2, size=(len(data.x), w1.shape[1]))  # (n, H) of 0/1
    loss, correct = 0.0, 0
    for x, y, mask in zip(data.x, data.y, masks):
        h = relu(x @ w1)  # (784,) @ (784, H) -> (H,)
        h *= mask * 2  # dropout, scaled so the expected activation is unchanged
        out = h @ w2  # (H,) @ (H, 10) -> (10,)
        loss += np.sum((y - out) ** 2)
        correct += int(np.argmax(out) == np.argmax(y))
        d2 = y - out  # (10,)
        # The reference's ReLU "derivative" is taken on the post-ReLU output, so it is
        # always 1; kept on purpose, it is part of the published numbers.
        d1 = (w2 @ d2) * (h >= 0)  # (H, 10) @ (10,) -> (H,)
        d1 *= mask  # mask only, not the x2 scale: the reference does so
        w1 += lr * np.outer(x, d1)  # both deltas are computed before either update
        w2 += lr * np.outer(h, d2)
    n = len(data.x)
    return float(loss) / n, correct / n
