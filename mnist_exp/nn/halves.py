"""A batch trained as two halves at once, on two threads: how a convolutional network uses both cores.

Two BLAS threads on one product leave the rest of a convolutional step (im2col copies,
pooling, ReLU: about a third of it) on one core. Two halves of the batch, each on its own
thread with one BLAS thread, keep both cores busy throughout; NumPy releases the GIL in all
of it. The halves' gradients are summed in a fixed order and every product runs on one BLAS
thread, so the numbers do not depend on the machine's cores or on which half ends first.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Tuple

import numpy as np

from mnist_exp.nn.layers import Dropout, Training, dropout_mask
from mnist_exp.nn.losses import loss_and_grad
from mnist_exp.nn.stack import Stack


class Halves:
    def __init__(self, stack: Stack, loss: str):
        self.stack, self.loss = stack, loss
        self.twin = stack.replica()  # the second half's layers, sharing the parameters
        self._pool = None

    def train_batch(self, x: np.ndarray, y: np.ndarray, training: Training, parallel: bool = True) -> Tuple[float, int]:
        """Forward and backward over x, y as two halves (at once if `parallel`, else one after the
        other: the same numbers); the stack's layers are left holding the gradients of the whole
        batch's mean loss. A one-image batch runs in one pass. Returns (summed loss, correct predictions)."""
        n = len(x)
        half = (n + 1) // 2
        masks = {layer.name: dropout_mask(training.rng, (n, layer.width), layer.rate, training.bits)
                 for layer in self.stack.of_kind(Dropout) if layer.rate > 0}  # drawn in layer order, as one pass would
        if n < 2:  # one image (a last batch): no second half to run, nor twin gradients to add
            return self._half(self.stack, x, y, n, masks, slice(0, n))
        args = (self.twin, x[half:], y[half:], n, masks, slice(half, n))
        if parallel and self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="mnist_exp-half")
        second = self._pool.submit(self._half, *args) if parallel else None
        first = self._half(self.stack, x[:half], y[:half], n, masks, slice(0, half))
        other = second.result() if parallel else self._half(*args)
        for mine, theirs in zip(self.stack.parameters(), self.twin.parameters()):
            np.add(mine.grad, theirs.grad, out=mine.grad)
        return first[0] + other[0], first[1] + other[1]

    def _half(self, stack: Stack, x, y, n: int, masks: dict, rows: slice) -> Tuple[float, int]:
        training = Training(None, masks={name: (mask[rows], scale) for name, (mask, scale) in masks.items()})
        out = stack.forward(x, training)
        loss, dout = loss_and_grad(out, y, self.loss)
        dout *= len(x) / n  # the gradient of the whole batch's mean
        stack.backward(dout)
        return loss, int(np.count_nonzero(out.argmax(axis=1) == y.argmax(axis=1)))
