"""A resumed Optuna search (-m resume=SWEEP_DIR): its study goes on to n_trials, job by job.

Each job number of the sweep keeps its trial: a completed or pruned job stays as it is (and
its trial is told, if the killed sweeper never did), a failed one stays failed unless
retry_failed=true, an interrupted one continues from its checkpoint under its own trial
while that trial is still RUNNING in the study (killed), or under a new trial with the same
parameters once it was ended (a Ctrl-C tells it failed). Never-started jobs ask new trials.
Trials of this sweep still RUNNING that no job takes over are told failed.
"""

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from hydra_plugins.mnist_exp_launchers import lost_jobs
from hydra_plugins.mnist_exp_launchers.optuna_trial import OBJECTIVE
from mnist_exp.runner import sweep_resume

log = logging.getLogger(__name__)
SWEEP_ATTR = "sweep_dir"  # each trial's user attribute: the sweep that asked it

# A job the search runs: (job number, the trial it goes on with or None, the params of a new one or None)
Planned = Tuple[int, Any, Optional[Dict[str, Any]]]


def plan(sweeper, study, fixed: List[str], sweep_dir: Path, retry_failed: bool) -> Tuple[List[Planned], List[int]]:
    """The jobs left to run, and the trial numbers of the jobs kept as they are."""
    import optuna

    states = optuna.trial.TrialState
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    planned: List[Planned] = []
    kept: List[int] = []
    taken = set()
    jobs = [(num, fixed, lost_jobs.job_dir(sweeper.launcher, num, fixed)) for num in range(sweeper.n_trials)]
    records = {num: _record(directory) for num, _, directory in jobs}  # before restarted ones are set aside
    chosen = {num for num, _ in sweep_resume.to_run(jobs, retry_failed)}
    for num, _, _ in jobs:
        record = records[num]
        trial = trials.get((record.get("trial") or {}).get("number", -1))
        running = trial is not None and trial.state == states.RUNNING
        if num not in chosen:
            if trial is not None:
                kept.append(trial.number)
            if running:
                _tell_from_record(study, trial.number, record)
        elif running and record.get("status") != "failed":
            planned.append((num, optuna.trial.Trial(study, trial._trial_id), None))
            taken.add(trial.number)
        elif trial is not None:
            if running:  # a failed job retried: its trial ends as it did
                study.tell(trial.number, state=states.FAIL)
            planned.append((num, None, dict(trial.params)))  # the same parameters, as a new trial
        else:
            planned.append((num, None, None))
    _end_stale(study, trials, taken | set(kept), sweep_dir)
    return planned, kept


def _record(directory: Optional[Path]) -> Dict[str, Any]:
    try:
        record = json.loads((directory / "summary.json").read_text()) if directory else {}
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def _tell_from_record(study, number: int, record: Dict[str, Any]) -> None:
    """A job that ended while its sweeper was gone: its trial is told what its record says."""
    import optuna

    states = optuna.trial.TrialState
    value = (record.get("final") or {}).get(OBJECTIVE)
    if record.get("status") == "completed" and isinstance(value, (int, float)):
        study.tell(number, float(value))
    else:
        study.tell(number, state=states.PRUNED if record.get("status") == "pruned" else states.FAIL)
    log.info("trial %d told from its job's record (%s)", number, record.get("status"))


def _end_stale(study, trials: Dict[int, Any], taken: set, sweep_dir: Path) -> None:
    """This sweep's trials left RUNNING by its killed sweeper, which no job goes on with."""
    import optuna

    for number, trial in trials.items():
        if trial.state == optuna.trial.TrialState.RUNNING and number not in taken \
                and trial.user_attrs.get(SWEEP_ATTR) == str(sweep_dir):
            study.tell(number, state=optuna.trial.TrialState.FAIL)
            log.info("trial %d: its job never recorded a start; told failed", number)
