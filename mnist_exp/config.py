"""The config schema (typed dataclasses registered with Hydra) and the value checks on top.

Types are checked by Hydra/OmegaConf when the config is composed; ranges are checked
by `validate`, before any data is read or any training starts.
"""

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from mnist_exp.errors import ConfigError


@dataclass
class FileSpec:
    name: str = ""  # file name on the mirrors, without .gz
    md5: str = ""  # MD5 of the decompressed bytes, stable whatever gzip made the .gz


@dataclass
class DataConfig:
    name: str = "mnist"
    dir: Optional[str] = None  # None: $MNIST_EXP_DATA_DIR, else a per-user cache
    mirrors: List[str] = field(default_factory=list)  # tried in order
    train_images: FileSpec = field(default_factory=FileSpec)
    train_labels: FileSpec = field(default_factory=FileSpec)
    test_images: FileSpec = field(default_factory=FileSpec)
    test_labels: FileSpec = field(default_factory=FileSpec)
    timeout: float = 30.0  # seconds to connect, and between bytes received
    retries: int = 3  # attempts per mirror and file, with exponential backoff


@dataclass
class Config:
    lr: float = 0.005  # the walkthrough's learning rate
    hidden_size: int = 100  # units in the hidden layer
    epochs: int = 20
    train_samples: int = 1000  # the FIRST n training images, as the walkthrough takes them
    test_samples: int = 1000  # the FIRST n test images
    seed: int = 884736743  # seeds the run's only numpy Generator
    resume: Optional[str] = None  # a run dir to continue (up to `epochs`) instead of starting anew
    data: DataConfig = field(default_factory=DataConfig)


# Keys that say how to run, not what the experiment is: left out of comparisons.
RUN_KEYS = ("resume",)


# key -> (check, allowed range as said to the user)
_RANGES = {
    "lr": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "hidden_size": (lambda v: v >= 1, "an integer >= 1"),
    "epochs": (lambda v: v >= 1, "an integer >= 1"),
    "train_samples": (lambda v: 1 <= v <= 60000, "an integer from 1 to 60000"),
    "test_samples": (lambda v: 1 <= v <= 10000, "an integer from 1 to 10000"),
    "seed": (lambda v: v >= 0, "an integer >= 0"),
    "data.timeout": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "data.retries": (lambda v: v >= 1, "an integer >= 1"),
}


def get_key(cfg: Config, key: str):
    """The value at a dotted key, e.g. get_key(cfg, "data.timeout")."""
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def validate(cfg: Config) -> Config:
    """Refuse out-of-range values with one message naming the key and its allowed range."""
    for key, (ok, allowed) in _RANGES.items():
        value = get_key(cfg, key)
        if not ok(value):
            raise ConfigError(f"{key}={value} is out of range: {key} must be {allowed}")
    if not cfg.data.mirrors:
        raise ConfigError("data.mirrors is empty: give at least one mirror URL")
    return cfg


def from_dict(schema: type, values: Dict[str, Any]):
    """A schema instance from plain values (e.g. a summary.json); unknown keys are ignored and
    missing ones take their defaults, so records of older versions still load."""
    kwargs = {}
    for f in fields(schema):
        if f.name in values:
            value = values[f.name]
            kwargs[f.name] = from_dict(f.type, value) if is_dataclass(f.type) else value
    return schema(**kwargs)


def register() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)
