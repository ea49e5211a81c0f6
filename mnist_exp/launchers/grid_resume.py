"""The grid sweeper of a resumed sweep (-m resume=SWEEP_DIR): Hydra's basic sweeper, planning
the same jobs, launching only those its records leave to do, each under its own number.

Hydra's launchers number a launch's jobs from its first (initial_job_idx), and Hydra writes
each launched job's .hydra/: a completed job is therefore never handed to the launcher, and
the others are launched one per call (see cli/sweep_resume.py). multirun.yaml stays as the
sweep first wrote it.
"""

import logging
from typing import Any, List

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from hydra_plugins.mnist_exp_launchers import lost_jobs
from mnist_exp.cli import invocation, sweep_resume

log = logging.getLogger(__name__)


class ResumedGrid(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        planned = [job for batch in self.split_arguments(overrides, None) for job in batch]
        resume = invocation.current().resuming
        jobs = [(num, job, lost_jobs.job_dir(self.launcher, num, job)) for num, job in enumerate(planned)]
        chosen = sweep_resume.to_run(jobs, bool(resume and resume.retry_failed))
        returns = sweep_resume.launch_each(lambda job, num: self.launcher.launch([job], initial_job_idx=num)[0],
                                           chosen, sweep_resume.workers(self.config.hydra.launcher))
        for r in returns:
            _ = r.return_value  # as Hydra's sweeper: a job that raised raises here
        return [returns]
