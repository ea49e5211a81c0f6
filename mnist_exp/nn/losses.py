"""Losses: the reported value and the gradient the network's backward pass starts from."""

from typing import Tuple

import numpy as np

NAMES = {"sse": "squared error, summed over the 10 outputs", "cross_entropy": "cross-entropy"}  # as figures and cards say


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
