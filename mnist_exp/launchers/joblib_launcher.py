"""hydra-joblib-launcher, made to survive a worker process that dies.

When one of loky's worker processes is killed (the out-of-memory killer, `kill -9`), joblib
raises TerminatedWorkerError and loky stops every other worker with it: the plugin's launch
then ends the whole sweep, leaving running jobs marked `running` and the rest never run. This
launcher runs the same jobs through the plugin's own `execute_job`, and when the pool breaks
it records each job that was running as interrupted (with the cause, and resume= to continue
it), then runs the jobs that had not started in a fresh pool. Each job's console lines begin
with its number (`[job 3] epoch 2/9 ...`): the jobs' lines interleave on one terminal.
"""

import logging
import re
from pathlib import Path
from typing import Dict, List, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, run_job, setup_globals
from omegaconf import open_dict
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
                calls = (delayed(execute_job)(idx, jobs[idx], self.hydra_context, self.config,
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


def execute_job(idx: int, overrides: Sequence[str], hydra_context, config, task_function,
                singleton_state) -> JobReturn:
    """The plugin's execute_job (in the worker), with the job's number before its console lines."""
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
        console = sweep_config.hydra.job_logging.get("formatters", {}).get("console")
        if console is not None and "format" in console:
            console.format = f"[job {idx}] {console.format}"
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
