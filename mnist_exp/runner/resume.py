"""resume=RUN of a single run: the run's own config, with only what may change taken from the
command line (epochs, where the data is read from); a resumed run is the same run."""

import os
from dataclasses import fields
from pathlib import Path
from typing import List, Optional, Set, Tuple

from mnist_exp.config import (DATA_LOCATION, Config, DataConfig, check_no_preset_with_resume, get_key,
                              typed_keys)
from mnist_exp.errors import ConfigError, UserError
from mnist_exp.record import CHECKPOINT, SUMMARY
from mnist_exp.record.summary import load_config
from mnist_exp.runner import from_run

MULTIRUN = "multirun.yaml"  # a sweep's record (cli/sweep_resume.py): not a run to resume


def resumed_config(cfg: Config, overrides: List[str]) -> Tuple[Config, Path]:
    """The config of the run named by `resume`, with the command line's epochs and data settings.

    Anything else typed on the command line must match the run: a resumed run is the same run.
    """
    target = Path(cfg.resume).expanduser().resolve()
    for needed in (SUMMARY, CHECKPOINT):
        if not os.path.lexists(target / needed):  # one there but not a regular file: its reader says so
            raise ConfigError(_nothing_to_resume(cfg.resume, target, needed))
    original = load_config(target)
    typed = typed_keys(overrides)
    check_no_preset_with_resume(overrides)
    experiment_keys = {f.name for f in fields(Config)} - {"resume", "epochs", "data"}
    changed = sorted(k for k in typed & experiment_keys if get_key(cfg, k) != get_key(original, k))
    if changed:
        raise ConfigError(f"resume={cfg.resume}: only epochs may change when resuming, not {', '.join(changed)}")
    if "epochs" in typed:
        original.epochs = cfg.epochs
    original.data = resumed_data(cfg.data, original.data, typed, cfg.resume)
    return original, target


def _nothing_to_resume(resume: str, target: Path, missing: str) -> str:
    if (target / MULTIRUN).is_file():
        return f"resume={resume}: that is a sweep directory; finish the sweep with -m resume={resume}"
    if missing == CHECKPOINT and run_status(target / SUMMARY) == "diverged":  # diverged before any finite epoch
        return f"resume={resume}: the run diverged; continuing it would repeat that: start a new run (e.g. with a lower lr)"
    return (f"resume={resume}: no {missing} there, so no run to continue (a run stopped "
            "before its first epoch ended has nothing to resume: start it again)")


def run_status(summary_path: Path) -> Optional[str]:
    """A run's recorded status, or None if its summary cannot be read (read as every record is)."""
    from mnist_exp.record import summary

    try:
        return summary.load(summary_path.parent).get("status")
    except (UserError, AttributeError):
        return None


def resumed_data(now: DataConfig, then: DataConfig, typed: Set[str], resume: str) -> DataConfig:
    """The run's own data set (name, files, checksums); only where it is read from may change.

    Without data keys on the command line, `now` is the default data set: if the run used
    another one, it keeps its own settings whole. Typed location keys always apply.
    """
    if from_run.data_identity(now) == from_run.data_identity(then):
        return now
    location_keys = {f"data.{key}" for key in DATA_LOCATION}
    if any(k == "data" or k.startswith("data.") and k not in location_keys for k in typed):
        raise ConfigError(f"resume={resume}: the run trained on {then.name} with its own files and checksums; "
                          "the data cannot change when resuming, only where it is read from "
                          f"({', '.join(sorted(location_keys))})")
    for key in DATA_LOCATION:
        if f"data.{key}" in typed:
            setattr(then, key, getattr(now, key))
    return then
