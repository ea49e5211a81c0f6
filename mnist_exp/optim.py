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

    def grad_scale(self, lr: float) -> float:
        """What the gradients passed to step() come multiplied by. Plain SGD takes lr there:
        on the small output gradient, that is cheaper than on every weight."""
        return lr if self.kind == "sgd" and not self.weight_decay else 1.0

    def step(self, params: Params, grads: Params, lr: float) -> None:
        """Descend the objective in place; weight decay applies to weight matrices only.

        `grads` are the gradients times grad_scale(lr)."""
        if self.kind == "adam":
            t = self.state["t"] = self.state.get("t", np.zeros(())) + 1
        prescaled = self.grad_scale(lr) != 1.0
        for name, g in grads.items():  # the gradients are ours to overwrite
            p = params[name]
            if prescaled:
                p -= g  # lr * gradient already
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
