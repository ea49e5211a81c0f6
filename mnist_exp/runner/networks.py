"""A run's network: its one description (Network: what titles, the run line, the model card
and the memory estimate say of it) and the factory that turns a config into a model
(nn/models.py): the reference options (the defaults) select the walkthrough's exact
per-sample procedure, anything beyond them the general network with an optimiser. The
networks themselves never see a Config.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

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
        stack = mlp.build(rng, list(network(cfg).widths), cfg.init, options(cfg), np.dtype(cfg.dtype))
    return NetworkModel(stack, options(cfg), Optimizer(cfg.optimizer, cfg.momentum, cfg.weight_decay), cfg.batch_size)


def restore(cfg: Config, arrays: Arrays, source="saved arrays", model=None, optimizer_state: Optional[Arrays] = None):
    """The model of `cfg` (or `model`, built for it) holding saved weights (weights.npz or a
    checkpoint's, from `source`, with its optimiser's state), each checked against the arrays
    the model has: a damaged or foreign file is refused."""
    model = model or build(cfg, np.random.default_rng(0))  # initial values are replaced at once
    check_state(model.arrays(), arrays, source)
    model.load(arrays, optimizer_state)
    return model


@dataclass(frozen=True)
class Network:
    """A run's network in one description, from its config: what the figures' titles, the run
    line, the model card and the memory estimate say of it. `widths` are the MLP's layer sizes
    (784, hidden..., 10); a CNN has `channels`, `kernel`, `pool` and `dense_width`."""

    kind: str  # "mlp" or "cnn"
    widths: Tuple[int, ...] = ()
    channels: Tuple[int, ...] = ()
    kernel: int = 0
    pool: int = 1
    dense_width: int = 0
    biases: bool = False
    batch_norm: bool = False

    def sides(self) -> List[int]:
        """The image side each convolution sees, then the side the dense layers see."""
        sides = [IMAGE_SIDE]
        for _ in self.channels:
            sides.append(sides[-1] // self.pool)
        return sides

    def short(self) -> str:
        """'MLP 784-100-10', or 'CNN 5x5x16-pool2-5x5x32-pool2-128-10' (each convolution's kernel
        and channels, its pooling, then the dense widths)."""
        if self.kind != "cnn":
            return "MLP " + "-".join(map(str, self.widths))
        k, pool = self.kernel, f"-pool{self.pool}" if self.pool > 1 else ""
        return "CNN " + "".join(f"{k}x{k}x{c}{pool}-" for c in self.channels) + f"{self.dense_width}-{CLASSES}"

    def words(self) -> str:
        """The network in words, for the model card."""
        if self.kind != "cnn":
            return "-".join(map(str, self.widths)) + " multilayer perceptron with ReLU hidden layers"
        k, pool = self.kernel, self.pool
        convs = "; ".join(f"{k}x{k} convolution to {c} channels" + (f", {pool}x{pool} max pooling" if pool > 1 else "")
                          + ", ReLU" for c in self.channels)
        return (f"convolutional network on {IMAGE_SIDE}x{IMAGE_SIDE} images: {convs}; a dense layer of "
                f"{self.dense_width} units, ReLU; {CLASSES} outputs")

    def layers(self) -> List[Tuple[int, int]]:
        """(inputs, outputs) of each dense layer; a CNN's first takes its flattened features."""
        if self.kind != "cnn":
            return list(zip(self.widths[:-1], self.widths[1:]))
        flat = self.sides()[-1] ** 2 * (self.channels[-1] if self.channels else 1)
        return [(flat, self.dense_width), (self.dense_width, CLASSES)]

    def parameters(self) -> int:
        """The numbers weights.npz holds for this network (batch norm's running mean and
        variance included)."""
        total, cin = 0, 1
        for cout in self.channels:
            total += self.kernel ** 2 * cin * cout + self.biases * cout
            cin = cout
        for i, (fan_in, fan_out) in enumerate(self.layers()):
            hidden = i < len(self.layers()) - 1
            normed = hidden and self.batch_norm and self.kind != "cnn"
            total += fan_in * fan_out + (4 * fan_out if normed else self.biases * fan_out)
        return total


def network(cfg: Union[Config, Dict[str, Any]]) -> Network:
    """The description of a config's network: a Config, or a record's config as a dict (older
    records may lack keys: the defaults stand in)."""
    defaults = Config()

    def get(key: str):
        if isinstance(cfg, dict):
            return cfg.get(key, getattr(defaults, key))
        return getattr(cfg, key)

    if get("arch") == "cnn":
        return Network("cnn", channels=tuple(get("channels")), kernel=get("kernel_size"), pool=get("pool"),
                       dense_width=get("dense_width"), biases=bool(get("biases")))
    widths = (INPUTS, *[get("hidden_size")] * get("hidden_layers"), CLASSES)
    return Network("mlp", widths=widths, biases=bool(get("biases")), batch_norm=bool(get("batch_norm")))
