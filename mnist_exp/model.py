"""The model a config asks for, behind one small interface the training loop uses.

The reference options (the defaults) select network.py, the walkthrough's exact
per-sample procedure; anything beyond them selects the general mlp.py with an optimiser.
Learning-rate schedules, validation and early stopping work with both (see train.py).
"""

from typing import Dict, Optional, Tuple

import numpy as np

from mnist_exp import mlp, network
from mnist_exp.config import Config
from mnist_exp.data import Split, scale
from mnist_exp.optim import Optimizer

Arrays = Dict[str, np.ndarray]
INPUTS, CLASSES = 784, 10
# Options whose defaults are the walkthrough's; any other value leaves the exact path.
REFERENCE = dict(batch_size=1, loss="sse", hidden_layers=1, relu_derivative="reference", biases=False,
                 init="reference", dropout=0.5, weight_decay=0.0, optimizer="sgd", batch_norm=False,
                 dtype="float64")


def is_reference(cfg: Config) -> bool:
    return all(getattr(cfg, key) == value for key, value in REFERENCE.items())


class ReferenceModel:
    """network.py's exact procedure: the published table's numbers."""

    def __init__(self, weights: network.Weights):
        self.weights = weights

    def fit_epoch(self, data: Split, lr: float, rng: np.random.Generator) -> Tuple[float, float]:
        return network.train_epoch(self.weights, data, lr, rng)

    def evaluate(self, data: Split) -> Tuple[float, float]:
        return network.evaluate(self.weights, data)

    def arrays(self) -> Arrays:
        return {"w1": self.weights.w1, "w2": self.weights.w2}

    def state(self) -> Arrays:
        return self.arrays()

    def load_state(self, state: Arrays) -> None:
        self.weights = network.Weights(state["w1"], state["w2"])


class MLPModel:
    """mlp.py trained on mini-batches (reshuffled each epoch when batch_size > 1)."""

    def __init__(self, params: mlp.Params, opts: mlp.Options, optimizer: Optimizer, batch_size: int):
        self.params, self.opts, self.optimizer, self.batch_size = params, opts, optimizer, batch_size
        self._gradients: mlp.Params = {}  # reused from batch to batch
        self._buffers: Dict[str, np.ndarray] = {}  # the batch being trained, gathered from the shuffled epoch

    def fit_epoch(self, data: Split, lr: float, rng: np.random.Generator) -> Tuple[float, float]:
        n = len(data.x)
        order = rng.permutation(n) if self.batch_size > 1 else None  # reshuffled every epoch
        scale = self.optimizer.grad_scale(lr)
        loss, correct = 0.0, 0
        for start in range(0, n, self.batch_size):
            x, y = self._batch(data, order, start)
            out, cache = mlp.forward(self.params, x, self.opts, rng)
            batch_loss, dout = mlp.loss_and_grad(out, y, self.opts.loss)
            loss += batch_loss
            correct += int(np.sum(out.argmax(axis=1) == y.argmax(axis=1)))
            if scale != 1.0:
                dout *= scale  # every gradient is linear in dout
            self.optimizer.step(self.params, mlp.backward(self.params, cache, dout, self.opts, self._gradients), lr)
        return loss / n, correct / n

    def _batch(self, data: Split, order: Optional[np.ndarray], start: int) -> Tuple[np.ndarray, np.ndarray]:
        """The batch at `start` of the shuffled epoch, gathered into buffers kept from batch to batch.

        A batch-sized buffer stays in the CPU cache for the products that read it next;
        gathering the whole epoch at once wrote and re-read ~190 MB for 60,000 float32 images.
        Gathering the bytes the images came from reads 4 to 8 times less memory than floats.
        """
        if order is None:
            return data.x[start:start + self.batch_size], data.y[start:start + self.batch_size]
        rows = order[start:start + self.batch_size]
        x, y, pixels = (self._buffer(name, len(rows), array) for name, array in
                        (("x", data.x), ("y", data.y), ("pixels", data.pixels)))
        if pixels is None:
            np.take(data.x, rows, axis=0, out=x)
        else:  # a quarter (float32) or an eighth (float64) of the bytes, scaled as split() did
            scale(np.take(data.pixels, rows, axis=0, out=pixels), out=x)
        np.take(data.y, rows, axis=0, out=y)
        return x, y

    def _buffer(self, name: str, rows: int, like: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """`rows` rows shaped and typed like `like`, in memory kept from batch to batch."""
        if like is None:
            return None
        shape = (self.batch_size, *like.shape[1:])
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != like.dtype:
            buffer = self._buffers[name] = np.empty(shape, like.dtype)
        return buffer[:rows]

    def evaluate(self, data: Split) -> Tuple[float, float]:
        out, _ = mlp.forward(self.params, data.x, self.opts)
        loss, _ = mlp.loss_and_grad(out, data.y, self.opts.loss)
        return loss / len(data.x), float(np.mean(out.argmax(axis=1) == data.y.argmax(axis=1)))

    def arrays(self) -> Arrays:
        return dict(self.params)

    def state(self) -> Arrays:
        return {**self.params, **{f"opt/{k}": v for k, v in self.optimizer.state.items()}}

    def load_state(self, state: Arrays) -> None:
        self.params = {k: np.array(v) for k, v in state.items() if not k.startswith("opt/")}
        self.optimizer.state = {k[4:]: np.array(v) for k, v in state.items() if k.startswith("opt/")}


def options(cfg: Config) -> mlp.Options:
    return mlp.Options(biases=cfg.biases, batch_norm=cfg.batch_norm, dropout=cfg.dropout,
                       relu_derivative=cfg.relu_derivative, loss=cfg.loss)


def build(cfg: Config, rng: np.random.Generator):
    """A freshly initialised model; its draws from `rng` come first, as in the reference."""
    if is_reference(cfg):
        return ReferenceModel(network.init_weights(rng, cfg.hidden_size))
    sizes = [INPUTS] + [cfg.hidden_size] * cfg.hidden_layers + [CLASSES]
    params = mlp.init_params(rng, sizes, cfg.init, options(cfg), np.dtype(cfg.dtype))
    return MLPModel(params, options(cfg), Optimizer(cfg.optimizer, cfg.momentum, cfg.weight_decay), cfg.batch_size)


def restore(cfg: Config, state: Arrays):
    """The model of `cfg` holding saved arrays (weights.npz or a checkpoint)."""
    model = build(cfg, np.random.default_rng(0))  # initial values are replaced at once
    model.load_state(state)
    return model
