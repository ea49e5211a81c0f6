"""Optimisers (SGD, momentum, Adam) with L2 weight decay, and learning-rate schedules.

An optimiser walks the parameters a network hands it (stack.Param: saved name, value,
gradient). Its state is a dict of arrays named after them ("m/dense1/w", and "t"), made once
and saved in checkpoints, so a resumed run continues exactly where it stopped.
"""

import math
from typing import Dict, Iterable

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
        self.state: Params = {}  # "v/dense1/w", "m/dense1/w", ... and "t" (Adam's step count)
        self._scratch: Params = {}  # per weight, two buffers Adam's step reuses (never saved)

    def _state(self, key: str, like: np.ndarray) -> np.ndarray:
        """A state array, made (zeros) on first use only: setdefault(key, zeros_like(p)) made
        a throwaway array at every step."""
        array = self.state.get(key)
        if array is None:
            array = self.state[key] = np.zeros_like(like)
        return array

    def _adam(self, p: np.ndarray, g: np.ndarray, name: str, lr: float, t: float) -> None:
        """Adam's step in place, in the textbook's order of operations (the same numbers as
        m += (1-b1)(g-m); v += (1-b2)(g²-v); p -= lr m̂ / (sqrt(v̂) + eps)), without temporaries."""
        b1, b2 = ADAM_BETAS
        m, v = self._state(f"m/{name}", p), self._state(f"v/{name}", p)
        a, b = self._scratch.get(name, (None, None))
        if a is None or a.shape != p.shape or a.dtype != p.dtype:
            a, b = self._scratch[name] = (np.empty_like(p), np.empty_like(p))
        np.subtract(g, m, out=a)
        a *= 1 - b1
        m += a
        np.multiply(g, g, out=a)
        a -= v
        a *= 1 - b2
        v += a
        np.divide(v, 1 - b2 ** t, out=a)  # v̂
        np.sqrt(a, out=a)
        a += ADAM_EPS
        np.divide(m, 1 - b1 ** t, out=b)  # m̂
        np.multiply(b, lr, out=b)
        b /= a
        p -= b

    def takes_lr_in_gradient(self) -> bool:
        """Plain SGD lets the caller multiply the small output gradient by lr instead of every
        weight gradient: its step is then one subtraction per weight (see step's lr_applied)."""
        return self.kind == "sgd" and not self.weight_decay

    def leaves_zero_gradients_alone(self) -> bool:
        """Whether a weight whose gradient is 0 at every step stays as it is: plain SGD's does;
        weight decay moves it, and momentum or Adam carry state that may move it."""
        return self.kind == "sgd" and not self.weight_decay

    def step(self, parameters: Iterable, lr: float, lr_applied: bool = False) -> None:
        """Descend the objective in place, each stack.Param by its gradient (ours to overwrite);
        weight decay applies where the Param says (weight matrices).

        lr_applied: the gradients already carry lr (only where takes_lr_in_gradient())."""
        if lr_applied and not self.takes_lr_in_gradient():
            raise ValueError(f"{self.kind} with weight decay {self.weight_decay} needs the gradients without lr")
        if self.kind == "adam":
            t = self.state["t"] = self.state.get("t", np.zeros(())) + 1
        for name, p, g, decayed in parameters:
            if lr_applied:
                p -= g
                continue
            if self.weight_decay and decayed:
                g += self.weight_decay * p
            if self.kind == "sgd":
                g *= lr
                p -= g
            elif self.kind == "momentum":
                v = self._state(f"v/{name}", p)
                v *= self.momentum
                v += g
                p -= lr * v
            else:
                self._adam(p, g, name, lr, float(t))
