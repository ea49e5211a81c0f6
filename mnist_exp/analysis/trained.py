"""A run's trained model, loaded from its directory for predictions:

    from mnist_exp import load_model
    model = load_model("outputs/2026-11-23/10-31-07.123456")
    labels = model.predict(images)          # images: (n, 28, 28) or (n, 784) pixels 0-255, or floats in [0, 1]
    scores = model.predict_proba(images)    # (n, 10), each row sums to 1

It reads `weights.npz`, or, for a run interrupted before it wrote them, the weights of its
last checkpoint (`source` and `epoch` say which). Every kind of model the runner trains
loads this way; the arrays are checked against the run's config before use.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mnist_exp import record
from mnist_exp.runner import memory
from mnist_exp.config import Config
from mnist_exp.errors import UserError
from mnist_exp.record.summary import load_config


@dataclass
class TrainedModel:
    config: Config
    model: object  # models.ReferenceModel or models.NetworkModel
    source: Path  # weights.npz, or checkpoint.npz of an interrupted run
    epoch: Optional[int]  # the checkpoint's last epoch; None for weights.npz (see summary.json "final")

    def inputs(self, images) -> np.ndarray:
        """(n, 784) in [0, 1] in the run's dtype; 28x28 images are flattened. Scaled as training
        scaled its bytes: integers of any type in 0..255, and floats in [0, 255] with a maximum
        above 1; floats in [0, 1] are used as they are. Anything else is refused (ValueError),
        as a prediction from it would be silently wrong."""
        return _scaled(_shaped(images), np.dtype(self.config.dtype))

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(n, 10) class scores summing to 1: the softmax of a cross-entropy model (its
        probabilities); for a squared-error model, its outputs clipped at 0 and normalised,
        which rank the classes as the model does but are not calibrated probabilities."""
        out = self.model.outputs(self.inputs(images))
        if self.config.loss == "cross_entropy":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        clipped = np.maximum(out, 0)
        total = clipped.sum(axis=1, keepdims=True)
        return np.divide(clipped, total, out=np.full_like(clipped, 0.1), where=total > 0)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(n,) predicted labels: the class with the highest output."""
        return self.model.outputs(self.inputs(images)).argmax(axis=1)


SHAPES = "images must be (n, 28, 28), (n, 784) or one (28, 28) image"


def _shaped(images) -> np.ndarray:
    """images as (n, 784) numbers, or a ValueError naming what they are instead."""
    try:
        images = np.asarray(images)
    except ValueError:  # a ragged list
        raise ValueError(f"{SHAPES}: rows of different lengths") from None
    if images.dtype.kind not in "fiu":
        raise ValueError(f"images must be numbers, not {images.dtype}")
    if images.shape == (28, 28):
        images = images[None]
    if images.ndim == 3 and images.shape[1:] == (28, 28):
        images = images.reshape(len(images), 784)
    if images.ndim != 2 or images.shape[1] != 784:
        raise ValueError(f"{SHAPES}, not {images.shape}")
    return images


def _scaled(images: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Pixels 0..255 (any integer type, or floats with a maximum above 1) divided by 255 as
    training divided its bytes; floats in [0, 1] as they are; anything else refused."""
    if images.size == 0:
        return images.astype(dtype)
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise ValueError("images hold NaN or infinite values")
    low, high = images.min(), images.max()
    if images.dtype.kind in "iu":
        if low < 0 or high > 255:
            raise ValueError(f"images hold integers from {low} to {high}: integer images must be pixels from 0 to 255")
        return np.divide(images.astype(np.uint8, copy=False), dtype.type(255), dtype=dtype)
    if low < 0 or high > 255:
        raise ValueError(f"images hold floats from {low:g} to {high:g}: they must be in [0, 1], or pixels in [0, 255]")
    if high <= 1:
        return images.astype(dtype)
    if np.array_equal(images, np.round(images)):  # whole pixel values: exactly the bytes' numbers
        return np.divide(images.astype(np.uint8), dtype.type(255), dtype=dtype)
    return np.divide(images.astype(dtype), dtype.type(255), dtype=dtype)


def load_model(run_dir: Union[str, Path]) -> TrainedModel:
    """The model a run kept (its weights.npz, else its last checkpoint's weights). The config
    passes a run's memory check before the model is built, and the file's arrays are checked
    against the model from their headers before any is loaded."""
    from mnist_exp.nn.models import check_checkpoint, check_state
    from mnist_exp.runner.networks import build, restore

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    try:  # as a run would: a record asking for a huge model is refused before it is built
        memory.check(cfg)
    except UserError as e:
        raise UserError(f"{run_dir / 'summary.json'}: {e}") from None
    weights, checkpoint = run_dir / record.WEIGHTS, run_dir / record.CHECKPOINT
    model = build(cfg, np.random.default_rng(0))  # initial values are replaced at once
    if os.path.lexists(weights):  # whatever is there: a damaged file is refused, never passed over
        arrays = record.load_weights(weights, lambda specs, names: check_state(model.arrays(), specs, weights, names))
        return TrainedModel(cfg, restore(cfg, arrays, weights, model), weights, None)
    if os.path.lexists(checkpoint):
        saved = record.load_checkpoint(checkpoint, lambda specs, names: check_checkpoint(
            model, bool(cfg.early_stopping), specs, checkpoint, names))
        return TrainedModel(cfg, restore(cfg, saved.model, checkpoint, model), checkpoint, saved.epochs_done - 1)
    raise UserError(f"{run_dir}: no weights.npz and no checkpoint.npz: the run finished no epoch")
