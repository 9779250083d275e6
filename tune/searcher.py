"""Ray's OptunaSearch, made safe to resume when the study is ahead of Ray's snapshot.

The study lives in ``optuna.db`` and is written at once, but Ray's experiment state
(and this searcher's state in it) is a snapshot taken between results and copied to
storage in the background, so it can trail the study. If the driver dies after a
trial finished, but before the next snapshot, the study holds that trial as COMPLETE
while the restored experiment holds it as still running. Ray then restarts the trial
from its last checkpoint and replays the evaluations after that checkpoint.
Reporting a replayed evaluation to the finished study trial raises
``UpdateFinishedTrialError`` inside Ray's controller and ends the resumed search
(seen in tests/tune/test_cluster.py's killed-driver test).

The study trial keeps the value it already has. Exact resume means the replayed
evaluation is the same one, from the same checkpoint, so nothing is lost by skipping
it. For the same reason, Optuna's warning that a replayed step "is already reported"
(the trial was still running in the study) is expected after a resume and is not
shown.

Ray stores the searcher object, class included, in the experiment's ``tuner.pkl``:
searches started before this class existed resume with Ray's own ``OptunaSearch``,
and this module's path and class name must stay importable for later resumes.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)


class ResumableOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that leaves study trials that already finished as they are."""

    def _finished_state(self, trial_id: str) -> optuna.trial.TrialState | None:
        """The study state of ``trial_id``'s study trial if it has finished, else None."""
        number = self._ot_trials[trial_id].number
        state = next(t.state for t in self._ot_study.get_trials(deepcopy=False) if t.number == number)
        return state if state.is_finished() else None

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"The reported value is ignored because this `step=",
                                        category=UserWarning)
                super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            state = self._finished_state(trial_id)
            # COMPLETE is the expected case (module doc). Any other finished state means
            # the study and Ray disagree in a way this class does not explain; the
            # search still goes on (one trial's bookkeeping is not worth the whole
            # resumed search), but loudly.
            log = logger.info if state == optuna.trial.TrialState.COMPLETE else logger.warning
            log("trial %s: its study trial is already %s (finished before the driver's last snapshot); "
                "the replayed evaluation is not reported again", trial_id, state.name if state else "finished")

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self._completed_trials and trial_id in self._ot_trials:
            state = self._finished_state(trial_id)
            if state is not None:
                # Told before the crash: keep that value (Ray's class would log that it
                # cannot tell a finished trial).
                logger.info("trial %s: its study trial was already %s; kept as it is", trial_id, state.name)
                self._completed_trials.add(trial_id)
                return
        super().on_trial_complete(trial_id, result, error)
