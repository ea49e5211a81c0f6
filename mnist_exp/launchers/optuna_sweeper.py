"""hydra-optuna-sweeper, made to propose new trials when a stored study is resumed.

The plugin builds its sampler afresh from the config on every invocation, so a study kept in
sqlite and run again draws from the same seeded state and proposes exactly the trials it
already ran. This sweeper gives the sampler's generators a state derived from the configured
seed and the number of trials the study already holds: a resumed study proposes new trials,
and the same sequence of invocations still proposes the same ones.
"""

import logging
from typing import List

import numpy as np
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as PluginSweeper

log = logging.getLogger(__name__)


class OptunaSweeper(PluginSweeper):
    def sweep(self, arguments: List[str]) -> None:
        impl = self.sweeper
        done = _trials_stored(impl.storage, impl.study_name)
        if done:
            _advance(impl.sampler, done)
        try:
            return super().sweep(arguments)
        except ValueError as e:  # the plugin asks for the best trial of a search in which none completed
            if "No trials are completed" not in str(e):
                raise
            log.warning("no trial completed, so there is no best one (each job's record says why)")


def _trials_stored(storage, study_name) -> int:
    if not storage or not study_name:
        return 0
    import optuna

    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:  # no such study yet
        return 0


def _advance(sampler, done: int) -> None:
    """Reseed the sampler's generators (TPE's and its random fallback's, optuna 2.x) from their
    own seeded state and the count of stored trials."""
    for owner in (sampler, getattr(sampler, "_random_sampler", None)):
        rng = getattr(owner, "_rng", None)
        if isinstance(rng, np.random.RandomState):
            owner._rng = np.random.RandomState([int(rng.randint(0, 2**31 - 1)), done])
