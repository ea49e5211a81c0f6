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
from omegaconf import DictConfig

log = logging.getLogger(__name__)

# The sweep directory of the multirun this process launched: the CLI reports on it at exit.
LAUNCHED: Optional[Path] = None


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global LAUNCHED
        LAUNCHED = Path(config.hydra.sweep.dir).resolve()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        from mnist_exp.summarize import write_summary

        try:
            write_summary(Path(hydra_cfg.sweep.dir).resolve(), figure=False)
        except Exception:  # a summary problem must never cost the job its result
            log.exception("could not update the sweep summary (rebuild it with python -m mnist_exp.summarize)")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_exp.summarize import write_summary

        write_summary(Path(config.hydra.sweep.dir).resolve())
