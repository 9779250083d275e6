"""ASHA with the collapse guard in front of it.

Ray's scheduler plugs in through one return value of ``on_trial_result``: CONTINUE
or STOP. This subclass asks the guard first (tune.guard.collapse_index on the trial's
``entity_pred_ratio`` history) and otherwise defers to ASHA (Li et al. 2018,
"A System for Massively Parallel Hyperparameter Tuning", arXiv:1810.05934). It is
the only place this project touches Ray's scheduler hooks.

Ray does not save a scheduler with its experiment snapshots, so a resumed search
rebuilds this one's state (ASHA's rung scores, the guard's histories) from the
result logs of the trials Ray restores (``GuardedASHA.replay``).
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from nerkit.config import EPOCH_DECIMALS
from tune.guard import GuardConfig, collapse_index
from tune.result_logs import logged_results
from tune.settings import METRIC
from tune.stop_reasons import entity_prob_history, ratio_history, stop_reason

#: ASHA's time attribute: epochs (fractional), i.e. passes over the training data.
#: Unlike training_iteration or optimizer steps, an epoch costs the same compute for
#: every batch size, so batch-size variants meet ASHA's rungs on equal terms.
TIME_ATTR = "epoch"


class GuardedASHA(ASHAScheduler):
    """ASHA on dev F1 (max) that also stops trials the collapse guard condemns."""

    def __init__(self, guard: GuardConfig, *, max_t: float, grace_period: float, reduction_factor: float) -> None:
        super().__init__(
            time_attr=TIME_ATTR, metric=METRIC, mode="max", max_t=max_t,
            grace_period=grace_period, reduction_factor=reduction_factor,
        )
        # Ray's rungs are grace × factor^k in floats: grace 0.1, factor 3 gives a rung
        # at 0.30000000000000004, which the evaluation at epoch 0.3 misses (its result
        # was judged one evaluation late). Trials report epochs rounded to EPOCH_DECIMALS.
        for bracket in self._brackets:
            bracket._rungs = [(round(m, EPOCH_DECIMALS), recorded) for m, recorded in bracket._rungs]
        self.guard = guard
        self.ratios: dict[str, list[float]] = {}
        self.entity_probs: dict[str, list[float | None]] = {}
        self.collapsed: set[str] = set()

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        # Ray saves no scheduler with its experiment snapshots (ray-project/ray#30838): a
        # resumed search gets the one pickled in tuner.pkl when the search started, with
        # no rung scores and no guard histories, and its restored trials come back through
        # here. Without their past, ASHA's rungs start empty and the guard counts a resumed
        # trial's evaluations from wherever it resumed (grace and patience over again).
        if getattr(trial, "has_reported_at_least_once", False):
            self.replay(trial, logged_results(trial))

    def replay(self, trial, results: list[dict]) -> None:
        """Take in the past ``results`` of a restored ``trial``, as if they had just been reported.

        ASHA records each trial's first score past each rung whatever it decides, so
        replaying the results (the decisions were made then) rebuilds the rungs; a trial
        that has ended is completed again, as Ray did. The guard's histories are the ones
        tune.stop_reasons reads from the same log.
        """
        for result in results:
            super().on_trial_result(None, trial, result)
        self.ratios[trial.trial_id] = ratio_history(results)
        self._probs()[trial.trial_id] = entity_prob_history(results)
        if trial.status == "TERMINATED" and results:
            super().on_trial_complete(None, trial, results[-1])
            if stop_reason(trial.status, results[-1], self.ratios[trial.trial_id], self.guard,
                           self.entity_probs[trial.trial_id]) == "collapsed":
                self.collapsed.add(trial.trial_id)

    def _probs(self) -> dict[str, list[float | None]]:
        # A scheduler pickled before gold_entity_prob existed (a resumed search) has
        # no entity_probs; its earlier evaluations count as unreported.
        if not hasattr(self, "entity_probs"):
            self.entity_probs = {}
        return self.entity_probs

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if "entity_pred_ratio" in result and "eval_index" in result:
            # Indexed by evaluation, so a trial restored from a checkpoint that reports
            # an evaluation again overwrites it instead of counting it twice.
            history = self.ratios.setdefault(trial.trial_id, [])
            del history[result["eval_index"]:]
            history.append(result["entity_pred_ratio"])
            probs = self._probs().setdefault(trial.trial_id, [])
            probs.extend([None] * (len(history) - len(probs)))
            del probs[len(history):]
            probs[-1] = result.get("gold_entity_prob")
            if not result.get("final") and collapse_index(history, self.guard, probs) is not None:
                self.collapsed.add(trial.trial_id)
                return TrialScheduler.STOP
        return super().on_trial_result(tune_controller, trial, result)
