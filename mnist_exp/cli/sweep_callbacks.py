"""The Hydra callback that keeps a sweep's summary complete, whatever its jobs do.

summary.csv is rebuilt from on_job_end, which runs inside the worker process of every
launcher (basic, joblib, submitit), so it holds every finished job even if the sweep is
killed. comparison.png is drawn once, at on_multirun_end (about 0.3 s a figure; per job it
added that to every job): Hydra 1.3 skips that hook when a job raises, but our jobs record
their failures instead of raising (see cli/task.py). `python -m mnist_exp.summarize DIR` redraws it.
"""

import logging
import math
from pathlib import Path
from typing import Any, Dict

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mnist_exp.cli import invocation

log = logging.getLogger(__name__)

MAX_JOBS = 10_000  # a grid sweep of more jobs is refused: Hydra lists every job's overrides up front


class PrepareSweep(Callback):
    """Before a sweep starts: registers mnist_exp's launcher plugins, and refuses sweeper
    settings that would fail only after the sweep began.

    Hydra finds plugins by scanning the hydra_plugins namespace, which misses a package an
    editable install maps there; registering here (only for sweeps) also keeps joblib's
    import off a single run's start-up.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.plugins import Plugins
        from hydra_plugins.mnist_exp_launchers.joblib_launcher import JoblibLauncher

        from mnist_exp.cli.dir_guard import Refused

        Plugins.instance().register(JoblibLauncher)
        if "mnist_exp_launchers.submitit_launcher" in str(config.hydra.launcher.get("_target_", "")):
            from hydra_plugins.mnist_exp_launchers.submitit_launcher import SlurmLauncher

            Plugins.instance().register(SlurmLauncher)
        if "mnist_exp_launchers.grid_resume" in str(config.hydra.sweeper.get("_target_", "")):
            from hydra_plugins.mnist_exp_launchers.grid_resume import ResumedGrid

            Plugins.instance().register(ResumedGrid)
        if "mnist_exp_launchers.optuna_sweeper" in str(config.hydra.sweeper.get("_target_", "")):
            from hydra_plugins.mnist_exp_launchers.optuna_sweeper import OptunaSweeper

            Plugins.instance().register(OptunaSweeper)
        sweeper = config.hydra.sweeper
        if config.hydra.launcher.get("wait", True) is False and "optuna" in str(sweeper.get("_target_", "")):
            raise Refused("hydra.launcher.wait=false cannot run an Optuna search: each trial's value chooses the "
                          "next ones, so the search must wait for them; drop wait=false, or submit a grid sweep")
        if "optuna" in str(sweeper.get("_target_", "")):
            trials = sweeper.get("n_trials")
            if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
                raise Refused(f"hydra.sweeper.n_trials={trials} is out of range: an Optuna search needs "
                              "at least 1 trial")
        elif "basic_sweeper" in str(sweeper.get("_target_", "")) or "grid_resume" in str(sweeper.get("_target_", "")):
            _check_grid_size(config)


def _check_grid_size(config: DictConfig) -> None:
    """Refuse a grid of over MAX_JOBS jobs, counted from each swept key's number of values
    without listing them: Hydra's basic sweeper builds the whole product before its first job
    (a 10,000 x 10,000 grid ran it out of memory)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from mnist_exp.cli.dir_guard import Refused

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    try:
        overrides = OverridesParser.create().parse_overrides(arguments)
    except HydraException:
        return  # Hydra's sweeper reports it in its own words
    sizes: Dict[str, int] = {}
    for override in overrides:  # a key given twice: its last values count, as in the sweeper
        sizes[override.get_key_element()] = _values(override)
    jobs = math.prod(sizes.values())
    if jobs > MAX_JOBS:
        grid = " x ".join(f"{key}: {n}" for key, n in sizes.items() if n > 1)
        raise Refused(f"this sweep has {jobs} jobs, more than the {MAX_JOBS} a sweep may have ({grid}): "
                      "sweep fewer values, or split it into several sweeps")


def _values(override) -> int:
    """How many values an override sweeps (1 for a plain value), without listing a range."""
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    value = override.value() if override.is_sweep_override() else None
    if isinstance(value, list):  # a,b,c
        return len(value)
    if isinstance(value, ChoiceSweep):
        return len(value.list)
    if isinstance(value, RangeSweep) and value.step:
        return max(0, math.ceil((value.stop - value.start) / value.step))
    return 1  # a plain value, or glob(...) over a config group's few files


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Also keeps the sweep's config as multirun.yaml, which only Hydra's basic sweeper
        writes: the summary reads the planned jobs and searched keys of any sweep from it, and
        lists them all (pending) from the start. A resumed sweep keeps the multirun.yaml it has."""
        from mnist_exp.analysis.summarize import write_summary

        run = invocation.current()
        run.sweep_dir = Path(config.hydra.sweep.dir).resolve()  # the CLI reports on it at exit
        run.sweep_dir.mkdir(parents=True, exist_ok=True)
        if run.resuming is None:
            OmegaConf.save(config, run.sweep_dir / "multirun.yaml")
        write_summary(run.sweep_dir, figure=False)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        from mnist_exp.analysis.summarize import write_summary

        try:
            write_summary(Path(hydra_cfg.sweep.dir).resolve(), figure=False, ask_slurm=False)  # summarize asks
        except Exception as e:  # a summary problem must never cost the job its result
            log.error("could not update the sweep summary (%s: %s); rebuild it with python -m mnist_exp.summarize",
                      e.__class__.__name__, e)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_exp.analysis.summarize import write_summary

        write_summary(Path(config.hydra.sweep.dir).resolve(), figure=not invocation.current().detached)  # no figure of jobs not run
