"""GuardedASHA: the collapse guard's verdict, applied to live results, before ASHA's."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from tune.guard import GuardConfig
from tune.scheduler import TIME_ATTR, GuardedASHA


def _scheduler() -> GuardedASHA:
    # ASHA's grace equals the budget, so only the guard can stop a trial here.
    return GuardedASHA(GuardConfig(), max_t=5, grace_period=5, reduction_factor=2)


def _result(i: int, ratio: float, prob: float | None) -> dict:
    r = {"eval_index": i, TIME_ATTR: float(i + 1), "dev_f1": 0.0, "entity_pred_ratio": ratio}
    if prob is not None:
        r["gold_entity_prob"] = prob
    return r


def _decisions(s: GuardedASHA, trial, points) -> list[str]:
    return [s.on_trial_result(None, trial, _result(i, r, p)) for i, r, p in points]


def test_collapsed_trial_learning_entities_runs_on_and_a_stuck_one_stops():
    s = _scheduler()
    learning, stuck = SimpleNamespace(trial_id="learning"), SimpleNamespace(trial_id="stuck")
    s.on_trial_add(None, learning)
    s.on_trial_add(None, stuck)
    assert _decisions(s, learning, [(0, 0.0, 0.43), (1, 0.0, 0.28), (2, 0.0, 0.50), (3, 0.0, 0.55)]) == \
        [TrialScheduler.CONTINUE] * 4
    assert _decisions(s, stuck, [(0, 0.0, 0.38), (1, 0.0, 0.05), (2, 0.0, 0.04)]) == \
        [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, TrialScheduler.STOP]
    assert s.collapsed == {"stuck"}


def test_a_reported_again_evaluation_replaces_its_probability():
    # A trial restored from a checkpoint reports evaluation 2 again: the second report's
    # probability is the one judged, against evaluation 1's.
    s = _scheduler()
    t = SimpleNamespace(trial_id="t")
    s.on_trial_add(None, t)
    _decisions(s, t, [(0, 0.0, 0.4), (1, 0.0, 0.2), (2, 0.0, 0.5)])
    assert s.on_trial_result(None, t, _result(2, 0.0, 0.19)) == TrialScheduler.STOP
    assert s.entity_probs["t"] == [0.4, 0.2, 0.19]


def test_scheduler_pickled_before_entity_probs_existed_still_judges():
    # Resuming a search whose scheduler was pickled by an older nerkit: no entity_probs
    # attribute; its earlier evaluations count as unreported (the ratio alone decides them).
    s = _scheduler()
    t = SimpleNamespace(trial_id="t")
    s.on_trial_add(None, t)
    _decisions(s, t, [(0, 0.0, None), (1, 0.0, None)])
    del s.entity_probs
    old = pickle.loads(pickle.dumps(s))
    assert old.on_trial_result(None, t, _result(2, 0.0, 0.6)) == TrialScheduler.STOP  # no earlier prob to rise from
    assert old.entity_probs["t"] == [None, None, 0.6]
