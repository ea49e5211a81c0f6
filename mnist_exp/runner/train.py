"""The training loop: epochs of a model's training pass, each followed by its evaluations.

A generator of per-epoch metrics, so the caller decides what to record, print or
stop on, and every finished epoch is handed over the moment it ends. Validation and
early stopping (with the best weights restored) work with every model.
"""

import math
import time
from dataclasses import replace
from typing import Callable, Dict, Iterator, Optional

import numpy as np

from mnist_exp.data.datasets import Split
from mnist_exp.record.metrics import EpochMetrics


class EarlyStopping:
    """Stops after `patience` epochs without a lower validation loss; keeps the best weights."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_loss, self.best_epoch, self.bad_epochs = math.inf, -1, 0
        self.best: Dict[str, np.ndarray] = {}

    @property
    def stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def update(self, m: EpochMetrics, model) -> None:
        if m.val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = m.val_loss, m.epoch, 0
            self.best = {k: np.array(v) for k, v in model.arrays().items()}
        else:
            self.bad_epochs += 1

    def restore_best(self, model) -> None:
        if self.best:
            model.load(self.best)

    def state(self) -> Dict[str, np.ndarray]:
        """What a checkpoint keeps of it (record.Checkpoint.early_stopping)."""
        return {"best_loss": np.array(self.best_loss), "best_epoch": np.array(self.best_epoch),
                "bad_epochs": np.array(self.bad_epochs), **{f"best/{k}": v for k, v in self.best.items()}}

    def load_state(self, state: Dict[str, np.ndarray]) -> None:
        self.best_loss = float(state["best_loss"])
        self.best_epoch, self.bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"])
        self.best = {k[len("best/"):]: v for k, v in state.items() if k.startswith("best/")}


def train(model, train_set: Split, test_set: Split, lr_of_epoch: Callable[[int], float], epochs: int,
          rng: np.random.Generator, start: int = 0, val_set: Optional[Split] = None,
          stopper: Optional[EarlyStopping] = None) -> Iterator[EpochMetrics]:
    """Train `model` in place, yielding each epoch's metrics as it ends.

    `start` > 0 continues a run: model and generator must be those after epoch start-1.
    """
    for epoch in range(start, epochs):
        if stopper is not None and stopper.stop:  # a resumed run that had stopped early
            return
        begin = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported, not warned
            train_loss, train_accuracy = model.fit_epoch(train_set, lr_of_epoch(epoch), rng)
            val_loss, val_accuracy = model.evaluate(val_set) if val_set is not None else (None, None)
            test_loss, test_accuracy = model.evaluate(test_set)
        m = EpochMetrics(epoch, train_loss, train_accuracy, test_loss, test_accuracy,
                         time.perf_counter() - begin, val_loss, val_accuracy)
        if not m.finite:  # accuracies of NaN outputs (argmax says class 0) are not numbers to report
            m = replace(m, train_accuracy=math.nan, test_accuracy=math.nan,
                        val_accuracy=None if val_set is None else math.nan)
        elif stopper is not None:
            stopper.update(m, model)
        yield m
