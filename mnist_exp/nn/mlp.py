"""The multilayer perceptron, built as a stack of layers (stack.py).

Any number of hidden layers, optional biases and batch normalisation, dropout at any
rate, vectorised mini-batches. With the reference's options it makes the same choices as
reference.py (its RNG draws included), but reference.py stays the exact per-sample path
that reproduces the published table.

Its saved arrays are named by layer (see stack.py).
"""

from dataclasses import dataclass
from typing import List

import numpy as np

from mnist_exp.nn.layers import BatchNorm, Dense, Dropout, Layer, ReLU
from mnist_exp.nn.stack import Stack


@dataclass
class Options:
    biases: bool = False
    batch_norm: bool = False
    dropout: float = 0.5
    relu_derivative: str = "reference"  # or "correct"
    loss: str = "sse"  # or "cross_entropy"


def build(rng: np.random.Generator, sizes: List[int], init: str, opts: Options, dtype=np.float64) -> Stack:
    """Dense (+ BatchNorm) + ReLU + Dropout per hidden layer, then a Dense output layer.
    Weights are drawn layer by layer in order, so the reference init draws W1 then W2 as it does."""
    layers: List[Layer] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        hidden = i < len(sizes) - 1
        w = init_weights(rng, (fan_in, fan_out), fan_in, fan_out, init).astype(dtype)
        layers.append(Dense(w, bias=opts.biases and not (hidden and opts.batch_norm)))
        if hidden:
            if opts.batch_norm:  # its beta is the bias
                layers.append(BatchNorm(fan_out, dtype))
            layers.append(ReLU(opts.relu_derivative))
            layers.append(Dropout(opts.dropout, fan_out, opts.relu_derivative))
    return Stack(layers)


def init_weights(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, init: str) -> np.ndarray:
    """Weights of `shape` whose units see fan_in inputs and feed fan_out outputs."""
    if init == "reference":
        return 0.2 * rng.random(shape) - 0.1
    if init == "he":  # for ReLU layers (He et al., 2015)
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))  # xavier / Glorot uniform (Glorot & Bengio, 2010)
    return rng.uniform(-limit, limit, shape)
