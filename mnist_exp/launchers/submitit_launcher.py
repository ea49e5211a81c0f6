"""hydra-submitit-launcher's SLURM launcher, made to finish every sweep it starts.

The plugin collects results with `[job.results()[0] for job in jobs]`: the first cancelled or
failed job raises, the sweep ends, and the other array tasks run on unwatched. This launcher
submits the same array, then collects every job: one that SLURM cancelled, or that failed
outside the run's own error handling, is recorded in its summary.json (status and reason, with
the SLURM job id and state) and reported as a failed job; the others complete as usual.

A preempted job (SIGUSR2) or one at its time limit is requeued by submitit through the
launcher's `checkpoint`; the task, run again, resumes the job's run from its last checkpoint
(see app.hydra_main). With mem_gb null, each array gets the memory its largest job needs.
"""

import contextlib
import io
import logging
import math
import shutil
import sys
from pathlib import Path
from typing import Any, List, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as PluginLauncher
from omegaconf import OmegaConf

from hydra_plugins.mnist_exp_launchers import lost_jobs
from mnist_exp.errors import NotSubmitted

log = logging.getLogger(__name__)
ROOM_GB = 1.0  # Python, NumPy, Hydra and matplotlib beside the arrays memory.estimate counts


class SlurmLauncher(PluginLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        try:
            executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
                                             **{f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]})
        except RuntimeError as e:  # no SLURM commands here: 'Could not detect "srun", ...'
            raise _not_submitted(e, initial_job_idx, self.config.hydra.sweep.dir) from None
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        params = {k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items()
                  if k not in ("submitit_folder", "max_num_timeout")}
        if params.get("mem_gb") is None:
            params["mem_gb"] = self._memory_gb(job_overrides)
        executor.update_parameters(**params)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        numbers = [initial_job_idx + i for i in range(len(job_overrides))]
        for num, overrides in zip(numbers, job_overrides):
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
        calls = [(list(o), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state())
                 for num, o in zip(numbers, job_overrides)]
        jobs = self._submit(executor, calls, sweep_dir, initial_job_idx)
        return [self._result(job, num, list(o)) for job, num, o in zip(jobs, numbers, job_overrides)]

    def _submit(self, executor: Any, calls: list, sweep_dir: Path, first: int) -> list:
        """The array's jobs; if sbatch refuses it (no controller, a bad partition or account), one
        line with sbatch's own words, and the submission files go so the sweep dir can too."""
        from submitit.core.utils import FailedJobError

        before, printed = set(sweep_dir.iterdir()), io.StringIO()
        try:
            with contextlib.redirect_stderr(printed):  # submitit prints sbatch's stderr before it raises
                jobs = executor.map_array(self, *zip(*calls))
            sys.stderr.write(printed.getvalue())
            return jobs
        except (FailedJobError, OSError) as e:
            for path in set(sweep_dir.iterdir()) - before:  # .submitit/: the pickled calls, the sbatch script
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            raise _not_submitted(e, first, sweep_dir) from None

    def _memory_gb(self, job_overrides: Sequence[Sequence[str]]) -> int:
        """The memory of the largest job's arrays, plus room for the interpreter, in whole GB."""
        from mnist_exp.runner import memory
        from mnist_exp.config import Config

        need = 0
        for overrides in job_overrides:
            try:
                config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                plain = OmegaConf.to_container(config, resolve=True)
                plain.pop("hydra", None)
                cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), plain))
                need = max(need, memory.estimate(cfg))
            except Exception:  # a job whose config is bad fails on its own, with its own message
                continue
        return max(1, math.ceil(need / 2**30 + ROOM_GB))

    def _result(self, job: Any, num: int, overrides: List[str]) -> JobReturn:
        """The job's own return, or, for a job SLURM ended some other way, its record updated."""
        try:
            return job.results()[0]
        except Exception as e:  # submitit's UncompletedJobError (cancelled, timed out), FailedJobError
            return self._lost(job, num, overrides, e)

    def _lost(self, job: Any, num: int, overrides: List[str], error: Exception) -> JobReturn:
        directory = lost_jobs.job_dir(self, num, overrides)
        state = _state(job)
        reason = f"SLURM job {job.job_id} ended {state}"
        if "CANCEL" not in state:  # a failure outside the run's own handling: say what submitit saw
            first = next((line.strip() for line in str(error).splitlines() if line.strip()), error.__class__.__name__)
            reason += f": {first[:300]}"
        status = "interrupted" if "CANCEL" in state or "TIMEOUT" in state else "failed"
        return lost_jobs.record(self, num, overrides, directory, status, reason + lost_jobs.resume_hint(directory))


def _not_submitted(error: Exception, first: int, sweep_dir) -> NotSubmitted:
    said = [line.strip() for line in str(error).splitlines() if line.strip()]
    return NotSubmitted(said[0] if said else error.__class__.__name__, first, sweep_dir)


def _state(job: Any) -> str:
    try:
        return str(job.state)
    except Exception:
        return "UNKNOWN"
