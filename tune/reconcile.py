"""The Optuna study against Ray's restored trials, on resume: a driver killed between
Optuna and Ray's next snapshot leaves trials one knows and the other does not."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tune.stop_reasons import FINISHED
from tune.study_store import live_study_url

if TYPE_CHECKING:
    from tune.driver import SearchPlan

logger = logging.getLogger(__name__)


def _unclaimed(study_trials: list, configs: list[dict[str, Any]]) -> list:
    """The study trials (in number order) that no config claims: each config claims one
    trial whose suggested parameters are exactly its searched values."""
    configs = list(configs)
    unclaimed = []
    for ot in sorted(study_trials, key=lambda t: t.number):
        match = next((i for i, c in enumerate(configs) if c == ot.params), None)
        if match is None:
            unclaimed.append(ot)
        else:
            configs.pop(match)
    return unclaimed


def study_and_ray_trials(plan: SearchPlan, exp: str, study_url: str | None = None):
    """The search's Optuna study (at ``study_url``, by default where this machine keeps
    it), and Ray's restored trials as (status, searched values)."""
    import optuna
    from ray.tune import ExperimentAnalysis

    fixed = {p.name for p in plan.space.params if p.kind == "fixed"}
    study = optuna.load_study(study_name=plan.settings.name, storage=study_url or live_study_url(exp))
    trials = [(t.status, {k: v for k, v in t.config.items() if k not in fixed})
              for t in ExperimentAnalysis(exp).trials]
    return study, trials


def unrecorded_finished_trials(plan: SearchPlan, exp: str, records: tuple | None = None) -> list[int]:
    """Optuna trials that finished but that no trial in Ray's snapshot is: ones that
    started and ended within the snapshot's lag before the driver died (about a second;
    a few seconds when resuming from tune.state_backup's copy). Optuna cannot take a
    finished trial back, and Ray does not know them. ``records``: what
    ``study_and_ray_trials`` returned, when the caller has loaded it already."""
    import optuna

    study, trials = records or study_and_ray_trials(plan, exp)
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [ot.number for ot in _unclaimed(finished, [config for _, config in trials])]


def fail_orphaned_trials(plan: SearchPlan, exp: str, records: tuple | None = None) -> list[int]:
    """Mark Optuna trials that no Ray trial will ever finish as FAIL; return their numbers.

    A driver killed between asking Optuna for a trial and Ray's next experiment
    snapshot leaves that trial RUNNING in the study (with all, some or none of its
    parameters suggested) but absent from Ray's restored state. Left alone it would
    stay RUNNING forever, and with constant_liar TPE keep counting as a pending point.
    Each unfinished Ray trial claims one RUNNING study trial whose suggested
    parameters are exactly its searched values; the unclaimed ones are orphans.
    ``records`` as in ``unrecorded_finished_trials``.
    """
    import optuna

    study, trials = records or study_and_ray_trials(plan, exp)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    unfinished = [config for status, config in trials if status not in FINISHED]
    orphans = [ot.number for ot in _unclaimed(running, unfinished)]
    for number in orphans:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    if orphans:
        logger.warning("marked Optuna trials %s FAIL: asked before the driver died, but not in Ray's last "
                       "snapshot (they started after it), so Ray runs a new trial in each one's place; a "
                       "directory such a trial began on storage stays there, outside the trial table", orphans)
    return orphans
