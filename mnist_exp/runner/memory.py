"""How much memory a config needs, estimated before any data is read, and the machine's.

A config too large for the machine (hidden_size=10**6, huge batches, many layers) would load
the data and then die in a MemoryError, or take the machine down with it. The estimate counts
the arrays a run holds at its peak; it is a lower bound of the real peak (NumPy temporaries
and the interpreter come on top), so a refusal is never wrong by more than the margin.
"""

import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from mnist_exp.config import Config
from mnist_exp.errors import ConfigError
from mnist_exp.nn.models import CLASSES, EVALUATION_ROWS, INPUTS
from mnist_exp.runner.networks import network

TRAIN_IMAGES, TEST_IMAGES = 60000, 10000


def estimate(cfg: Config) -> int:
    """Bytes of the arrays a run of `cfg` holds at once at its peak."""
    item = np.dtype(cfg.dtype).itemsize
    copies = 4 + {"sgd": 0, "momentum": 1, "adam": 2}[cfg.optimizer] + (cfg.early_stopping > 0)
    # weights, gradients, the checkpoint's and weights.npz's copies, optimiser state, best weights
    data = (TRAIN_IMAGES + TEST_IMAGES) * INPUTS  # the images' bytes
    data += (cfg.train_samples + cfg.val_samples + cfg.test_samples) * (INPUTS + CLASSES) * (item + 1)
    batch = min(cfg.batch_size, cfg.train_samples)  # a batch is never larger than the data
    if cfg.arch == "cnn":
        params, per_train, per_evaluated = _cnn(cfg)
        rows = min(EVALUATION_ROWS, max(cfg.test_samples, cfg.val_samples))  # evaluation in chunks
        return params * item * copies + data + (batch * per_train + rows * per_evaluated) * item
    widths = network(cfg).widths
    params = sum(a * b + 4 * b for a, b in zip(widths, widths[1:]))  # weights, biases, batch-norm arrays
    hidden = sum(widths[1:])
    batch *= hidden * item * 4  # forward cache, dropout masks, gradients
    evaluation = max(cfg.test_samples, cfg.val_samples) * hidden * item * 2
    reference = cfg.train_samples * (cfg.hidden_size + CLASSES) * 8 * 3 if cfg.batch_size == 1 else 0
    return params * item * copies + data + batch + evaluation + reference


def _cnn(cfg: Config) -> Tuple[int, int, int]:
    """(parameters, numbers held per training image, per evaluated image) of the convolutional
    network: per convolution its padded input and im2col rows (and, above the first, those of
    its output's gradient), its output, and what pooling and ReLU keep and pass back."""
    description = network(cfg)
    side, cin, k, params, train, evaluate = description.sides()[0], 1, cfg.kernel_size, 0, 0, 0
    for i, cout in enumerate(cfg.channels):
        params += k * k * cin * cout + cout
        forward = (side + k - 1) ** 2 * cin + side * side * k * k * cin
        evaluate += forward + side * side * cout
        train += forward + 3 * side * side * cout + (i > 0) * ((side + k - 1) ** 2 + side * side * k * k) * cout
        side, cin = side // cfg.pool, cout
    flat = description.layers()[0][0]
    params += flat * cfg.dense_width + cfg.dense_width * (CLASSES + 1) + CLASSES
    return params, train + 4 * (cfg.dense_width + CLASSES), evaluate + cfg.dense_width + CLASSES


def machine_memory() -> int:
    """Physical memory, or the control group's limit when it is lower (a container, a SLURM job)."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit in _cgroup_limits():
        total = min(total, limit)
    return total


def _cgroup_limits() -> List[int]:
    found = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        value = _read(Path(path))
        if value and value.isdigit():
            found.append(int(value))
    return found


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def check(cfg: Config, available: Optional[int] = None) -> None:
    """Refuse a config whose arrays alone exceed the machine's memory, naming both figures."""
    need, have = estimate(cfg), available if available is not None else machine_memory()
    if need > have:
        network = (f"channels={list(cfg.channels)}, kernel_size={cfg.kernel_size}, dense_width={cfg.dense_width}"
                   if cfg.arch == "cnn" else f"hidden_size={cfg.hidden_size}, hidden_layers={cfg.hidden_layers}")
        raise ConfigError(f"this config needs at least {_gib(need)} of memory ({network}, batch_size={cfg.batch_size}, "
                          f"train_samples={cfg.train_samples}, test_samples={cfg.test_samples}, dtype={cfg.dtype}), "
                          f"more than this machine's {_gib(have)}: make the network, batches or samples smaller")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n < 2**60 else f"{n / 2**30:.3g} GiB"
