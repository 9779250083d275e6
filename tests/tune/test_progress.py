"""tune.progress: the live view's counts, driven with the calls Ray makes."""

from __future__ import annotations

from types import SimpleNamespace

from tune.guard import GuardConfig
from tune.progress import SearchProgress, add_listener, remove_listener


def _trial(trial_id: str, status: str, last_result: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=last_result or {})


def _result(i: int, f1: float, ratio: float, final: bool = False) -> dict:
    return {"eval_index": i, "epoch": float(i + 1), "dev_f1": f1, "entity_pred_ratio": ratio, "final": final}


def test_the_trial_ray_completes_counts_as_ended_not_running():
    # Ray calls on_trial_complete while the trial's status is still RUNNING
    # (TuneController.stop_trial sets TERMINATED after it): the last view of a search must
    # not show its last trial running.
    seen = []
    add_listener(seen.append)
    try:
        p = SearchProgress(2, GuardConfig())
        done = _trial("a", "TERMINATED", _result(0, 0.4, 0.1, final=True))
        last = _trial("b", "RUNNING", _result(0, 0.5, 0.1, final=True))
        p.on_trial_complete(0, [done, last], last)
    finally:
        remove_listener(seen.append)
    assert (seen[-1].running, seen[-1].reasons) == (0, {"completed": 2})


def test_a_resumed_search_keeps_the_histories_and_the_best():
    # Ray restores this callback's state with its experiment snapshot (get_state/set_state):
    # a trial that ended collapsed before the resume still counts as collapsed, and the best
    # dev F1 is the search's, not only what was reported since.
    p = SearchProgress(2, GuardConfig())
    good, stuck = _trial("good", "RUNNING"), _trial("stuck", "RUNNING")
    for i in range(3):
        p.on_trial_result(0, [good, stuck], good, _result(i, 0.5, 0.1))
        p.on_trial_result(0, [good, stuck], stuck, _result(i, 0.0, 0.0))
    resumed = SearchProgress(2, GuardConfig())  # as pickled when the search started
    resumed.set_state(p.get_state())
    snap = resumed.snapshot([_trial("good", "RUNNING"), _trial("stuck", "TERMINATED", _result(2, 0.0, 0.0))])
    assert snap.reasons == {"collapsed": 1}
    assert (snap.best_f1, snap.best_trial) == (0.5, "good")


def test_a_diverged_trials_stand_in_f1_is_no_best():
    # A diverged trial reports dev F1 0 for ASHA and the searcher; the live view showed it as
    # "best dev F1 0.0000" while the summary said no trial reported a result.
    p = SearchProgress(1, GuardConfig())
    t = _trial("d", "RUNNING")
    p.on_trial_result(0, [t], t, {"eval_index": 0, "epoch": 0.0, "dev_f1": 0.0, "entity_pred_ratio": 0.0,
                                  "final": True, "stop_reason": "diverged"})
    assert p.best is None
    p.on_trial_result(0, [t], t, _result(0, 0.0, 0.0))
    assert p.best == (0.0, "d", 1.0)


def test_a_tie_for_best_goes_to_the_trial_created_first_as_in_the_tables():
    # The tables list trials in creation order and the summary takes the first of equal
    # bests; the live view took whichever reported first, and then compared Ray's random
    # trial ids, so the two named different trials.
    p = SearchProgress(2, GuardConfig())
    early = SimpleNamespace(trial_id="f00d", status="RUNNING", last_result={}, experiment_tag="1_lr=0.1")
    late = SimpleNamespace(trial_id="0abc", status="RUNNING", last_result={}, experiment_tag="2_lr=0.2")
    p.on_trial_result(0, [early, late], late, _result(0, 0.5, 0.1))
    p.on_trial_result(0, [early, late], early, _result(1, 0.5, 0.1))
    assert p.best == (0.5, "f00d", 2.0)
    p.on_trial_result(0, [early, late], late, _result(1, 0.5, 0.1))
    assert p.best == (0.5, "f00d", 2.0)
    resumed = SearchProgress(2, GuardConfig())
    resumed.set_state(p.get_state())
    resumed.on_trial_result(0, [early, late], late, _result(2, 0.5, 0.1))
    assert resumed.best == (0.5, "f00d", 2.0)


def test_a_trial_that_trains_again_is_judged_on_its_new_run_only():
    # Retrained from the start (a damaged checkpoint), a trial reports evaluation 0 again: the
    # first run's later evaluations stayed in the view's history, and an ASHA stop after
    # .3 .3 0 (the tables' and the scheduler's history) showed live as `collapsed` (.3 .3 0 0).
    guard = GuardConfig(grace=0, patience=2, eps=0.005, min_rise=None)
    p = SearchProgress(1, guard)
    t = _trial("r", "RUNNING")
    for i, ratio in enumerate((0.3, 0.3, 0.3, 0.0)):
        p.on_trial_result(0, [t], t, _result(i, 0.2, ratio))
    for i, ratio in enumerate((0.3, 0.3, 0.0)):
        p.on_trial_result(0, [t], t, _result(i, 0.2, ratio))
    assert p.ratios["r"] == {0: 0.3, 1: 0.3, 2: 0.0}
    assert p.snapshot([_trial("r", "TERMINATED", _result(2, 0.2, 0.0))]).reasons == {"asha": 1}
