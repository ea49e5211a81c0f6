"""The models the training loop drives, behind one small interface: the walkthrough's exact
per-sample procedure (reference.py) and the general network (a stack of layers, mlp.py or
cnn.py, with an optimiser). They take plain arguments; runner/networks.py turns a run's config
into one. Learning-rate schedules, validation and early stopping work with both (see train.py).
"""

import re
from contextlib import contextmanager, nullcontext
from typing import Dict, List, Optional, Tuple

import numpy as np

from mnist_exp.nn import blas, mlp, reference
from mnist_exp.nn.conv import Conv2D
from mnist_exp.nn.parts import Parts
from mnist_exp.nn.layers import BatchNorm, Dense, Dropout, EpochBits, Training
from mnist_exp.nn.losses import loss_and_grad
from mnist_exp.data.datasets import Split, scale
from mnist_exp.data.idx import IMAGE_SIDE, NUM_CLASSES
from mnist_exp.errors import UserError
from mnist_exp.nn.optim import Optimizer
from mnist_exp.nn.stack import Stack

Arrays = Dict[str, np.ndarray]
CLASSES = NUM_CLASSES
INPUTS = IMAGE_SIDE * IMAGE_SIDE
EVALUATION_ROWS = 500  # a convolutional network evaluates in chunks: im2col of 10,000 images is ~0.8 GB


class ReferenceModel:
    """reference.py's exact procedure: the published table's numbers."""

    def __init__(self, weights: reference.Weights):
        self.weights = weights
        self.progress = None  # a terminal stream: an epoch longer than PROGRESS_AFTER seconds shows a bar there

    def fit_epoch(self, data: Split, lr: float, rng: np.random.Generator) -> Tuple[float, float]:
        if self.progress is None:
            return reference.train_epoch(self.weights, data, lr, rng)
        with _progress_bar(self.progress, len(data.y)) as bar:
            return reference.train_epoch(self.weights, data, lr, rng, done=bar.update)

    def evaluate(self, data: Split) -> Tuple[float, float]:
        return reference.evaluate(self.weights, data)

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs without dropout: (n, 784) -> (n, 10), linear (squared error)."""
        return reference.predict(self.weights, x)

    def arrays(self) -> Arrays:
        """Named as the general network's layers are: its two dense layers' weights."""
        return {"dense1/w": self.weights.w1, "dense2/w": self.weights.w2}

    def optimizer_state(self) -> Arrays:
        return {}  # plain SGD: nothing to carry over

    def load(self, arrays: Arrays, optimizer_state: Optional[Arrays] = None) -> None:
        self.weights = reference.Weights(arrays["dense1/w"], arrays["dense2/w"])


class NetworkModel:
    """A stack of layers (mlp.py's MLP or cnn.py's convolutional network) trained on mini-batches
    (reshuffled each epoch when batch_size > 1)."""

    def __init__(self, stack: Stack, opts: mlp.Options, optimizer: Optimizer, batch_size: int):
        self.stack, self.opts, self.optimizer, self.batch_size = stack, opts, optimizer, batch_size
        self._kept: Dict[str, np.ndarray] = {}  # the batch being trained, gathered from the shuffled epoch
        self._live: Optional[tuple] = None  # (the training set's bytes, its live columns, their Split)
        self.progress = None  # a terminal stream: an epoch longer than PROGRESS_AFTER seconds shows a bar there
        convolutional = bool(stack.of_kind(Conv2D))
        self._chunk = EVALUATION_ROWS if convolutional else None
        # a convolutional network trains each batch in parts on the cores there are (parts.py); an
        # MLP's mini-batches run whole, on one BLAS thread (see _fit: in four parts, best_mlp's epoch
        # took 1.5x the CPU time of whole batches)
        self._parts = Parts(stack, opts.loss) if convolutional and batch_size > 1 and not stack.of_kind(
            BatchNorm) else None
        self._threads = 1

    def fit_epoch(self, data: Split, lr: float, rng: np.random.Generator) -> Tuple[float, float]:
        first = self.stack.layers[0]
        if (self.batch_size == 1 or data.pixels is None or not isinstance(first, Dense)
                or not self.optimizer.plain):
            return self._fit(data, lr, rng)
        live, data = self._live_inputs(data)
        full = first.params["w"]
        first.params["w"] = full[live]  # the rows that can receive a gradient
        try:
            return self._fit(data, lr, rng)
        finally:
            full[live] = first.params["w"]
            first.params["w"] = full

    def _fit(self, data: Split, lr: float, rng: np.random.Generator) -> Tuple[float, float]:
        n, size = len(data.y), self.batch_size
        order = rng.permutation(n) if size > 1 else None  # reshuffled every epoch
        bits = self._epoch_bits(rng, n) if size > 1 and self.opts.dropout == 0.5 else None
        buffers = self._buffers(data) if size > 1 else None
        lr_in_gradient = self.optimizer.plain and self._parts is None
        training = Training(rng, bits, descend=lr_in_gradient)
        self._threads = min(blas.threads(), blas.cores())  # a sweep's job limited to one thread runs its parts in turn
        if self.optimizer.kind == "adam":
            self.stack.pack()  # one flat buffer for Adam's step (again only after a load replaced the arrays)
        loss, correct = 0.0, 0
        # every product of a mini-batch on one BLAS thread: OpenBLAS's threads wait for each other at
        # every product, and on a busy machine one of them waits for a core (an epoch took 3-20x
        # longer); its results also differ in the last bit from one thread count to another
        with _progress_bar(self.progress, n) as bar, blas.one_thread() if size > 1 else nullcontext():
            for start in range(0, n, size):
                x, y = _batch(data, order, start, size, buffers)
                batch_loss, batch_correct = self._train_batch(x, y, training, lr, lr_in_gradient)
                loss += batch_loss
                correct += batch_correct
                self.optimizer.step(self.stack.parameters(), lr, lr_applied=lr_in_gradient)
                if bar is not None:
                    bar.update(len(y))
        return loss / n, int(correct) / n

    def _train_batch(self, x, y, training: Training, lr: float, lr_in_gradient: bool) -> Tuple[float, int]:
        """Forward and backward over one batch, leaving its gradients in the layers: (summed loss,
        correct predictions). With lr_in_gradient the dense layers took their SGD step already."""
        if self._parts is not None:
            return self._parts.train_batch(x, y, training, self._threads)
        out = self.stack.forward(x, training)
        loss, dout = loss_and_grad(out, y, self.opts.loss)
        if lr_in_gradient:
            dout *= lr  # every gradient is linear in dout
        self.stack.backward(dout)
        return loss, np.count_nonzero(out.argmax(axis=1) == y.argmax(axis=1))

    def _live_inputs(self, data: Split) -> Tuple[np.ndarray, Split]:
        """The pixels nonzero in some training image (717 of MNIST's 784), and the set's bytes
        of those alone, made once per training set.

        A pixel that is 0 in every image gives its row of W1 a gradient of exactly 0, which
        plain SGD turns into no change; leaving those rows out of both products with W1 saves
        ~9% of an epoch's arithmetic and changes no update, only the order of sums. (The
        Split's x stays whole and unused: shuffled batches are gathered from the bytes.)
        """
        if self._live is None or self._live[0] is not data.pixels:
            used = data.pixels.any(axis=0)
            pixels = np.compress(used, np.asarray(data.pixels), axis=1)  # 3-5x faster than take()
            self._live = (data.pixels, np.flatnonzero(used), Split(data.x, data.y, pixels))
        return self._live[1], self._live[2]

    def _epoch_bits(self, rng: np.random.Generator, n: int) -> EpochBits:
        """All the epoch's dropout bits in one draw, batch by batch and layer by layer."""
        widths = [layer.width for layer in self.stack.of_kind(Dropout)]
        rows = [min(self.batch_size, n - start) for start in range(0, n, self.batch_size)]
        return EpochBits(rng, (m * width for m in rows for width in widths))

    def _buffers(self, data: Split) -> Dict[str, np.ndarray]:
        """Batch-sized arrays for x, y (and the bytes x comes from), kept from epoch to epoch.

        A batch-sized buffer stays in the CPU cache for the products that read it next;
        gathering the whole epoch at once wrote and re-read ~190 MB for 60,000 float32 images.
        Gathering the bytes the images came from reads 4 to 8 times less memory than floats.
        """
        width = (data.x if data.pixels is None else data.pixels).shape[1]  # pixels given: see _live_inputs
        wanted = {"x": (width, data.x.dtype), "y": (data.y.shape[1], data.y.dtype)}
        if data.pixels is not None:
            wanted["pixels"] = (width, data.pixels.dtype)
        for name in ("x", "y", "pixels"):
            if name not in wanted:
                self._kept.pop(name, None)
                continue
            (columns, dtype), kept = wanted[name], self._kept.get(name)
            if kept is None or kept.shape != (self.batch_size, columns) or kept.dtype != dtype:
                self._kept[name] = np.empty((self.batch_size, columns), dtype)
        return self._kept

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """Outputs without dropout, batch norm on its running statistics: (n, 784) -> (n, 10),
        logits for cross_entropy, linear for sse."""
        if self._chunk is None or len(x) <= self._chunk:
            return self.stack.forward(x)
        return np.concatenate([self.stack.forward(x[i:i + self._chunk]) for i in range(0, len(x), self._chunk)])

    def evaluate(self, data: Split) -> Tuple[float, float]:
        out = self.outputs(data.x)
        loss, _ = loss_and_grad(out, data.y, self.opts.loss)
        return loss / len(data.x), float(np.mean(out.argmax(axis=1) == data.y.argmax(axis=1)))

    def arrays(self) -> Arrays:
        return self.stack.arrays()

    def optimizer_state(self) -> Arrays:
        """The optimiser's arrays ("t", "m/dense1/w"...): what a checkpoint needs beside the weights."""
        return self.optimizer.state

    def load(self, arrays: Arrays, optimizer_state: Optional[Arrays] = None) -> None:
        """Take these weights, and this optimiser state (None: the optimiser's stays as it is)."""
        self.stack.load(arrays)
        if optimizer_state is not None:
            self.optimizer.state = {k: np.array(v) for k, v in optimizer_state.items()}


PROGRESS_AFTER = 2.0  # seconds into an epoch before its progress bar appears


@contextmanager
def _progress_bar(stream, n: int):
    """A tqdm bar with ETA over an epoch's n images on `stream` (None: no bar). It appears only
    once the epoch has run PROGRESS_AFTER seconds, and goes when the epoch ends."""
    if stream is None:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=n, unit="img", unit_scale=True, delay=PROGRESS_AFTER, leave=False, file=stream,
              desc="epoch") as bar:
        yield bar


def _batch(data: Split, order: Optional[np.ndarray], start: int, size: int,
           buffers: Optional[Dict[str, np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
    """The batch at `start`: a slice in file order, else gathered from the shuffled `order`."""
    if order is None:
        return data.x[start:start + size], data.y[start:start + size]
    rows = order[start:start + size]
    x, y = buffers["x"][:len(rows)], buffers["y"][:len(rows)]
    if "pixels" in buffers:  # scaled exactly as split() did
        scale(data.pixels.take(rows, axis=0, out=buffers["pixels"][:len(rows)]), out=x)
    else:
        data.x.take(rows, axis=0, out=x)
    data.y.take(rows, axis=0, out=y)
    return x, y


FOLLOWER = re.compile(r"^(opt/[a-z]+/|es/best/)")
EARLY_STOPPING = ("es/bad_epochs", "es/best_epoch", "es/best_loss")


def check_state(expected: Arrays, state, source, names: Optional[Dict[str, str]] = None) -> None:
    """Every weight present with its shape and dtype; optimiser and early-stopping arrays
    ("opt/m/dense1/w", "es/best/dense1/w", "opt/t", "es/best_loss") shaped like the weight they
    follow. `state` holds arrays or record.Spec headers under today's names; `names` maps them
    to the file's, which messages use (record.py's loaders give older files' arrays today's names)."""
    names = names or {}
    missing = sorted(set(expected) - set(state))
    if missing:
        raise UserError(f"{source}: lacks the arrays {_as_named(missing, names)} of this run's model")
    for key, array in state.items():
        name, shown = FOLLOWER.sub("", key), names.get(key, key)  # opt/m/dense1/w follows dense1/w
        want = expected.get(name) if key in expected or name != key else None
        if want is None and key in ("opt/t", *EARLY_STOPPING):
            want = np.zeros(())
        if want is None:
            raise UserError(f"{source}: holds an array '{shown}' this run's model does not have")
        if tuple(array.shape) != want.shape or array.dtype.kind not in "fiu" or (
                key in expected and array.dtype != want.dtype):
            raise UserError(f"{source}: array '{shown}' is {array.dtype}{list(array.shape)}, "
                            f"this run's model needs {want.dtype}{list(want.shape)}")


def optimizer_names(model) -> List[str]:
    """The arrays an optimiser that has stepped holds, by saved name: none for SGD, "opt/v/..."
    for momentum, "opt/t" and "opt/m/...", "opt/v/..." for Adam, one per trained array."""
    if not isinstance(model, NetworkModel) or model.optimizer.kind == "sgd":
        return []
    trained = [f"{layer.name}/{name}" for layer in model.stack.layers for name in layer.params]
    kinds = {"momentum": ("v",), "adam": ("m", "v")}[model.optimizer.kind]
    return (["opt/t"] if model.optimizer.kind == "adam" else []) + [f"opt/{k}/{t}" for k in kinds for t in trained]


def check_checkpoint(model, early_stopping: bool, state, source, names: Optional[Dict[str, str]] = None) -> None:
    """A checkpoint's arrays complete: without its optimiser's or early stopping's arrays a
    resume would continue with other numbers, so the file is refused as damaged."""
    check_state(model.arrays(), state, source, names)
    lacking = sorted(set(optimizer_names(model)) - set(state))
    if lacking:
        raise UserError(f"{source}: lacks the optimiser's arrays {_as_named(lacking, names)}: the file is damaged")
    best = {f"es/best/{k}" for k in model.arrays()}
    held = {k for k in state if k.startswith("es/")}
    if early_stopping:
        lacking = sorted(set(EARLY_STOPPING) - held) + (sorted(best - held) if held & best else [])
        if lacking:
            raise UserError(f"{source}: lacks early stopping's arrays {_as_named(lacking, names)}: the file is damaged")


def _as_named(keys: List[str], names: Optional[Dict[str, str]]) -> str:
    """Arrays by the names the file uses (record.FileNames names those it lacks as it would)."""
    return ", ".join((names or {}).get(k, k) for k in keys)
