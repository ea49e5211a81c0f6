"""Optimisers (SGD, momentum, Adam) with L2 weight decay, and learning-rate schedules.

An optimiser's state is a dict of arrays, saved in checkpoints so a resumed run
continues exactly where it stopped.
"""

import math
from typing import Dict

import numpy as np

Params = Dict[str, np.ndarray]
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def lr_at(epoch: int, lr: float, schedule: str, epochs: int, step: int = 10, decay: float = 0.1) -> float:
    """The learning rate of `epoch` (from 0): constant, stepwise decay or a cosine to zero."""
    if schedule == "step":
        return lr * decay ** (epoch // step)
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    return lr


class Optimizer:
    def __init__(self, kind: str, momentum: float = 0.9, weight_decay: float = 0.0):
        self.kind, self.momentum, self.weight_decay = kind, momentum, weight_decay
        self.state: Params = {}  # "v/w1", "m/w1", ... and "t" (Adam's step count)

    def takes_lr_in_gradient(self) -> bool:
        """Plain SGD lets the caller multiply the small output gradient by lr instead of every
        weight gradient: its step is then one subtraction per weight (see step's lr_applied)."""
        return self.kind == "sgd" and not self.weight_decay

    def leaves_zero_gradients_alone(self) -> bool:
        """Whether a weight whose gradient is 0 at every step stays as it is: plain SGD's does;
        weight decay moves it, and momentum or Adam carry state that may move it."""
        return self.kind == "sgd" and not self.weight_decay

    def step(self, params: Params, grads: Params, lr: float, lr_applied: bool = False) -> None:
        """Descend the objective in place; weight decay applies to weight matrices only.

        lr_applied: the gradients already carry lr (only where takes_lr_in_gradient())."""
        if lr_applied and not self.takes_lr_in_gradient():
            raise ValueError(f"{self.kind} with weight decay {self.weight_decay} needs the gradients without lr")
        if self.kind == "adam":
            t = self.state["t"] = self.state.get("t", np.zeros(())) + 1
        for name, g in grads.items():  # the gradients are ours to overwrite
            p = params[name]
            if lr_applied:
                p -= g
                continue
            if self.weight_decay and name.startswith("w"):
                g += self.weight_decay * p
            if self.kind == "sgd":
                g *= lr
                p -= g
            elif self.kind == "momentum":
                v = self.state.setdefault(f"v/{name}", np.zeros_like(p))
                v *= self.momentum
                v += g
                p -= lr * v
            else:
                b1, b2 = ADAM_BETAS
                m = self.state.setdefault(f"m/{name}", np.zeros_like(p))
                v = self.state.setdefault(f"v/{name}", np.zeros_like(p))
                m += (1 - b1) * (g - m)
                v += (1 - b2) * (g * g - v)
                m_hat = m / (1 - b1 ** float(t))
                v_hat = v / (1 - b2 ** float(t))
                p -= lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
