"""A batch trained as a fixed number of parts on the cores there are: how a convolutional network
uses them.

Two BLAS threads on one product leave the rest of a convolutional step (im2col copies, pooling,
ReLU) on one core. Instead the batch is cut into PARTS parts, whatever the machine; each part
runs forward and backward in its own replica of the layers (sharing the parameters) on one BLAS
thread, taken by whichever thread is free first: the calling thread and one helper per further
core allowed (up to PARTS - 1). NumPy releases the GIL in all of it. The parts' gradients are
summed in part order, so the numbers depend neither on the cores nor on which thread ran which
part. On a busy machine, where another process holds a helper's core, the calling thread runs
the parts the helper has not started rather than wait for it.
"""

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import List, Tuple

import numpy as np

from mnist_exp.nn.layers import Dropout, Training, dropout_mask
from mnist_exp.nn.losses import loss_and_grad
from mnist_exp.nn.stack import Stack

PARTS = 4  # parts of every batch: up to four cores used, the same numbers on any machine


class Parts:
    def __init__(self, stack: Stack, loss: str, parts: int = PARTS):
        self.stack, self.loss = stack, loss
        self.replicas = [stack] + [stack.replica() for _ in range(parts - 1)]  # part i runs in replicas[i]
        self._pool, self._helpers = None, 0

    def train_batch(self, x: np.ndarray, y: np.ndarray, training: Training, threads: int = 2) -> Tuple[float, int]:
        """Forward and backward over x, y in parts, on up to `threads` threads (1: one after the
        other, the same numbers); the stack's layers are left holding the gradients of the whole
        batch's mean loss. Returns (summed loss, correct predictions)."""
        n = len(x)
        masks = {layer.name: dropout_mask(training.rng, (n, layer.width), layer.rate, training.bits)
                 for layer in self.stack.of_kind(Dropout) if layer.rate > 0}  # drawn in layer order, as one pass would
        edges = [n * i // len(self.replicas) for i in range(len(self.replicas) + 1)]
        rows = [slice(a, b) for a, b in zip(edges, edges[1:]) if b > a]  # a batch smaller than PARTS has fewer
        results: List = [None] * len(rows)
        claim = itertools.count()  # next() on it is atomic: each part is taken by one thread

        def work():
            for i in iter(lambda: next(claim), None):
                if i >= len(rows):
                    return
                results[i] = self._part(self.replicas[i], x[rows[i]], y[rows[i]], n, masks, rows[i])

        helpers = [self._helper_pool(threads - 1).submit(work) for _ in range(min(threads, len(rows)) - 1)]
        work()
        for helper in helpers:
            if not helper.cancel():  # one that never started has nothing left to take: no wait for it
                helper.result()
        for replica in self.replicas[1:len(rows)]:
            for mine, theirs in zip(self.stack.parameters(), replica.parameters()):
                np.add(mine.grad, theirs.grad, out=mine.grad)
        return sum(r[0] for r in results), sum(r[1] for r in results)

    def _helper_pool(self, helpers: int) -> ThreadPoolExecutor:
        if self._pool is None or self._helpers < helpers:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool, self._helpers = ThreadPoolExecutor(helpers, thread_name_prefix="mnist_exp-part"), helpers
        return self._pool

    def _part(self, stack: Stack, x, y, n: int, masks: dict, rows: slice) -> Tuple[float, int]:
        training = Training(None, masks={name: (mask[rows], scale) for name, (mask, scale) in masks.items()})
        out = stack.forward(x, training)
        loss, dout = loss_and_grad(out, y, self.loss)
        dout *= len(x) / n  # the gradient of the whole batch's mean
        stack.backward(dout)
        return loss, int(np.count_nonzero(out.argmax(axis=1) == y.argmax(axis=1)))
