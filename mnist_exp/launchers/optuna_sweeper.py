"""mnist_exp's Optuna sweeper (hydra/sweeper=optuna): Optuna's ask-and-tell under Hydra.

Each trial is one Hydra job, launched by whichever launcher the sweep uses (basic, joblib,
SLURM). A job reports each epoch's validation accuracy to its trial through the study's
storage and stops when the pruner says so (optuna_trial.py); the sweeper tells Optuna how
each job ended: its objective, pruned, or failed. As soon as a job ends its worker gets the
next trial: no batch waits for its slowest job. The study keeps the settings it searches
under (the fixed config and the data set): continuing it under other settings is refused.
"""

import logging
import math
import os
import queue
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.mnist_exp_launchers import optuna_resume, optuna_space, optuna_study
from hydra_plugins.mnist_exp_launchers.optuna_trial import OBJECTIVE, env_overrides, make_pruner
from mnist_exp.errors import ConfigError, NotSubmitted, UserError
from mnist_exp.runner import sweep_resume

log = logging.getLogger(__name__)
RESULTS = "optimization_results.yaml"


class OptunaSweeper(Sweeper):
    def __init__(self, n_trials: int, storage: Optional[str] = None, study_name: Optional[str] = None,
                 direction: str = "maximize", sampler: Any = None, params: Any = None, pruner: Any = "median",
                 pruner_args: Any = None, n_jobs: Optional[int] = None):
        self.n_trials, self.storage, self.study_name, self.direction = n_trials, storage, study_name, direction
        self.sampler = OmegaConf.to_container(sampler, resolve=True) if isinstance(sampler, DictConfig) else sampler
        self.params = dict(params or {})
        self.pruner, self.n_jobs = pruner, n_jobs
        self.pruner_args = OmegaConf.to_container(pruner_args) if isinstance(pruner_args, DictConfig) else pruner_args

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                 task_function=task_function)

    def sweep(self, arguments: List[str]) -> None:
        import optuna

        optuna.logging.disable_default_handler()  # Optuna's lines go to the sweep's log, through Hydra's logging
        optuna.logging.enable_propagation()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space, fixed = optuna_space.search_space(self.params, arguments)
        task = self._task_config(fixed)
        if not task.get("val_samples"):
            raise ConfigError("val_samples=0: an Optuna search chooses on validation data; give val_samples > 0 "
                              "(+search=optuna sets 1000)")
        pruner = self._pruner(int(task.get("epochs") or 1))
        storage = self.storage or f"sqlite:///{Path(str(self.config.hydra.sweep.dir)).absolute() / 'optuna.db'}"
        name = self.study_name or "mnist_exp"
        study = optuna_study.open_study(storage, name, self.direction, self.sampler, pruner,
                                        optuna_study.setting(task, space))
        workers = self._workers()
        log.info("study %s in %s: %d trials, %d at a time, pruner %s", name, storage, self.n_trials, workers,
                 self.pruner)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        runner = _Trials(self, study, space, fixed, storage, name, sweep_dir)
        planned, kept = [(job, None, None) for job in range(self.n_trials)], []
        resume = sweep_resume.RESUMING
        if resume is not None:
            planned, kept = optuna_resume.plan(self, study, fixed, sweep_dir, resume.retry_failed)
        runner.run(workers, planned)
        optuna_study.save_results(study, sweep_dir / RESULTS, kept + runner.numbers)

    def _task_config(self, fixed: List[str]) -> Dict[str, Any]:
        """The job config every trial shares (the searched keys at their defaults), as plain values."""
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(fixed))
        with open_dict(config):
            del config["hydra"]
        return OmegaConf.to_container(config, resolve=True)

    def _pruner(self, epochs: int):
        try:
            return make_pruner(self.pruner, self.pruner_args, epochs)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        except TypeError as e:  # an argument the pruner does not take
            raise ConfigError(f"hydra.sweeper.pruner_args.{self.pruner}: {e}") from None

    def _workers(self) -> int:
        """Trials at once: hydra.sweeper.n_jobs, else the launcher's workers; 1 in this process."""
        launcher = self.config.hydra.launcher
        target = str(launcher.get("_target_", ""))
        if "joblib" in target:
            wanted = self.n_jobs or launcher.get("n_jobs") or -1
            wanted = wanted if wanted > 0 else max(1, (os.cpu_count() or 1) + 1 + wanted)
        elif "submitit" in target:
            wanted = self.n_jobs or launcher.get("array_parallelism") or self.n_trials
        else:  # the basic launcher runs jobs in this process, one after another
            wanted = 1
        return max(1, min(int(wanted), self.n_trials))


class _Trials:
    """Asks, launches and tells: the asking and telling in this thread, each launch (one job,
    one trial) in a worker thread, a new one as soon as one ends."""

    def __init__(self, sweeper: OptunaSweeper, study, space, fixed, storage: str, name: str, sweep_dir: Path):
        self.sweeper, self.study, self.space, self.fixed = sweeper, study, space, fixed
        self.storage, self.name, self.sweep_dir = storage, name, sweep_dir
        self.running: Dict[int, Any] = {}  # job num -> trial
        self.numbers: List[int] = []  # the trials this sweep ran
        self.done: "queue.Queue" = queue.Queue()
        self.launched = 0  # trials whose job the launcher ran (or submitted)

    def run(self, workers: int, planned: List[optuna_resume.Planned]) -> None:
        """Runs the planned jobs: (job number, the trial it goes on with, or the params of a new one)."""
        queue = list(planned)
        try:
            while queue or self.running:
                while queue and len(self.running) < workers:
                    self._start(*queue.pop(0), workers)
                if self.running:
                    num, returns = self.done.get()
                    self._tell(self.running.pop(num), returns)
        except BaseException:  # Ctrl-C, or a launcher that broke: no trial stays RUNNING in the study
            for trial in self.running.values():
                self.study.tell(trial, state=_state("FAIL"), skip_if_finished=True)
            raise

    def _start(self, job: int, trial, params: Optional[Dict[str, Any]], workers: int) -> None:
        if trial is None:
            if params is not None:  # a resumed job's parameters, as a new trial
                self.study.enqueue_trial(params, skip_if_exists=False)
            trial = self.study.ask(self.space)
            trial.set_user_attr(optuna_resume.SWEEP_ATTR, str(self.sweep_dir))
        self.numbers.append(trial.number)
        overrides = optuna_space.overrides(trial.params, self.fixed) + env_overrides(self.storage, self.name,
                                                                                   trial.number)
        self.running[job] = trial
        if workers == 1:  # in this thread: the basic launcher's jobs run here, with their signal handlers
            self.done.put((job, self._launch(job, overrides)))
        else:
            threading.Thread(target=lambda: self.done.put((job, self._launch(job, overrides))), daemon=True).start()

    def _launch(self, job: int, overrides: List[str]):
        try:
            return self.sweeper.launcher.launch([overrides], initial_job_idx=job)[0]
        except Exception as e:  # noqa: BLE001 (the launcher's own failure: this trial failed)
            return e

    def _tell(self, trial, returned) -> None:
        if isinstance(returned, UserError):  # the launcher could not run jobs at all (e.g. SLURM took none)
            self.study.tell(trial, state=_state("FAIL"))
            raise returned if self.launched else _none_launched(returned)
        self.launched += 1
        value, reason = _outcome(returned)
        if isinstance(value, dict):
            trial.set_user_attr("test_accuracy", value.get("test_accuracy"))
            trial.set_user_attr("epochs_run", value.get("epochs_run"))
        hydra_cfg = getattr(returned, "hydra_cfg", None)
        run_dir = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir") if hydra_cfg is not None else None
        if run_dir:
            trial.set_user_attr("run_dir", str(run_dir))
        if reason == "pruned":
            self.study.tell(trial, state=_state("PRUNED"))
        elif reason is None:
            self.study.tell(trial, float(value[OBJECTIVE]))
        else:
            log.warning("trial %d failed: %s", trial.number, reason)
            self.study.tell(trial, state=_state("FAIL"))


def _outcome(returned):
    """(the job's value, None) for a completed job, (value, 'pruned'), or (None, why it failed)."""
    if isinstance(returned, BaseException):
        return None, f"{returned.__class__.__name__}: {returned}"
    try:
        value = returned.return_value
    except Exception as e:  # noqa: BLE001 (the job raised: Hydra hands the exception over)
        return None, f"{e.__class__.__name__}: {e}"
    if not isinstance(value, dict):
        return None, repr(value)  # NoValue: the job failed or diverged, its record says why
    if value.get("status") == "pruned":
        return value, "pruned"
    objective = value.get(OBJECTIVE)
    if not isinstance(objective, (int, float)) or not math.isfinite(objective):
        return None, f"no {OBJECTIVE} in the job's result"
    return value, None


def _state(name: str):
    import optuna

    return getattr(optuna.trial.TrialState, name)


def _none_launched(error: UserError) -> UserError:
    """The launcher's refusal of a later trial's job, when no trial's job was taken at all
    (parallel trials fail in any order): nothing was submitted, and there is no earlier record."""
    return NotSubmitted(error.reason) if isinstance(error, NotSubmitted) else error
