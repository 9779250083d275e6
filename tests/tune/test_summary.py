"""Tests for tune.summary: the end-of-search summary of a search's trial table.

A real search's summary is checked in tests/tune/test_search.py; these build the table by
hand to reach states one short search does not give (trials still running, never started).
"""

from __future__ import annotations

import tune.summary
from tune.tables import TrialTables


def _row(trial_id, status, stop_reason, best_dev_f1):
    return {"trial_id": trial_id, "status": status, "stop_reason": stop_reason, "baseline": "",
            "best_dev_f1": best_dev_f1, "best_epoch": 1.0, "best_entity_pred_ratio": 0.2, "entity_o_ratio": 2.0,
            "config": "{}", "checkpoint": "", "best_eval_index": 0}


def test_an_interrupted_search_counts_its_unfinished_and_never_started_trials(monkeypatch):
    # 5 trials planned, 3 created, one of them still RUNNING (no stop reason yet): the
    # summary calls it "unfinished", as `nerkit trials` does (not an empty reason), and
    # counts the 2 planned trials the search never started.
    tables = TrialTables("runs/s", {"settings": {"trials": 5}, "space": {"params": []}},
                         [_row("a", "TERMINATED", "completed", 0.5), _row("b", "RUNNING", "", 0.4),
                          _row("c", "TERMINATED", "asha", None)], [])
    # collect() reads a Ray experiment directory; the table it would return is given here.
    monkeypatch.setattr(tune.summary, "collect", lambda path: tables)
    summary = tune.summary.summarize("s", "runs")
    assert (summary["trials"], summary["trials_planned"]) == (3, 5)
    assert summary["reasons"] == {"completed": 1, "unfinished": 1, "asha": 1}
    assert summary["unfinished"] == {"stopped": 1, "not_started": 2}
    assert summary["best"]["trial_id"] == "a"


def test_a_checkpoint_of_another_evaluation_as_good_as_the_best_is_not_called_worse(monkeypatch):
    # With --checkpoint-every N the best evaluation (4) can lack a checkpoint while a later one
    # (5) ties it. The table row passed; the summary's best, read as if its best F1 were 1.0,
    # had `nerkit search` print "not the best one".
    row = {**_row("a", "TERMINATED", "completed", 0.1043), "checkpoint": "runs/s/trial_a/checkpoint_000001",
           "best_eval_index": 4, "checkpoint_eval_index": 5, "checkpoint_dev_f1": 0.1043}
    tables = TrialTables("runs/s", {"settings": {"trials": 1}, "space": {"params": []}}, [row], [])
    monkeypatch.setattr(tune.summary, "collect", lambda path: tables)
    best = tune.summary.summarize("s", "runs")["best"]
    assert tune.summary.checkpoint_not_best(row) is None
    assert tune.summary.checkpoint_not_best(best) is None
    worse = {**best, "checkpoint_dev_f1": 0.09}
    assert tune.summary.checkpoint_not_best(worse) == "evaluation 5 (dev F1 0.0900), not the best one (4)"
