"""The collapse guard: transient early collapse survives; persistent collapse is stopped."""

from __future__ import annotations

import pytest

from tune.guard import GuardConfig, collapse_index
from tune.stop_reasons import ratio_history, stop_reason

DEFAULT = GuardConfig()


def test_transient_first_epoch_collapse_is_not_stopped():
    # The measured real case: all-'O' after epoch 1, recovered by epoch 3 (F1 0.42).
    assert collapse_index([0.0, 0.0, 0.031, 0.05], DEFAULT) is None
    assert collapse_index([0.0, 0.02, 0.0, 0.05], DEFAULT) is None


def test_persistent_collapse_stops_after_grace_plus_patience():
    # grace 1 + patience 2: the third all-'O' evaluation in a row fires.
    assert collapse_index([0.0, 0.0, 0.0, 0.0], DEFAULT) == 2
    assert collapse_index([0.2, 0.001, 0.003], DEFAULT) == 2


def test_disabled_guard_never_fires():
    # A disabled guard (the seed recipe) reports whatever the recipe does.
    assert collapse_index([0.0] * 10, GuardConfig(enabled=False)) is None


@pytest.mark.parametrize("kwargs", [{"eps": -0.1}, {"grace": -1}, {"patience": 0}, {"patience": 1.5}])
def test_bad_guard_settings_raise(kwargs):
    # Guard settings are validated with the value and the allowed range.
    with pytest.raises(ValueError, match="collapse_guard"):
        GuardConfig(**kwargs)


def test_stop_reason_precedence():
    # error > diverged > completed > collapsed > asha; unfinished trials have no reason.
    collapsed = [0.0, 0.0, 0.0]
    assert stop_reason("ERROR", {"final": True}, [], DEFAULT) == "error"
    assert stop_reason("TERMINATED", {"stop_reason": "diverged", "final": True}, [], DEFAULT) == "diverged"
    assert stop_reason("TERMINATED", {"final": True}, collapsed, DEFAULT) == "completed"
    assert stop_reason("TERMINATED", {}, collapsed, DEFAULT) == "collapsed"
    assert stop_reason("TERMINATED", {}, [0.2, 0.3], DEFAULT) == "asha"
    assert stop_reason("RUNNING", {}, [], DEFAULT) == ""


def test_ratio_history_keeps_last_report_of_each_evaluation():
    # A trial restored from a checkpoint may report an evaluation again: it counts once.
    results = [{"eval_index": 0, "entity_pred_ratio": 0.0}, {"eval_index": 1, "entity_pred_ratio": 0.1},
               {"eval_index": 1, "entity_pred_ratio": 0.2}, {"eval_index": 2, "entity_pred_ratio": 0.3}]
    assert ratio_history(results) == [0.0, 0.2, 0.3]
