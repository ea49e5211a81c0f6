"""What runs inside a search's job, wherever it runs (this process, a joblib worker, a SLURM
job): the job finds its trial through the study's storage, reports each epoch's objective
to it and asks the pruner whether to go on.

The sweeper hands the trial over as environment variables of the job (hydra.job.env_set,
which every launcher applies around the task), so nothing extra appears among the job's own
overrides; the pruner is built from the job's copy of the sweeper's config.
"""

import csv
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

OBJECTIVE = "val_accuracy"  # of the epoch a run keeps: what a search maximises; test accuracy only beside it
ENV_STORAGE, ENV_STUDY, ENV_TRIAL = "MNIST_EXP_OPTUNA_STORAGE", "MNIST_EXP_OPTUNA_STUDY", "MNIST_EXP_OPTUNA_TRIAL"
PRUNERS = ("median", "hyperband", "none")


def env_overrides(storage: str, study: str, trial: int) -> list:
    """The hidden overrides that tell a job its trial."""
    return [f"++hydra.job.env_set.{name}={_quoted(str(value))}"
            for name, value in ((ENV_STORAGE, storage), (ENV_STUDY, study), (ENV_TRIAL, trial))]


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_pruner(name: Any, args: Optional[Dict[str, Any]], epochs: int):
    """The pruner hydra.sweeper.pruner names, with its hydra.sweeper.pruner_args; None for none."""
    import optuna

    if name in (None, "none", False):
        return None
    if name not in PRUNERS:
        raise ValueError(f"hydra.sweeper.pruner={name} is not one of {', '.join(PRUNERS)}")
    given = dict((args or {}).get(name) or {})
    if name == "median":
        return optuna.pruners.MedianPruner(**given)
    return optuna.pruners.HyperbandPruner(**{"max_resource": max(1, epochs), **given})


def job_trial() -> Optional[Dict[str, Any]]:
    """The trial this job runs ({storage, study, number}), or None outside a search."""
    if not os.environ.get(ENV_TRIAL):
        return None
    return {"storage": os.environ[ENV_STORAGE], "study": os.environ[ENV_STUDY], "number": int(os.environ[ENV_TRIAL])}


def epoch_reporter(trial_info: Dict[str, Any], sweeper_cfg, epochs: int,
                   recorded: Optional[Path] = None) -> Callable[[Any], bool]:
    """on_epoch for run_experiment: reports the epoch's objective to the trial (step = epoch)
    and returns True when the pruner says stop. A resumed job first reports the epochs its
    `recorded` metrics.csv holds that the trial lacks (a kill can fall between the two)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = make_pruner(sweeper_cfg.get("pruner"), sweeper_cfg.get("pruner_args"), epochs)
    study = optuna.load_study(study_name=trial_info["study"], storage=trial_info["storage"],
                              pruner=pruner or optuna.pruners.NopPruner())
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial_info["number"])
    trial = optuna.trial.Trial(study, trial_id)
    if recorded is not None:
        _report_recorded(trial, study, trial_id, recorded)

    def on_epoch(metrics) -> bool:
        value = getattr(metrics, OBJECTIVE)
        if value is None:
            return False
        trial.report(float(value), metrics.epoch)
        return pruner is not None and trial.should_prune()

    return on_epoch


def _report_recorded(trial, study, trial_id: int, metrics_csv: Path) -> None:
    """Each recorded epoch's objective the trial has no value for (an unreadable file: none)."""
    try:
        with open(metrics_csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return
    known = study._storage.get_trial(trial_id).intermediate_values
    for row in rows:
        try:
            epoch, value = int(row["epoch"]), float(row[OBJECTIVE])
        except (KeyError, TypeError, ValueError):
            continue
        if epoch not in known:
            trial.report(value, epoch)
