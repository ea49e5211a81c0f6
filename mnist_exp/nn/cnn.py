"""The convolutional network, built as a stack of layers (see stack.py).

For each entry of `channels`: a 'same' convolution, max pooling, then ReLU (pooling first:
max and ReLU commute, and ReLU then runs on a quarter of the data; the first convolution and
its pooling are one layer, pooled_conv.py, with the same saved arrays); then one dense hidden
layer with ReLU and dropout, and a dense output layer. Saved arrays: "conv1/w", "conv1/b", ...,
"dense1/w", "dense2/b".
"""

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from mnist_exp.data.idx import NUM_CLASSES as CLASSES
from mnist_exp.nn.conv import Conv2D, Flatten, Image, MaxPool2D
from mnist_exp.nn.layers import Dense, Dropout, Layer, ReLU
from mnist_exp.nn.mlp import init_weights
from mnist_exp.nn.pooled_conv import PooledConv
from mnist_exp.nn.stack import Stack



@dataclass
class Options:
    channels: Tuple[int, ...] = (16, 32)  # output channels of each convolution
    kernel_size: int = 5
    pool: int = 2  # max-pooling window (and stride); 1: no pooling
    dense_width: int = 128  # units of the dense hidden layer
    dropout: float = 0.0  # on the dense hidden layer
    biases: bool = True


def feature_shape(image: Tuple[int, int], opts: Options) -> Tuple[int, int, int]:
    """(height, width, channels) that reach the dense layer."""
    h, w = image
    for _ in opts.channels:
        h, w = h // opts.pool, w // opts.pool
    return h, w, opts.channels[-1] if opts.channels else 1


def build(rng: np.random.Generator, image: Tuple[int, int], opts: Options, init: str, dtype=np.float64) -> Stack:
    """Weights drawn layer by layer, from the first convolution to the output layer."""
    layers: List[Layer] = [Image(*image, 1)]
    cin, k = 1, opts.kernel_size
    for cout in opts.channels:
        w = init_weights(rng, (k, k, cin, cout), k * k * cin, k * k * cout, init).astype(dtype)
        if len(layers) == 1 and opts.pool > 1:  # the first: computed in pooling order (see pooled_conv.py)
            layers += [PooledConv(w, bias=opts.biases, pool=opts.pool), ReLU()]
        else:
            layers += [Conv2D(w, bias=opts.biases)] + ([MaxPool2D(opts.pool)] if opts.pool > 1 else []) + [ReLU()]
        cin = cout
    flat = int(np.prod(feature_shape(image, opts)))
    layers.append(Flatten())
    for fan_in, fan_out in ((flat, opts.dense_width), (opts.dense_width, CLASSES)):
        layers.append(Dense(init_weights(rng, (fan_in, fan_out), fan_in, fan_out, init).astype(dtype),
                            bias=opts.biases))
        if fan_out != CLASSES:
            layers += [ReLU(), Dropout(opts.dropout, fan_out)]
    return Stack(layers)
