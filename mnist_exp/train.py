"""The training loop: epochs of the reference procedure, each followed by a test evaluation.

A generator of per-epoch metrics, so the caller decides what to record, print or
stop on, and every finished epoch is handed over the moment it ends.
"""

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from mnist_exp.data import Split
from mnist_exp.network import Weights, evaluate, train_epoch


@dataclass
class EpochMetrics:
    epoch: int  # from 0, as the walkthrough counts
    train_loss: float  # mean squared error per sample, with dropout, during the pass
    train_accuracy: float
    test_loss: float  # mean squared error per sample, without dropout, after the pass
    test_accuracy: float
    seconds: float  # wall time of the epoch, evaluation included

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.train_loss) and np.isfinite(self.test_loss))


def train(weights: Weights, train_set: Split, test_set: Split, lr: float, epochs: int,
          rng: np.random.Generator, start: int = 0) -> Iterator[EpochMetrics]:
    """Train `weights` in place, yielding each epoch's metrics as it ends.

    `start` > 0 continues a run: weights and generator must be those after epoch start-1.
    """
    for epoch in range(start, epochs):
        start = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported, not warned
            train_loss, train_accuracy = train_epoch(weights, train_set, lr, rng)
            test_loss, test_accuracy = evaluate(weights, test_set)
        yield EpochMetrics(epoch, train_loss, train_accuracy, test_loss, test_accuracy,
                           time.perf_counter() - start)
