"""What Hydra runs for each job: the typed config from Hydra's, the run, and the value handed
back to the sweeper. Nothing below this receives a DictConfig.

A job that ends in a user-facing error is recorded in this invocation (cli/invocation.py), not
raised, so Hydra neither prints its own banner nor stops a sweep."""

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnist_exp.cli import dir_guard, invocation, sweep_resume
from mnist_exp.cli.command_line import refuse_unknown_keys
from mnist_exp.cli.exits import EXIT_DIVERGED, EXIT_USER_ERROR, one_line
from mnist_exp.config import CONF_DIR, Config, check_preset_arch, register, typed_keys, unused_by
from mnist_exp.errors import UserError
from mnist_exp.files import ownership
from mnist_exp.record import CHECKPOINT, METRICS, SUMMARY
from mnist_exp.runner import from_run
from mnist_exp.runner.resume import resumed_config, run_status

log = logging.getLogger(__name__)

register()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(dcfg: DictConfig) -> Union[Dict[str, Any], "NoValue"]:
    """Returns the metrics of the epoch the run keeps (see job_value): the Optuna sweeper
    tells Optuna its validation accuracy. A run that failed or diverged returns a `NoValue`,
    which the sweeper tells as a failed trial."""
    from mnist_exp.runner.experiment import run_experiment  # keeps --help and --cfg fast

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    job = {"num": hydra_cfg.job.num, "overrides": dir_guard.typed_overrides(hydra_cfg)} if sweeping else None
    claimed: List[Path] = []  # a single run's own directory was claimed in on_run_start (dir_guard)
    record_failure = sweeping  # a sweep keeps a refused job's record; a single run refused leaves none
    requeued = sweeping and (requeued_job(run_dir) or sweep_resume.continues(run_dir))
    try:
        if sweeping:  # Hydra wrote .hydra/ and the log into the job's dir; nothing else may be there
            claimed.append(ownership.claim(run_dir, fresh=not requeued, ignore=(
                ".hydra", f"{hydra_cfg.job.name}.log", *sweep_resume.set_aside_names(run_dir))))
        refuse_unknown_keys(dcfg, Config)
        cfg: Config = OmegaConf.to_object(dcfg)
        limit_blas_to_the_job()
        resuming = bool(cfg.resume) or requeued
        origin = {}
        if cfg.from_run is not None and not resuming:  # a new run from a recorded config, with the typed changes
            cfg, origin["from_run"] = from_run.config_from_run(cfg, dir_guard.typed_overrides(hydra_cfg))
        if sweeping and not cfg.resume:  # a single run's typed keys were checked before its directory (dir_guard)
            cfg = network_of_the_job(cfg, dir_guard.typed_overrides(hydra_cfg), hydra_cfg.runtime.choices)
        extends = None
        if resuming and not requeued:  # the run goes on in its own directory; this invocation's holds .hydra/, log
            cfg, target = resumed_config(cfg, dir_guard.typed_overrides(hydra_cfg))
            claimed.append(ownership.claim(target, fresh=False))  # nobody else writes it meanwhile
            if run_status(target / SUMMARY) == "completed":  # never rewritten: its extension is a new run, here
                extends = target
            else:
                run_dir = target
        trial, on_epoch = search_trial(hydra_cfg, cfg.epochs, run_dir if requeued else None) if sweeping \
            else ({}, None)
        result = run_experiment(cfg, run_dir, {"job": job, **trial, **origin}, resume=resuming, extends=extends,
                                on_epoch=on_epoch)
    except ownership.DirectoryInUse as e:  # someone else's directory: write nothing into it
        return _failed(None, job, EXIT_USER_ERROR, str(e))
    except OmegaConfBaseException as e:  # e.g. an ${oc.env:...} that does not resolve
        return _failed(run_dir if record_failure else None, job, EXIT_USER_ERROR, one_line(e), _plain(dcfg))
    except UserError as e:
        return _failed(run_dir if record_failure else None, job, getattr(e, "exit_code", EXIT_USER_ERROR), str(e),
                       _plain(dcfg))
    except Exception as e:
        if not sweeping:
            raise  # a bug: show the traceback
        log.exception("job %s failed", job["num"])  # the traceback goes to the job's log
        return _failed(run_dir, job, EXIT_USER_ERROR, f"{e.__class__.__name__}: {e}", _plain(dcfg))
    finally:
        if sweeping:  # a worker runs several jobs: each job's claim ends with it
            for path in claimed:
                ownership.release(path)
    return job_value(result, run_dir, job)


def job_value(result, run_dir: Path, job: Optional[dict]) -> Union[Dict[str, Any], "NoValue"]:
    """What the job hands its sweeper: the metrics of the epoch whose weights the run keeps
    (early stopping may restore an earlier one), its status (completed or pruned) and epochs
    run; a diverged run's is a NoValue."""
    if result.status == "diverged":
        return _failed(run_dir, job, EXIT_DIVERGED, f"run diverged: {result.reason}; metrics up to then in {run_dir}")
    return {**(result.final or {}), "status": result.status, "epochs_run": result.epochs_run}


def search_trial(hydra_cfg, epochs: int, resumed: Optional[Path] = None) -> Tuple[Dict[str, Any], Any]:
    """For a job of an Optuna search ({}, None otherwise): its trial, recorded in summary.json,
    and the hook that reports each epoch to the trial and says when the pruner stops it (a
    `resumed` job's recorded epochs are reported first, where the trial lacks them)."""
    from importlib.util import find_spec

    if find_spec("optuna") is None:
        return {}, None
    from hydra_plugins.mnist_exp_launchers.optuna_trial import OBJECTIVE, epoch_reporter, job_trial

    trial = job_trial()
    if trial is None:
        return {}, None
    recorded = {"trial": {"number": trial["number"], "study": trial["study"], "storage": trial["storage"],
                          "objective": f"final_{OBJECTIVE}"}}
    return recorded, epoch_reporter(trial, hydra_cfg.sweeper, epochs, resumed / METRICS if resumed else None)


def network_of_the_job(cfg: Config, overrides: List[str], choices: Dict[str, Any]) -> Config:
    """A sweep job's network, as in a sweep over arch or presets: a preset that would overrule the
    job's typed arch refuses the job, and the keys its network does not use go back to their
    defaults (a line in its log says so), so its record and the sweep's comparison show only
    what shaped it."""
    typed = typed_keys(overrides)
    check_preset_arch(cfg.arch, choices, typed)
    defaults = Config()
    for key in unused_by(cfg.arch):
        if key in typed:
            log.warning("%s=%s is not used by arch=%s: the run records its default, %s", key, getattr(cfg, key),
                        cfg.arch, getattr(defaults, key))
        setattr(cfg, key, getattr(defaults, key))
    return cfg


def requeued_job(job_dir: Path) -> bool:
    """A SLURM job requeued (preempted, or at its time limit) whose earlier run left a record
    here: it resumes that run from its checkpoint. A record with no finished epoch is set aside
    (its files end in .requeued) and the job starts afresh."""
    if int(os.environ.get("SLURM_RESTART_COUNT") or 0) < 1 or not (job_dir / SUMMARY).is_file():
        return False
    if (job_dir / CHECKPOINT).is_file():
        log.info("SLURM requeued this job (restart %s): resuming its run", os.environ["SLURM_RESTART_COUNT"])
        return True
    for name in (SUMMARY, "metrics.csv"):
        if (job_dir / name).is_file():
            (job_dir / name).rename(job_dir / f"{name}.requeued")
    return False


def limit_blas_to_the_job() -> None:
    """A SLURM job's BLAS threads match the CPUs it was given (cpus_per_task)."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit():
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(cpus), user_api="blas")


class NoValue:
    """A failed job's return: no objective. Its repr is the reason, which the sweeper logs."""

    def __init__(self, reason: str):
        self.reason = reason

    def __float__(self) -> float:
        raise TypeError(self.reason)

    def __repr__(self) -> str:
        return f"no value: {self.reason}"


def _plain(dcfg: DictConfig) -> Optional[dict]:
    """The job's config as plain values, for its failure record (None if it cannot be resolved)."""
    try:
        return OmegaConf.to_container(dcfg, resolve=True)
    except OmegaConfBaseException:
        return None


def _failed(run_dir: Optional[Path], job: Optional[dict], code: int, message: str,
            config: Optional[dict] = None) -> NoValue:
    invocation.current().failures.append((code, message))
    if run_dir is not None:  # failed before the run began: leave a record
        from mnist_exp.record import summary

        try:
            summary.record_refusal(run_dir, job, message, config)
        except OSError as e:
            log.error("could not record the failure in %s: %s", run_dir, e.strerror or e)
    return NoValue(message)
