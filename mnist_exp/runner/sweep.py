"""The Hydra callback that keeps a sweep's summary complete, whatever its jobs do.

summary.csv is rebuilt from on_job_end, which runs inside the worker process of every
launcher (basic, joblib, submitit), so it holds every finished job even if the sweep is
killed. comparison.png is drawn once, at on_multirun_end (about 0.3 s a figure; per job it
added that to every job): Hydra 1.3 skips that hook when a job raises, but our jobs record
their failures instead of raising (see app.py). `python -m mnist_exp.summarize DIR` redraws it.
"""

import logging
from pathlib import Path
from typing import Any, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

# The sweep directory of the multirun this process launched: the CLI reports on it at exit.
LAUNCHED: Optional[Path] = None


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

        from mnist_exp.runner.dir_guard import Refused

        Plugins.instance().register(JoblibLauncher)
        if "mnist_exp_launchers.submitit_launcher" in str(config.hydra.launcher.get("_target_", "")):
            from hydra_plugins.mnist_exp_launchers.submitit_launcher import SlurmLauncher

            Plugins.instance().register(SlurmLauncher)
        if "mnist_exp_launchers.optuna_sweeper" in str(config.hydra.sweeper.get("_target_", "")):
            from hydra_plugins.mnist_exp_launchers.optuna_sweeper import OptunaSweeper

            Plugins.instance().register(OptunaSweeper)
        sweeper = config.hydra.sweeper
        if "optuna" in str(sweeper.get("_target_", "")):
            trials = sweeper.get("n_trials")
            if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
                raise Refused(f"hydra.sweeper.n_trials={trials} is out of range: an Optuna search needs "
                              "at least 1 trial")


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Also keeps the sweep's config as multirun.yaml, which only Hydra's basic sweeper
        writes: the summary reads the planned jobs and searched keys of any sweep from it."""
        global LAUNCHED
        LAUNCHED = Path(config.hydra.sweep.dir).resolve()
        LAUNCHED.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, LAUNCHED / "multirun.yaml")

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        from mnist_exp.analysis.summarize import write_summary

        try:
            write_summary(Path(hydra_cfg.sweep.dir).resolve(), figure=False)
        except Exception as e:  # a summary problem must never cost the job its result
            log.error("could not update the sweep summary (%s: %s); rebuild it with python -m mnist_exp.summarize",
                      e.__class__.__name__, e)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_exp.analysis.summarize import write_summary

        write_summary(Path(config.hydra.sweep.dir).resolve())
