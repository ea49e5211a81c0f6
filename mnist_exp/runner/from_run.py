"""A new run from a recorded one: `from_run=RUN_DIR lr=0.01` takes the config that RUN_DIR's
summary.json records and changes only the keys typed with it.

What a run from a record keeps, and why:
- every experiment key, the data set (its files and checksums) and the network: that is the record;
- where the data is read from is this user's (MNIST_EXP_DATA_DIR, the cache), as for a resume,
  when the data set is the default one: the record's folders may be another user's or gone; the
  checksums decide whether the files are the run's data;
- `name` and `tags` are the new run's own (typed, or none): they name and label this run.
Presets and config groups (experiment=, arch=, data=, +search=) set keys the user did not type,
which would mix silently with the record's: refused; typed one by one, keys are taken.
"""

import copy
import os
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

from mnist_exp.config import DATA_LOCATION, RUN_KEYS, Config, check_from_run, check_network_keys, get_key, typed_keys
from mnist_exp.errors import ConfigError
from mnist_exp.record import SUMMARY
from mnist_exp.record.summary import load_config

GROUPS = ("arch", "data")  # config groups that are also keys: choosing one sets other keys too


def recorded(from_run: str) -> Config:
    """The checked config RUN_DIR's summary.json records; one line if there is none."""
    target = Path(from_run).expanduser()
    if not os.path.lexists(target / SUMMARY):
        raise ConfigError(f"from_run={from_run}: no summary.json there, so no recorded run to start from")
    return load_config(target)


def check(from_run: str, resume: Any, overrides: List[str]) -> Config:
    """What is typed with from_run, checked before anything is written; the recorded config."""
    check_from_run(from_run)
    if resume is not None:
        raise ConfigError("from_run and resume cannot be given together: resume= continues a run in its own "
                          "directory, from_run= starts a new one from its config")
    keys = {f.name for f in fields(Config)}
    for override in overrides:
        (key,) = typed_keys([override])
        if key in GROUPS or key not in keys and not key.startswith(("data.", "hydra.")):
            raise ConfigError(f"{override.lstrip('+~')} cannot be given with from_run=: it is a preset (a config "
                              "group) that sets other keys too; give the keys to change one by one, e.g. lr=0.01")
    base = recorded(from_run)
    check_network_keys(base.arch, typed_keys(overrides))
    return base


def config_from_run(cfg: Config, overrides: List[str]) -> Tuple[Config, Dict[str, Any]]:
    """The recorded config with the typed keys' values from `cfg` (the composed one), and the
    origin summary.json records: the run and each key changed, [recorded, new]."""
    base = check(cfg.from_run, cfg.resume, overrides)
    typed = {k for k in typed_keys(overrides) if not k.startswith("hydra.") and k not in RUN_KEYS}
    recorded_values = copy.deepcopy(base)
    if data_identity(base.data) == data_identity(cfg.data):  # the default data set: read where this user keeps it
        for key in DATA_LOCATION:
            setattr(base.data, key, getattr(cfg.data, key))
    changed = {}
    for key in sorted(typed):
        old, new = get_key(recorded_values, key), get_key(cfg, key)
        if old != new:
            changed[key] = [_plain(old), _plain(new)]
        _set_key(base, key, new)
    base.name, base.tags, base.resume = cfg.name, list(cfg.tags), None
    base.from_run = str(Path(cfg.from_run).expanduser().resolve())
    return base, {"run_dir": base.from_run, "changed": changed}


def data_identity(data) -> tuple:
    """What makes a data set the same one: its name, files and checksums (not where it is read from)."""
    return (data.name, data.train_images, data.train_labels, data.test_images, data.test_labels)


def _set_key(cfg: Config, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    target = cfg
    for part in parents:
        target = getattr(target, part)
    setattr(target, last, value)


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) else value
