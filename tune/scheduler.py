"""ASHA with the collapse guard in front of it.

Ray's scheduler plugs in through one return value of ``on_trial_result``: CONTINUE
or STOP. This subclass asks the guard first (tune.guard.collapse_index on the trial's
``entity_pred_ratio`` history) and otherwise defers to ASHA (Li et al. 2018,
"A System for Massively Parallel Hyperparameter Tuning", arXiv:1810.05934). It is
the only place this project touches Ray's scheduler hooks.
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from tune.guard import GuardConfig, collapse_index

#: ASHA's time attribute: epochs (fractional), i.e. passes over the training data.
#: Unlike training_iteration or optimizer steps, an epoch costs the same compute for
#: every batch size, so batch-size variants meet ASHA's rungs on equal terms.
TIME_ATTR = "epoch"
METRIC = "dev_f1"


class GuardedASHA(ASHAScheduler):
    """ASHA on dev F1 (max) that also stops trials the collapse guard condemns."""

    def __init__(self, guard: GuardConfig, *, max_t: float, grace_period: float, reduction_factor: float) -> None:
        super().__init__(
            time_attr=TIME_ATTR, metric=METRIC, mode="max", max_t=max_t,
            grace_period=grace_period, reduction_factor=reduction_factor,
        )
        self.guard = guard
        self.ratios: dict[str, list[float]] = {}
        self.entity_probs: dict[str, list[float | None]] = {}
        self.collapsed: set[str] = set()

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if "entity_pred_ratio" in result and "eval_index" in result:
            # Indexed by evaluation, so a trial restored from a checkpoint that reports
            # an evaluation again overwrites it instead of counting it twice.
            history = self.ratios.setdefault(trial.trial_id, [])
            del history[result["eval_index"]:]
            history.append(result["entity_pred_ratio"])
            # A scheduler pickled before gold_entity_prob existed (a resumed search) has
            # no entity_probs; its earlier evaluations count as unreported.
            if not hasattr(self, "entity_probs"):
                self.entity_probs = {}
            probs = self.entity_probs.setdefault(trial.trial_id, [])
            probs.extend([None] * (len(history) - len(probs)))
            del probs[len(history):]
            probs[-1] = result.get("gold_entity_prob")
            if not result.get("final") and collapse_index(history, self.guard, probs) is not None:
                self.collapsed.add(trial.trial_id)
                return TrialScheduler.STOP
        return super().on_trial_result(tune_controller, trial, result)
