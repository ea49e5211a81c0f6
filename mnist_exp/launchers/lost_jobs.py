"""What both launcher subclasses do with a job that ended outside the run's own handling (a
dead joblib worker, a job SLURM cancelled): find its directory, record why in its summary.json,
and hand the sweeper a return that says the job has no value."""

import logging
from pathlib import Path
from typing import List

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf, open_dict

log = logging.getLogger(__name__)


def job_dir(launcher, num: int, overrides: List[str]) -> Path:
    """The directory Hydra gives job `num` of the launcher's sweep."""
    config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(config):
        config.hydra.job.num, config.hydra.job.id = num, f"{config.hydra.job.name}_{num}"
    return (Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)).absolute()


def resume_hint(directory: Path) -> str:
    from mnist_exp.record import CHECKPOINT

    return f"; continue it with resume={directory}" if (directory / CHECKPOINT).is_file() else ""


def record(launcher, num: int, overrides: List[str], directory: Path, status: str, reason: str) -> JobReturn:
    """Mark the job's record `status` with `reason` (unless the run had recorded how it ended),
    log it, and return what the sweeper expects of a failed job."""
    from mnist_exp.app import NoValue
    from mnist_exp.record.summary import record_lost

    record_lost(directory, status, reason, {"num": num, "overrides": list(overrides)})
    log.error("job %d: %s", num, reason)
    return JobReturn(overrides=list(overrides), working_dir=str(directory), task_name=launcher.config.hydra.job.name,
                     status=JobStatus.COMPLETED, _return_value=NoValue(reason),
                     hydra_cfg=OmegaConf.create({"hydra": {"job": {"num": num}}}))
