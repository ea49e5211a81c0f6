"""hydra-submitit-launcher's SLURM launcher, made to finish every sweep it starts.

The plugin collects results with `[job.results()[0] for job in jobs]`: the first cancelled or
failed job raises, the sweep ends, and the other array tasks run on unwatched. This launcher
submits the same array, then collects every job: one that SLURM cancelled, or that failed
outside the run's own error handling, is recorded in its summary.json (status and reason, with
the SLURM job id and state) and reported as a failed job; the others complete as usual.

A preempted job (SIGUSR2) or one at its time limit is requeued by submitit through the
launcher's `checkpoint`; the task, run again, resumes the job's run from its last checkpoint
(see app.hydra_main). With mem_gb null, each array gets the memory its largest job needs.

Every array is noted in the sweep dir's slurm_jobs.json (analysis/slurm_jobs.py). With
wait=false the launcher stops there: it prints the job ids and the sweep dir and returns, and
the readers (summarize, runs, the report) ask SLURM what became of the jobs.
"""

import contextlib
import io
import logging
import math
import shutil
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as PluginLauncher
from omegaconf import OmegaConf, open_dict

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
                  if k not in ("submitit_folder", "max_num_timeout", "wait")}
        numbers = [initial_job_idx + i for i in range(len(job_overrides))]
        configs, dirs = self._job_configs(numbers, job_overrides)
        if params.get("mem_gb") is None:
            params["mem_gb"] = _memory_gb(configs)
        executor.update_parameters(**params)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        for num, overrides in zip(numbers, job_overrides):
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
        calls = [(list(o), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state())
                 for num, o in zip(numbers, job_overrides)]
        jobs = self._submit(executor, calls, sweep_dir, initial_job_idx)
        wait = self.params.get("wait", True) is not False
        self._note(sweep_dir, jobs, numbers, job_overrides, configs, dirs, wait)
        if not wait:
            return self._detached(sweep_dir, jobs, numbers, job_overrides)
        return [self._result(job, num, list(o)) for job, num, o in zip(jobs, numbers, job_overrides)]

    def _note(self, sweep_dir: Path, jobs: list, numbers: List[int], job_overrides: Sequence[Sequence[str]],
              configs: List[Optional[dict]], dirs: List[Path], wait: bool) -> None:
        """slurm_jobs.json: what the readers (and a resume) need of jobs nobody may wait for."""
        from mnist_exp.analysis import slurm_jobs

        noted = []
        for job, num, overrides, config, directory in zip(jobs, numbers, job_overrides, configs, dirs):
            try:
                directory = directory.relative_to(sweep_dir.absolute())
            except ValueError:  # a subdir outside the sweep dir stays absolute
                pass
            noted.append({"num": num, "slurm_id": str(job.job_id), "overrides": list(overrides),
                          "dir": str(directory), "config": config})
        slurm_jobs.add_jobs(sweep_dir, noted, wait)

    def _detached(self, sweep_dir: Path, jobs: list, numbers: List[int],
                  job_overrides: Sequence[Sequence[str]]) -> List[JobReturn]:
        """wait=false: say where the sweep is and which jobs SLURM has, and return at once."""
        from mnist_exp.runner import sweep

        sweep.DETACHED = True
        ids = " ".join(str(job.job_id) for job in jobs)
        print(f"submitted {len(jobs)} job{'s' * (len(jobs) != 1)} to SLURM, not waiting for them (hydra.launcher.wait=false): {ids}\n"
              f"sweep dir: {sweep_dir.absolute()}\n"
              f"follow it with: python -m mnist_exp.summarize {sweep_dir.absolute()}", flush=True)
        return [JobReturn(overrides=list(o), working_dir=str(sweep_dir), task_name=self.config.hydra.job.name,
                          status=JobStatus.COMPLETED, _return_value=f"submitted as SLURM job {job.job_id}",
                          hydra_cfg=OmegaConf.create({"hydra": {"job": {"num": num}}}))
                for job, num, o in zip(jobs, numbers, job_overrides)]

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

    def _job_configs(self, numbers: List[int], job_overrides: Sequence[Sequence[str]]):
        """Each job's config as plain values (None for one that does not compose: it fails on its
        own, with its own message), and its directory."""
        configs, dirs = [], []
        for num, overrides in zip(numbers, job_overrides):
            try:
                config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                with open_dict(config):
                    config.hydra.job.num, config.hydra.job.id = num, f"{config.hydra.job.name}_{num}"
                dirs.append((Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)).absolute())
                with open_dict(config):  # the hydra node resolves only inside the job (its output dir)
                    config.pop("hydra")
                configs.append(OmegaConf.to_container(config, resolve=True))
            except Exception:
                if len(dirs) == len(configs):
                    dirs.append(Path(str(self.config.hydra.sweep.dir)).absolute() / str(num))  # the default subdir
                configs.append(None)
        return configs, dirs

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
        status = "cancelled" if "CANCEL" in state else "interrupted" if "TIMEOUT" in state else "failed"
        return lost_jobs.record(self, num, overrides, directory, status, reason + lost_jobs.resume_hint(directory))


def _memory_gb(configs: List[Optional[dict]]) -> int:
    """The memory of the largest job's arrays, plus room for the interpreter, in whole GB."""
    from mnist_exp.runner import memory
    from mnist_exp.config import Config

    need = 0
    for plain in configs:
        try:
            cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), plain))
            need = max(need, memory.estimate(cfg))
        except Exception:  # a job whose config is bad fails on its own, with its own message
            continue
    return max(1, math.ceil(need / 2**30 + ROOM_GB))


def _not_submitted(error: Exception, first: int, sweep_dir) -> NotSubmitted:
    said = [line.strip() for line in str(error).splitlines() if line.strip()]
    return NotSubmitted(said[0] if said else error.__class__.__name__, first, sweep_dir)


def _state(job: Any) -> str:
    try:
        return str(job.state)
    except Exception:
        return "UNKNOWN"
