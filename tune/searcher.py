"""Ray's OptunaSearch, made safe to resume when the study is ahead of Ray's snapshot.

The study lives in ``optuna.db`` and is written at once, but Ray's experiment state
(and this searcher's state in it) is a snapshot taken between results and copied to
storage in the background, so it can trail the study. If the
driver dies after a trial finished, but before the next snapshot, the study holds
that trial as COMPLETE while the restored experiment holds it as still running. Ray
then restarts the trial from its last checkpoint and replays the evaluations after
that checkpoint. Reporting a replayed evaluation to the finished study trial raises
``UpdateFinishedTrialError`` inside Ray's controller and ends the resumed search
(seen in tests/tune/test_cluster.py's killed-driver test).

The study trial keeps the value it already has. Exact resume means the replayed
evaluation is the same one, from the same checkpoint, so nothing is lost by
skipping it. For the same reason Optuna's warning that a replayed step "is already
reported" (the trial was still running in the study) is expected after a resume and
is not shown.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)


class ResumableOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that skips results for study trials that are already finished."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"The reported value is ignored because this `step=",
                                        category=UserWarning)
                super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.info("trial %s: its study trial finished before the driver's last snapshot; "
                        "the replayed evaluation is not reported again", trial_id)
