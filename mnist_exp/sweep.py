"""The Hydra callback that keeps a sweep's summary complete, whatever its jobs do.

Hydra 1.3 skips on_multirun_end when a job raises, so the summary is rebuilt from
on_job_end, which runs inside the worker process of every launcher (basic, joblib,
submitit); our jobs record their failures instead of raising (see app.py).
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
            write_summary(Path(hydra_cfg.sweep.dir).resolve())
        except Exception:  # a summary problem must never cost the job its result
            log.exception("could not update the sweep summary (rebuild it with python -m mnist_exp.summarize)")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_exp.summarize import write_summary

        write_summary(Path(config.hydra.sweep.dir).resolve())
