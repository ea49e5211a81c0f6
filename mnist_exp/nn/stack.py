"""A network as a stack of layers, and the names its arrays are saved under.

The MLP (mlp.py) and the convolutional network (cnn.py) are both a Stack. Saved arrays are
named by layer: "dense1/w", "dense1/b", "batchnorm1/gamma", ..., "batchnorm1/mean", "conv1/w".
Files from before the layers named them "w1", "b1", "gamma1", "mean1": `current_names`
renames those on loading.
"""

import copy
import re
from typing import Dict, Iterator, List, NamedTuple, Optional

import numpy as np

from mnist_exp.nn.layers import Layer, Training

Arrays = Dict[str, np.ndarray]


class Param(NamedTuple):
    """A trained array as an optimiser sees it: its saved name, value, gradient and whether
    weight decay applies."""
    key: str
    value: np.ndarray
    grad: np.ndarray
    decayed: bool


class Stack:
    """Layers applied in order; names them kind + number (dense1, relu1, dense2, ...)."""

    def __init__(self, layers: List[Layer]):
        self.layers, counts = layers, {}
        for layer in layers:
            counts[layer.kind] = counts.get(layer.kind, 0) + 1
            layer.name = f"{layer.kind}{counts[layer.kind]}"

    def forward(self, x: np.ndarray, training: Optional[Training] = None) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dout: np.ndarray) -> None:
        """Every layer's gradients from dout, the gradient w.r.t. the outputs (overwritten).
        No input gradient is made where no layer below has parameters."""
        dy, lowest = dout, next((i for i, layer in enumerate(self.layers) if layer.params), len(self.layers))
        for i in range(len(self.layers) - 1, lowest - 1, -1):
            dy = self.layers[i].backward(dy, need_dx=i > lowest)

    def parameters(self) -> Iterator[Param]:
        """The arrays the last backward gave a gradient (with descend, dense weights took their
        step already and have none)."""
        for layer in self.layers:
            for name, grad in layer.grads.items():
                yield Param(f"{layer.name}/{name}", layer.params[name], grad, name in layer.decayed)

    def arrays(self) -> Arrays:
        """What a saved model holds: every layer's params and stats, by saved name."""
        return {f"{layer.name}/{name}": array for layer in self.layers
                for name, array in {**layer.params, **layer.stats}.items()}

    def load(self, arrays: Arrays) -> None:
        for layer in self.layers:
            for group in (layer.params, layer.stats):
                for name in group:
                    group[name] = np.array(arrays[f"{layer.name}/{name}"])

    def replica(self) -> "Stack":
        """The same layers, sharing this stack's params and stats (the very dicts), each with
        its own batch state, buffers and gradients: a second half of a batch runs in it."""
        twins = []
        for layer in self.layers:
            twin = copy.copy(layer)
            twin.grads = {}
            for name, value in vars(layer).items():
                if name.startswith("_"):
                    setattr(twin, name, {} if isinstance(value, dict) else None)
            twins.append(twin)
        return Stack(twins)

    def pack(self) -> None:
        """Every trained array as a view of one flat buffer, in layer order, and a second buffer
        laid out alike that backward writes the gradients into where a layer can (the dense
        layers' weights): Adam then steps all of them at once (optim.py), not array by array.
        Done again only after an array was replaced (a load); mixed dtypes are left as they are."""
        slots = [(layer, name) for layer in self.layers for name in layer.params]
        arrays = [layer.params[name] for layer, name in slots]
        if not arrays or flat_base(arrays) is not None or len({a.dtype for a in arrays}) != 1:
            return
        values = np.empty(sum(a.size for a in arrays), arrays[0].dtype)
        grads, at = np.zeros_like(values), 0
        for (layer, name), array in zip(slots, arrays):
            view = values[at:at + array.size].reshape(array.shape)
            view[...] = array
            layer.params[name] = view
            layer._grad_out[name] = grads[at:at + array.size].reshape(array.shape)
            at += array.size

    def of_kind(self, kind: type) -> List[Layer]:
        return [layer for layer in self.layers if isinstance(layer, kind)]


def flat_base(arrays: List[np.ndarray]) -> Optional[np.ndarray]:
    """The 1-D buffer of which `arrays` are consecutive C-ordered views, covering all of it, in
    order (as pack() makes them); None if they are not."""
    base = arrays[0].base if arrays else None
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    at, start = 0, base.__array_interface__["data"][0]
    for a in arrays:
        if (a.base is not base or a.dtype != base.dtype or not a.flags.c_contiguous
                or a.__array_interface__["data"][0] != start + at * base.itemsize):
            return None
        at += a.size
    return base if at == base.size else None


OLD_NAME = re.compile(r"(?P<prefix>(?:opt/[mv]/|es/best/)?)(?P<array>w|b|gamma|beta|mean|var)(?P<layer>\d+)")


def current_names(arrays: Arrays) -> Arrays:
    """Arrays saved before the layers ("w1", "opt/m/gamma2", "es/best/b1") under today's
    names ("dense1/w", "opt/m/batchnorm2/gamma", "es/best/dense1/b"); other names unchanged.
    The n-th weight matrix is the n-th dense layer, the n-th batch norm follows it."""
    renamed = {}
    for key, array in arrays.items():
        m = OLD_NAME.fullmatch(key)
        if m:
            kind = "dense" if m["array"] in ("w", "b") else "batchnorm"
            key = f"{m['prefix']}{kind}{m['layer']}/{m['array']}"
        renamed[key] = array
    return renamed
