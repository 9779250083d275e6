"""GuardedASHA: the collapse guard's verdict, applied to live results, before ASHA's."""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace

import pyarrow.fs as pafs
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

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


def _restored(tmp_path, trial_id: str, results: list[dict], status: str) -> SimpleNamespace:
    # A trial as Ray hands it back on resume: its result log on storage, its last result.
    d = tmp_path / trial_id
    d.mkdir()
    (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in results))
    storage = SimpleNamespace(trial_fs_path=d.as_posix(), storage_filesystem=pafs.LocalFileSystem())
    return SimpleNamespace(trial_id=trial_id, status=status, has_reported_at_least_once=True,
                           last_result=results[-1], storage=storage)


def test_a_resumed_search_judges_a_restored_trial_on_its_whole_history(tmp_path):
    # Ray saves no scheduler state: a resumed search starts from the scheduler pickled when
    # the search began. A trial all-'O' at evaluations 0 and 1 (gold_entity_prob falling)
    # that resumes at 2, still all-'O', is stopped there as the rule says (and as the trial
    # table explains it), not after grace and patience over again (evaluation 4).
    s = _scheduler()
    t = _restored(tmp_path, "t", [_result(0, 0.0, 0.5), _result(1, 0.0, 0.3)], "PENDING")
    s.on_trial_add(None, t)
    assert s.on_trial_result(None, t, _result(2, 0.0, 0.2)) == TrialScheduler.STOP
    assert s.ratios["t"] == [0.0, 0.0, 0.0] and s.collapsed == {"t"}


def test_a_resumed_search_keeps_asha_rung_scores(tmp_path):
    # Trials that ended before the resume still set the rungs' cut-offs: a new trial gets the
    # decisions Ray's own ASHA gives it after seeing every result live (rung 1 holds 0.5,
    # 0.6 and 0.7: the top half goes on).
    def results(f1s, final):
        return [{"eval_index": i, TIME_ATTR: float(i + 1), "dev_f1": f, "entity_pred_ratio": 0.2,
                 "final": final and i == len(f1s) - 1} for i, f in enumerate(f1s)]

    ended = {"a": results([0.5, 0.6, 0.7, 0.8], True), "b": results([0.6, 0.7], False), "c": results([0.7], False)}
    decisions = []
    for n, new_f1 in enumerate((0.1, 0.65, 0.9)):
        ray_asha = ASHAScheduler(time_attr=TIME_ATTR, metric="dev_f1", mode="max", max_t=4, grace_period=1,
                                 reduction_factor=2)
        resumed = GuardedASHA(GuardConfig(), max_t=4, grace_period=1, reduction_factor=2)
        (tmp_path / str(n)).mkdir()
        for tid, rs in ended.items():
            live = SimpleNamespace(trial_id=tid)
            ray_asha.on_trial_add(None, live)
            for r in rs:
                ray_asha.on_trial_result(None, live, r)
            ray_asha.on_trial_complete(None, live, rs[-1])
            resumed.on_trial_add(None, _restored(tmp_path / str(n), tid, rs, "TERMINATED"))
        new, first = SimpleNamespace(trial_id="new"), results([new_f1], False)[0]
        ray_asha.on_trial_add(None, new)
        resumed.on_trial_add(None, new)
        decisions.append(resumed.on_trial_result(None, new, dict(first)))
        assert decisions[-1] == ray_asha.on_trial_result(None, new, dict(first))
    assert decisions == [TrialScheduler.STOP, TrialScheduler.CONTINUE, TrialScheduler.CONTINUE]


def test_fractional_grace_rungs_meet_the_evaluation_at_their_epoch():
    # grace 0.1 × factor 3 is 0.30000000000000004 in floats; trials report epoch 0.3,
    # so without rounding the rung at 0.3 judged the trial one evaluation late.
    s = GuardedASHA(GuardConfig(), max_t=2, grace_period=0.1, reduction_factor=3)
    assert [m for m, _ in s._brackets[0]._rungs] == [0.9, 0.3, 0.1]
    t = SimpleNamespace(trial_id="t")
    s.on_trial_add(None, t)
    for i, epoch in enumerate((0.1, 0.2, 0.3)):
        s.on_trial_result(None, t, {"eval_index": i, TIME_ATTR: epoch, "dev_f1": 0.5, "entity_pred_ratio": 0.1})
    assert "t" in dict(s._brackets[0]._rungs)[0.3]


def test_asha_budgets_in_epochs_not_reports():
    # ASHA's time is the epoch a result reports, not how many results came before it: a
    # trial evaluating 4 times per epoch (eval_every_steps) meets the rung at epoch 1 with
    # its 4th report, not its 1st. Counting reports (training_iteration) would judge
    # frequent evaluators after a quarter of the compute.
    assert TIME_ATTR == "epoch"
    s = GuardedASHA(GuardConfig(), max_t=4, grace_period=1, reduction_factor=2)
    for tid, f1 in (("a", 0.9), ("b", 0.1)):
        t = SimpleNamespace(trial_id=tid)
        s.on_trial_add(None, t)
        for i in range(4):
            s.on_trial_result(None, t, {"eval_index": i, "training_iteration": i + 1, "epoch": 0.25 * (i + 1),
                                        "dev_f1": f1, "entity_pred_ratio": 0.2})
    rungs = dict(s._brackets[0]._rungs)
    assert sorted(rungs) == [1, 2, 4]
    assert set(rungs[1.0]) == {"a", "b"}  # recorded when epoch reached 1, after 4 reports each
    assert not rungs[2.0]  # one epoch trained: no trial has reached the rung at 2


def test_a_final_evaluation_is_never_stopped_by_the_guard():
    # A trial's last evaluation ends it anyway: a guard STOP there would mark it collapsed
    # while its stop reason says completed, and ASHA would never record its score.
    s = _scheduler()
    t = SimpleNamespace(trial_id="t")
    s.on_trial_add(None, t)
    _decisions(s, t, [(0, 0.0, None), (1, 0.0, None)])
    last = {**_result(2, 0.0, None), "final": True}
    assert s.on_trial_result(None, t, last) == TrialScheduler.CONTINUE
    assert s.collapsed == set()
