"""hydra-joblib-launcher, made to survive a worker process that dies.

When one of loky's worker processes is killed (the out-of-memory killer, `kill -9`), joblib
raises TerminatedWorkerError and loky stops every other worker with it: the plugin's launch
then ends the whole sweep, leaving running jobs marked `running` and the rest never run. This
launcher runs the same jobs through the plugin's own `execute_job`, and when the pool breaks
it records each job that was running as interrupted (with the cause, and resume= to continue
it), then runs the jobs that had not started in a fresh pool.
"""

import logging
import re
from pathlib import Path
from typing import Dict, List, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, setup_globals
from hydra_plugins.hydra_joblib_launcher import _core
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as PluginLauncher

from hydra_plugins.mnist_exp_launchers import lost_jobs

log = logging.getLogger(__name__)


class JoblibLauncher(PluginLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from joblib import Parallel, delayed
        from joblib.externals.loky.process_executor import TerminatedWorkerError

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        settings = dict(self.joblib, backend="loky", return_as="generator_unordered")
        _core.process_joblib_cfg(settings)
        jobs = {initial_job_idx + i: list(o) for i, o in enumerate(job_overrides)}
        returns: Dict[int, JobReturn] = {}
        while len(returns) < len(jobs):
            pending = [idx for idx in jobs if idx not in returns]
            log.info("joblib (%s workers) runs jobs %s", settings.get("n_jobs"), ", ".join(map(str, pending)))
            state = Singleton.get_state()
            try:
                calls = (delayed(_core.execute_job)(idx, jobs[idx], self.hydra_context, self.config,
                                                    self.task_function, state) for idx in pending)
                for ret in Parallel(**settings)(calls):
                    returns[int(ret.hydra_cfg.hydra.job.num)] = ret
            except TerminatedWorkerError as e:
                codes = re.search(r"exit codes of the workers are \{(.*?)\}", str(e))
                cause = codes.group(1) if codes else "unknown exit code"
                for idx in pending:
                    if idx not in returns and lost_jobs.job_dir(self, idx, jobs[idx]).exists():
                        returns[idx] = self._killed(idx, jobs[idx], cause)
        return [returns[idx] for idx in jobs]

    def _killed(self, idx: int, overrides: List[str], cause: str) -> JobReturn:
        """Record a job whose worker died: its summary says interrupted, and why."""
        directory = lost_jobs.job_dir(self, idx, overrides)
        reason = (f"stopped: a joblib worker process died (exit code {cause}; -9 is SIGKILL, often the "
                  "out-of-memory killer) and joblib stops every job running beside it" + lost_jobs.resume_hint(directory))
        return lost_jobs.record(self, idx, overrides, directory, "interrupted", reason)
