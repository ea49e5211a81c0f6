"""The factory that turns a run's config into a model (nn/models.py): the reference options
(the defaults) select the walkthrough's exact per-sample procedure, anything beyond them the
general network with an optimiser. The networks themselves never see a Config.
"""

import numpy as np

from mnist_exp.config import Config
from mnist_exp.nn import cnn, mlp, reference
from mnist_exp.nn.models import CLASSES, IMAGE_SIDE, INPUTS, Arrays, NetworkModel, ReferenceModel, check_state
from mnist_exp.nn.optim import Optimizer

# Options whose defaults are the walkthrough's; any other value leaves the exact path.
REFERENCE = dict(batch_size=1, loss="sse", hidden_layers=1, relu_derivative="reference", biases=False,
                 init="reference", dropout=0.5, weight_decay=0.0, optimizer="sgd", batch_norm=False,
                 dtype="float64", arch="mlp")


def is_reference(cfg: Config) -> bool:
    return all(getattr(cfg, key) == value for key, value in REFERENCE.items())


def cnn_options(cfg: Config) -> cnn.Options:
    return cnn.Options(channels=tuple(cfg.channels), kernel_size=cfg.kernel_size, pool=cfg.pool,
                       dense_width=cfg.dense_width, dropout=cfg.dropout, biases=cfg.biases)


def options(cfg: Config) -> mlp.Options:
    return mlp.Options(biases=cfg.biases, batch_norm=cfg.batch_norm, dropout=cfg.dropout,
                       relu_derivative=cfg.relu_derivative, loss=cfg.loss)


def build(cfg: Config, rng: np.random.Generator):
    """A freshly initialised model; its draws from `rng` come first, as in the reference."""
    if is_reference(cfg):
        return ReferenceModel(reference.init_weights(rng, cfg.hidden_size))
    if cfg.arch == "cnn":
        stack = cnn.build(rng, (IMAGE_SIDE, IMAGE_SIDE), cnn_options(cfg), cfg.init, np.dtype(cfg.dtype))
    else:
        sizes = [INPUTS] + [cfg.hidden_size] * cfg.hidden_layers + [CLASSES]
        stack = mlp.build(rng, sizes, cfg.init, options(cfg), np.dtype(cfg.dtype))
    return NetworkModel(stack, options(cfg), Optimizer(cfg.optimizer, cfg.momentum, cfg.weight_decay), cfg.batch_size)


def restore(cfg: Config, state: Arrays, source="saved arrays", model=None):
    """The model of `cfg` (or `model`, built for it) holding saved arrays (weights.npz or a
    checkpoint from `source`), each checked against the arrays the model has: a damaged or
    foreign file is refused."""
    model = model or build(cfg, np.random.default_rng(0))  # initial values are replaced at once
    check_state(model.arrays(), state, source)
    model.load_state(state)
    return model
