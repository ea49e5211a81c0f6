"""The walkthrough's per-sample SGD epoch, computed in blocks of samples to the same numbers.

network.literal_epoch is the procedure as documented; this is it rearranged (see epoch()).
At 784-100-10 each sample costs a few microseconds of arithmetic, so what decides the
speed is how many NumPy calls a sample takes: nine here, on views prepared in advance.
"""

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Tuple

import numpy as np

from mnist_exp.nn import blas

OUTPUTS = 10
PLAN_MAX_VALUES = 10_000_000  # keep the plan of training sets up to this many pixel values


def epoch(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray, lr: float, rng: np.random.Generator,
          block: int = 32, done: Optional[Callable[[int], None]] = None) -> Tuple[float, float]:
    """One pass in order over (x, y), updating w1 and w2 in place; returns (mean loss, accuracy).
    `done(n)` is told of each block's n samples as it ends (a progress bar).

    - all dropout masks of the epoch are drawn at once: one (n, H) draw consumes the
      generator exactly as n draws of (H,) do;
    - W1 (784 x H) is updated once per block of samples, as one matrix product over the
      pixels that are nonzero in the block (~half of them). Meanwhile each sample's hidden
      input is corrected for the block's pending updates: x_k @ (W1 + lr sum_j x_j d1_j^T)
      = x_k @ W1 + lr sum_j (x_k . x_j) d1_j, with the Gram matrix of the block's inputs;
    - W2 (H x 10) is small, so it is updated after every sample, as documented.
    Sums run in another order than the documented loop's, so results agree with it to a few
    units in the last place, not bit for bit.
    """
    with blas.one_thread():  # small products: threads cost more than they give
        plan = _plan(x, y, w1.shape[1], block)
        masks = rng.integers(low=0, high=2, size=(len(x), w1.shape[1]))  # (n, H) of 0/1
        np.copyto(plan.masks, masks)
        np.multiply(plan.masks, 0.125, out=plan.factors)
        alpha = np.full(OUTPUTS, -4.0 * lr)  # arrays: NumPy converts a Python float at every call
        w2x2 = plan.w2_eye[:-OUTPUTS]
        np.multiply(w2, 2.0, out=w2x2)
        for blk, samples in plan.blocks():
            _train_block(w1, w2x2, plan, blk, samples, alpha)
            if done is not None:
                done(len(blk.xs))
        np.multiply(w2x2, 0.5, out=w2)
        errors = plan.errors
        correct = int(np.sum((y + errors).argmax(axis=1) == y.argmax(axis=1)))
        return float(np.sum(errors * errors)) / len(y), correct / len(y)


def _train_block(w1, w2x2, plan: "_Plan", blk: "_Block", samples: Iterable[tuple], alpha: np.ndarray) -> None:
    """Scalings by powers of two are exact, so they move freely: h is kept without dropout's
    x2 and W2 is held doubled. A row [h | -y] times [[2 W2], [I]] gives out - y in one
    product; e = -4 lr (out - y) carries lr, and d1 = (2 W2 e) * mask / 8 = lr (W2 d2) * mask."""
    w2_eye, mixed, step, zeros = plan.w2_eye, plan.mixed, plan.step, plan.zeros
    w1s = w1[blk.active]
    m = len(blk.xs)
    np.dot(blk.xs, w1s, out=mixed[:m])  # (b, active) @ (active, H): hidden inputs with the block-start W1
    mixed[plan.block:] = 0.0  # rows of d1 not yet computed weigh zero, and must not hold an earlier inf
    dot, maximum, multiply, add = np.dot, np.maximum, np.multiply, np.add
    for mix, row, h, h_column, mask, factor, error, e, e_row, d1 in samples:
        dot(mix, mixed, out=h)  # x_k W1 plus the pending updates' share
        maximum(h, zeros, out=h)  # relu
        multiply(h, mask, out=h)  # dropout (its x2 lives in 2 W2)
        dot(row, w2_eye, out=error)  # out - y
        multiply(error, alpha, out=e)
        # d1 = (W2 @ d2) * relu'(h) * mask: the reference's derivative is 1, and it applies
        # the mask without the x2 scale; both kept on purpose, they make the published numbers.
        dot(w2x2, e, out=d1)
        multiply(d1, factor, out=d1)
        dot(h_column, e_row, out=step)  # (H, 1) @ (1, 10): 2 lr outer(2 h, y - out)
        add(w2x2, step, out=w2x2)
    w1s += np.dot(blk.xs.T, mixed[plan.block:plan.block + m])  # (active, b) @ (b, H): the block's lr d1
    w1[blk.active] = w1s


@dataclass
class _Block:
    start: int  # its first sample
    active: np.ndarray  # the pixels nonzero in it
    xs: np.ndarray  # (b, active): those pixels of its inputs
    mix: np.ndarray  # (b, 2 block): row k picks x_k W1 and weighs d1_j by x_k . x_j for j < k


class _Plan:
    """What every epoch on one training set reuses: its blocks, buffers and per-sample views."""

    def __init__(self, x: np.ndarray, y: np.ndarray, hidden: int, block: int, keep: bool):
        n = len(x)
        self.x, self.y, self.block = x, y, block
        self.masks, self.factors = np.empty((n, hidden)), np.empty((n, hidden))  # factor = mask / 8
        self.rows = np.empty((n, hidden + OUTPUTS))  # [h | -y] of every sample
        self.rows[:, hidden:] = -y
        self.errors, self.scaled = np.empty((n, OUTPUTS)), np.empty((n, OUTPUTS))  # out - y, alpha (out - y)
        self.w2_eye = np.empty((hidden + OUTPUTS, OUTPUTS))  # [[2 W2], [I]]
        self.w2_eye[hidden:] = np.eye(OUTPUTS)
        self.mixed = np.zeros((2 * block, hidden))  # the block's [x W1 at its start; lr d1 so far]
        self.step, self.zeros = np.empty((hidden, OUTPUTS)), np.zeros(hidden)
        self._kept = [(b, list(self._block_views(b))) for b in _blocks(x, block)] if keep else None

    def blocks(self) -> Iterable[Tuple["_Block", Iterable[tuple]]]:
        """Each block with the views its samples work on: made once when kept, else as they
        come (a large set's blocks would hold another copy of most of its pixels)."""
        if self._kept is not None:
            return self._kept
        return ((b, self._block_views(b)) for b in _blocks(self.x, self.block))

    def _block_views(self, blk: _Block) -> Iterable[tuple]:
        span = slice(blk.start, blk.start + len(blk.xs))
        rows, hidden = self.rows[span], self.rows.shape[1] - OUTPUTS
        return zip(blk.mix, rows, rows[:, :hidden], rows[:, :hidden, None], self.masks[span], self.factors[span],
                   self.errors[span], self.scaled[span], self.scaled[span, None], self.mixed[self.block:])


_PLANS: dict = {}  # the last small training set's plan: a run trains on one set, epoch after epoch


def _plan(x: np.ndarray, y: np.ndarray, hidden: int, block: int) -> _Plan:
    key = (id(x), id(y), hidden, block)
    plan = _PLANS.get(key)
    if plan is not None and plan.x is x and plan.y is y:
        return plan
    keep = x.size <= PLAN_MAX_VALUES
    plan = _Plan(x, y, hidden, block, keep)
    if keep:
        _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _blocks(x: np.ndarray, block: int) -> Iterator[_Block]:
    first, lower = np.eye(block, 2 * block), np.tri(block, k=-1, dtype=bool)  # lower: j < k
    for start in range(0, len(x), block):
        xb = x[start:start + block]
        m, active = len(xb), np.flatnonzero(xb.any(axis=0))
        xs = xb[:, active]
        mix = first[:m].copy()
        np.multiply(xs @ xs.T, lower[:m, :m], out=mix[:, block:block + m])
        yield _Block(start, active, xs, mix)
