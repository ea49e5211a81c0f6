"""A study that knows its setting: opened (or created) with the fixed config and data set it
searches under, refused when continued under others, and its results written for the sweep."""

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf

from hydra_plugins.mnist_exp_launchers.optuna_trial import OBJECTIVE
from mnist_exp.config import DATA_LOCATION, RUN_KEYS
from mnist_exp.errors import ConfigError

log = logging.getLogger(__name__)
SETTING = "mnist_exp_setting"  # the study's user attribute holding it
DEFAULT_SAMPLER = {"_target_": "optuna.samplers.TPESampler"}


def setting(task: Dict[str, Any], space: Dict[str, Any]) -> Dict[str, Any]:
    """What the study's values depend on besides the searched keys: every other config key
    (dotted), the data set's name, files and checksums, and the objective. Where the data is
    read from, the run's name, tags and resume= are not part of it."""
    flat = _flatten({k: v for k, v in task.items() if k not in RUN_KEYS})
    location = {f"data.{key}" for key in DATA_LOCATION}
    fixed = {k: v for k, v in flat.items() if k not in space and k not in location}
    return {"fixed": fixed, "searched": sorted(space), "objective": f"final_{OBJECTIVE}"}


def _flatten(node: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def open_study(storage: str, name: str, direction: str, sampler_cfg: Optional[dict], pruner, wanted: Dict[str, Any]):
    """The study `name` in `storage`, created with `wanted` as its setting, or continued if its
    setting is the same. Its sampler's seed is moved on by the trials it holds, so a continued
    study proposes new trials, and the same sequence of searches the same ones."""
    import optuna

    held = _stored(storage, name)
    if held is not None:
        _check_setting(storage, name, held, wanted)
    try:
        sampler = _sampler(sampler_cfg, len(held["trials"]) if held else 0)
    except Exception as e:  # noqa: BLE001 (a sampler Hydra cannot instantiate, or a bad argument)
        raise ConfigError(f"hydra.sweeper.sampler: {str(e).strip().splitlines()[0]}") from None
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, sampler=sampler,
                                pruner=pruner or optuna.pruners.NopPruner(), load_if_exists=True)
    if held is None:
        study.set_user_attr(SETTING, wanted)
    return study


def _stored(storage: str, name: str) -> Optional[Dict[str, Any]]:
    """{trials, setting} of the stored study, or None when there is none yet."""
    import optuna

    try:
        names = optuna.get_all_study_names(storage)
    except Exception as e:  # noqa: BLE001 (a bad URL, an old schema, no driver: SQLAlchemy's many errors)
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise ConfigError(f"hydra.sweeper.storage={storage}: cannot open it ({first})") from None
    if name not in names:
        return None
    study = optuna.load_study(study_name=name, storage=storage)
    return {"trials": study.get_trials(deepcopy=False), "setting": study.user_attrs.get(SETTING)}


def _check_setting(storage: str, name: str, held: Dict[str, Any], wanted: Dict[str, Any]) -> None:
    """Refuse to add trials of another setting to a study: its best value would mix them."""
    before = held["setting"]
    advice = "give a new hydra.sweeper.study_name (or another storage) to start a study of its own"
    if before is None:
        if held["trials"]:
            raise ConfigError(f"study {name} in {storage} holds {len(held['trials'])} trials of unknown settings "
                              f"(not made by this version of mnist_exp): {advice}")
        return
    ignored = set(before.get("searched", [])) | set(wanted["searched"])
    old, new = before.get("fixed", {}), wanted["fixed"]
    changed = [k for k in sorted(set(old) | set(new)) if k not in ignored and old.get(k) != new.get(k)]
    if before.get("objective") != wanted["objective"]:
        changed.insert(0, "objective")
        old, new = {**old, "objective": before.get("objective")}, {**new, "objective": wanted["objective"]}
    if changed:
        shown = changed[:4]
        then = " ".join(f"{k}={_spelled(old.get(k))}" for k in shown)
        now = " ".join(f"{k}={_spelled(new.get(k))}" for k in shown)
        more = f" (and {len(changed) - 4} more keys)" if len(changed) > 4 else ""
        raise ConfigError(f"study {name} in {storage} searched with {then}, this search has {now}{more}: "
                          f"continue it with the same settings, or {advice}")


def _spelled(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


def _sampler(config: Optional[dict], held: int):
    """The configured sampler (TPE by default); with `held` trials stored, its seed is derived
    from the configured one and that count."""
    import numpy as np
    from hydra.utils import instantiate

    config = dict(config or {})
    config.setdefault("_target_", DEFAULT_SAMPLER["_target_"])
    if held and config.get("seed") is not None:
        config["seed"] = int(np.random.SeedSequence([int(config["seed"]), held]).generate_state(1)[0])
    return instantiate(config)


def save_results(study, path: Path, numbers: List[int]) -> None:
    """optimization_results.yaml: the objective it was chosen by, the best trial, its test
    accuracy beside it (never used to choose), and how this sweep's trials ended."""
    import optuna

    states = optuna.trial.TrialState
    ran = [t for t in study.get_trials(deepcopy=False) if t.number in set(numbers)]
    complete = study.get_trials(deepcopy=False, states=(states.COMPLETE,))
    results: Dict[str, Any] = {
        "name": "optuna", "objective": f"final_{OBJECTIVE}", "direction": study.direction.name.lower(),
        "study_name": study.study_name,
        "trials": {state: sum(t.state.name.lower() == state for t in ran) for state in ("complete", "pruned", "fail")},
        "study_trials": len(study.get_trials(deepcopy=False)),
    }
    if complete:
        best = study.best_trial
        results.update(best_trial=best.number, best_params=best.params, best_value=best.value,
                       best_test_accuracy=best.user_attrs.get("test_accuracy"), best_run_dir=best.user_attrs.get("run_dir"))
        log.info("best trial %d: %s = %s with %s", best.number, results["objective"], best.value, best.params)
    else:
        log.warning("no trial completed, so there is no best one (each job's record says why)")
    OmegaConf.save(OmegaConf.create(results), path)
