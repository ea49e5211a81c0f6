"""The Hydra callback that claims a run's or sweep's directory before Hydra writes into it.

Hydra writes `.hydra/` into the run (or sweep) directory before any job code runs, so the
check that a directory is new, and the claim that keeps a second process out of it, happen
in on_run_start / on_multirun_start, on the directory as Hydra resolved it (whatever the
spelling: hydra.run.dir=, ++hydra.run.dir=, an ${oc.env:...} interpolation, a preset).
Hydra turns an Exception raised by a callback into a warning and carries on; `Refused` is a
BaseException so that the refusal stops the program before anything is written.
"""

from pathlib import Path
from typing import Any, List

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnist_exp.config import (check_names, check_network_keys, check_no_preset_with_resume, check_preset_arch,
                               check_resume, check_typed_names, swept_keys, typed_keys)
from mnist_exp.cli import invocation
from mnist_exp.files import ownership
from mnist_exp.errors import UserError

JOB_KEYS = ("hydra.job.num", "hydra.job.id")  # a sweep subdir must tell its jobs apart
# what Hydra, the sweep summary (summary.csv: the jobs, all pending) and an Optuna search (its
# study, in the sweep dir by default) write first; a fresh claim found the directory empty, so
# they are this invocation's own
UNUSED = (".hydra", "mnist_exp.log", "multirun.yaml", "summary.csv", ".summary.lock", "optuna.db")


class Refused(BaseException):
    """A directory that may not be written into; the CLI prints the message and exits with
    `exit_code` (2, or 4 when the directory cannot be created)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class ClaimDirectories(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_typed(config, single_run=True)
        invocation.current().claimed.append(_claim(config, "hydra.run.dir", "run"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")
        if not any(key in str(subdir) for key in JOB_KEYS):
            raise Refused(f"hydra.sweep.subdir={subdir} would put several jobs in one directory: "
                          "it must contain ${hydra.job.num} (the default) or ${hydra.job.id}")
        check_typed(config, single_run=False)

        if invocation.current().resuming is None:  # a resumed sweep's directory is claimed already, and is never discarded
            invocation.current().claimed.append(_claim(config, "hydra.sweep.dir", "sweep"))


def discard_unused() -> None:
    """Remove the claimed directory of a run refused before it started, or of a sweep whose
    launch failed before any job: they hold only what Hydra wrote first."""
    for directory in invocation.current().claimed:
        ownership.discard(directory, UNUSED)


def typed_overrides(hydra_cfg: DictConfig) -> List[str]:
    """The overrides as typed: lr=${oc.env:X} stays that text (iterating the node would resolve it)."""
    return OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)


def check_typed(config: DictConfig, single_run: bool) -> None:
    """What the user typed, checked before the directory is worked out: `name` ends its name
    (conf/config.yaml, or a sweep's subdir that uses it), so a path in it or in a tag must reach
    nothing; an empty resume, a preset that would overrule a typed arch, or a typed key the
    network does not use is refused. What a sweep sweeps over (its grid, or an Optuna search's
    hydra.sweeper.params), each of its jobs checks (cli/task.py)."""
    overrides = typed_overrides(config.hydra)
    try:
        swept = set() if single_run else swept_keys(overrides) | set(config.hydra.sweeper.get("params") or {})
        check_typed_names(overrides)
        if not swept & {"name", "tags"}:
            check_names(config.name, list(config.tags))
        recorded = None
        if config.from_run is not None and "from_run" not in swept:  # the record, read before anything is written
            from mnist_exp.runner import from_run

            recorded = from_run.check(config.from_run, config.resume, overrides)
        if "resume" not in swept:
            check_resume(config.resume)
            if config.resume:
                check_no_preset_with_resume(overrides)
        if not swept & {"arch", "experiment", "resume"}:
            typed = typed_keys(overrides)
            check_preset_arch(config.arch, config.hydra.runtime.choices, typed)
            if not config.resume and recorded is None:  # a resumed run has its own network (from_run: checked)
                check_network_keys(config.arch, typed)
    except OmegaConfBaseException as e:
        raise Refused(f"{getattr(e, 'full_key', None) or 'name'}: {str(e).splitlines()[0]}") from None
    except UserError as e:  # ConfigError among them; a damaged record of from_run
        raise Refused(str(e)) from None


def _claim(config: DictConfig, key: str, what: str) -> Path:
    try:
        directory = Path(str(OmegaConf.select(config, key, throw_on_missing=True)))
        return ownership.claim(directory, fresh=True, what=what)
    except OmegaConfBaseException as e:
        raise Refused(f"{key}: {str(e).splitlines()[0]}") from None
    except UserError as e:
        raise Refused(str(e), getattr(e, "exit_code", 2)) from None
