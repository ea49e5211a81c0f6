"""A general multilayer perceptron for the walkthrough's "next steps", in plain NumPy.

Any number of hidden layers, optional biases and batch normalisation, dropout at any
rate, squared-error or cross-entropy loss, and vectorised mini-batches. With the
reference's options it makes the same choices as network.py (its RNG draws included),
but network.py stays the exact per-sample path that reproduces the published table.

Parameters live in a dict of arrays: w1, b1, gamma1, beta1 (and the running statistics
mean1, var1) for hidden layer 1, ..., wL, bL for the output layer.
"""

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from mnist_exp.nn import blas

Params = Dict[str, np.ndarray]
BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # running statistics: new = 0.9 old + 0.1 batch


@dataclass
class Options:
    biases: bool = False
    batch_norm: bool = False
    dropout: float = 0.5
    relu_derivative: str = "reference"  # or "correct"
    loss: str = "sse"  # or "cross_entropy"


def init_params(rng: np.random.Generator, sizes: List[int], init: str, opts: Options, dtype=np.float64) -> Params:
    """Weights drawn layer by layer in order, so the reference init draws W1 then W2 as it does."""
    params: Params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        if init == "reference":
            w = 0.2 * rng.random((fan_in, fan_out)) - 0.1
        elif init == "he":  # for ReLU layers (He et al., 2015)
            w = rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))
        else:  # xavier / Glorot uniform (Glorot & Bengio, 2010)
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-limit, limit, (fan_in, fan_out))
        params[f"w{i}"] = w.astype(dtype)
        hidden = i < len(sizes) - 1
        if hidden and opts.batch_norm:
            params[f"gamma{i}"] = np.ones(fan_out, dtype)
            params[f"beta{i}"] = np.zeros(fan_out, dtype)
            params[f"mean{i}"] = np.zeros(fan_out, dtype)
            params[f"var{i}"] = np.ones(fan_out, dtype)
        elif opts.biases:
            params[f"b{i}"] = np.zeros(fan_out, dtype)
    return params


def trainable(name: str) -> bool:
    return not name.startswith(("mean", "var"))


def n_layers(params: Params) -> int:
    return sum(1 for k in params if k.startswith("w"))


class EpochBits:
    """An epoch's dropout bits, drawn at once: a draw per batch costs more than its bits."""

    def __init__(self, rng: np.random.Generator, sizes: Iterable[int]):
        self._bytes = np.frombuffer(rng.bytes(sum((size + 7) // 8 for size in sizes)), np.uint8)
        self._at = 0

    def take(self, size: int) -> np.ndarray:
        """The next `size` bits, as 0/1 bytes (each take starts on a byte)."""
        start, self._at = self._at, self._at + (size + 7) // 8
        return np.unpackbits(self._bytes[start:self._at], count=size)


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


def forward(params: Params, x: np.ndarray, opts: Options, rng: np.random.Generator = None,
            bits: Optional[EpochBits] = None) -> Tuple[np.ndarray, list]:
    """Outputs (n, 10) and what backward needs. With `rng`, training mode: dropout, batch statistics."""
    training = rng is not None
    cache, a = [], x
    last = n_layers(params)
    for i in range(1, last):
        z = a @ params[f"w{i}"]  # (n, fan_in) @ (fan_in, fan_out) -> (n, fan_out)
        if f"b{i}" in params:
            z = z + params[f"b{i}"]
        bn = None
        if opts.batch_norm:
            z, bn = _batch_norm(params, i, z, training)
        h = np.maximum(z, 0)  # relu
        mask, scale = None, 1.0
        if training and opts.dropout > 0:
            mask, scale = dropout_mask(rng, h.shape, opts.dropout, bits)
            h *= mask
            h *= scale
        cache.append((a, z, h, mask, scale, bn))
        a = h
    out = a @ params[f"w{last}"]
    if f"b{last}" in params:
        out = out + params[f"b{last}"]
    cache.append((a,))
    return out, cache


def _batch_norm(params: Params, i: int, z: np.ndarray, training: bool):
    if training:
        mean, var = z.mean(axis=0), z.var(axis=0)
        params[f"mean{i}"][...] = BN_MOMENTUM * params[f"mean{i}"] + (1 - BN_MOMENTUM) * mean
        params[f"var{i}"][...] = BN_MOMENTUM * params[f"var{i}"] + (1 - BN_MOMENTUM) * var
    else:
        mean, var = params[f"mean{i}"], params[f"var{i}"]
    std = np.sqrt(var + BN_EPS)
    zhat = (z - mean) / std
    return params[f"gamma{i}"] * zhat + params[f"beta{i}"], (zhat, std)


def backward(params: Params, cache: list, dout: np.ndarray, opts: Options, buffers: Params = None,
             descend: bool = False) -> Params:
    """Gradients of the objective (dout = its gradient w.r.t. the outputs) for every trainable array.

    relu_derivative="reference" follows the walkthrough: the ReLU derivative is taken on the
    post-dropout output (so it is 1) and the dropout mask is applied without its scale.
    "correct" gives the true gradient (checked against finite differences in the tests).
    With `buffers`, weight gradients are written into arrays kept there from call to call
    (a fresh W1-sized array per batch costs page faults); they are valid until the next call.
    With `descend` (plain SGD, lr already in dout), each weight matrix takes its step here,
    W -= a^T dz, in one BLAS call where blas.subtract_product can; the rest is returned as gradients.
    """
    grads: Params = {}
    last = n_layers(params)
    (a,) = cache[-1]
    da = dout @ params[f"w{last}"].T  # before the weights change
    _weights(params, grads, f"w{last}", a, dout, buffers, descend)  # (fan_in, n) @ (n, 10)
    if f"b{last}" in params:
        grads[f"b{last}"] = dout.sum(axis=0)
    for i in range(last - 1, 0, -1):
        a, z, h, mask, scale, bn = cache[i - 1]
        dz = da  # a fresh array (a product) that this step may overwrite
        if mask is not None:
            dz *= mask
        if opts.relu_derivative == "correct":
            if mask is not None:
                dz *= scale
            dz *= z > 0
        # reference: the derivative is taken on h >= 0, which always holds (1), and the mask
        # is applied without its scale: the walkthrough's quirk, kept for its numbers.
        if bn is not None:
            zhat, std = bn
            grads[f"gamma{i}"] = (dz * zhat).sum(axis=0)
            grads[f"beta{i}"] = dz.sum(axis=0)
            dzhat = dz * params[f"gamma{i}"]
            dz = (dzhat - dzhat.mean(axis=0) - zhat * (dzhat * zhat).mean(axis=0)) / std
        if i > 1:
            da = dz @ params[f"w{i}"].T  # before the weights change
        _weights(params, grads, f"w{i}", a, dz, buffers, descend)
        if f"b{i}" in params:
            grads[f"b{i}"] = dz.sum(axis=0)
    return grads


def _weights(params: Params, grads: Params, name: str, a: np.ndarray, dz: np.ndarray, buffers: Params,
             descend: bool) -> None:
    """The gradient a^T dz of params[name] into grads; with `descend`, the step itself."""
    if not descend:
        grads[name] = _product(a.T, dz, buffers, name)
    elif not blas.subtract_product(params[name], a, dz):
        params[name] -= _product(a.T, dz, buffers, name)


def _product(a: np.ndarray, b: np.ndarray, buffers: Params, name: str) -> np.ndarray:
    if buffers is None:
        return a @ b
    shape, dtype = (a.shape[0], b.shape[1]), np.result_type(a, b)
    if name not in buffers or buffers[name].shape != shape or buffers[name].dtype != dtype:
        buffers[name] = np.empty(shape, dtype)
    return np.dot(a, b, out=buffers[name])


def loss_and_grad(out: np.ndarray, y: np.ndarray, kind: str) -> Tuple[float, np.ndarray]:
    """(summed loss as reported, gradient of the mean objective w.r.t. the outputs).

    sse reports sum((y - out)^2) as the reference does; its objective is half of it, whose
    gradient is the reference's update direction. cross_entropy uses softmax outputs.
    """
    n = len(out)
    if kind == "sse":
        diff = out - y
        loss = float(np.vdot(diff, diff))  # one BLAS dot: no squared copy
        return loss, np.divide(diff, n, out=diff)
    shifted = out - out.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.sum(y * log_p)), (np.exp(log_p) - y) / n
