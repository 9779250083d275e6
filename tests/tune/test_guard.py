"""The collapse guard: transient early collapse survives; persistent collapse is stopped."""

from __future__ import annotations

import pytest

from tune.guard import GuardConfig, collapse_index
from tune.stop_reasons import entity_prob_history, ratio_history, stop_reason

DEFAULT = GuardConfig()


def test_transient_first_epoch_collapse_is_not_stopped():
    # The measured real case: all-'O' after epoch 1, recovered by epoch 3 (F1 0.42).
    assert collapse_index([0.0, 0.0, 0.031, 0.05], DEFAULT) is None
    assert collapse_index([0.0, 0.02, 0.0, 0.05], DEFAULT) is None


def test_persistent_collapse_stops_after_grace_plus_patience():
    # grace 1 + patience 2: the third all-'O' evaluation in a row fires.
    assert collapse_index([0.0, 0.0, 0.0, 0.0], DEFAULT) == 2
    assert collapse_index([0.2, 0.001, 0.003], DEFAULT) == 2


def test_a_ratio_at_eps_is_not_collapsed():
    # "below eps": a model predicting entities at exactly eps (0.5% of tokens) is not all-'O'.
    assert collapse_index([0.005] * 4, DEFAULT) is None
    assert collapse_index([0.0049] * 4, DEFAULT) == 2


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


def test_collapsed_but_learning_entities_is_spared():
    # All-'O' argmax at every evaluation, but the gold-entity probability climbs after
    # epoch 2: the edge-of-collapse trials that came back (RESULTS.md §5) looked like this
    # (0.28 -> 0.50 at the judged evaluation). The run of collapsed evaluations restarts.
    ratios = [0.0, 0.0, 0.0, 0.0, 0.0]
    assert collapse_index(ratios, DEFAULT, [0.43, 0.28, 0.50, 0.55, 0.56]) is None
    # Rising once and then flat: the guard fires after `patience` stuck evaluations again.
    assert collapse_index(ratios, DEFAULT, [0.43, 0.28, 0.50, 0.50, 0.49]) == 4
    # Falling, as the trials that stayed all-'O' did (0.38 -> 0.05 -> 0.04): stopped as before.
    assert collapse_index(ratios, DEFAULT, [0.38, 0.05, 0.04, 0.035, 0.034]) == 2


def test_a_rise_below_min_rise_spares_nothing():
    # Plateaued trials drift by 1e-4..1e-3 between evaluations; that is not learning.
    assert collapse_index([0.0, 0.0, 0.0], DEFAULT, [0.0229, 0.0219, 0.0220]) == 2
    assert collapse_index([0.0, 0.0, 0.0], DEFAULT, [0.10, 0.10, 0.109]) == 2
    assert collapse_index([0.0, 0.0, 0.0], DEFAULT, [0.10, 0.10, 0.111]) is None
    assert collapse_index([0.0, 0.0, 0.0], GuardConfig(min_rise=0.05), [0.10, 0.10, 0.14]) == 2


def test_without_entity_probabilities_the_ratio_alone_decides():
    # Results from before gold_entity_prob existed (None), no probabilities at all, or
    # min_rise None: the old rule, evaluation for evaluation.
    rising = [0.1, 0.3, 0.6]
    assert collapse_index([0.0, 0.0, 0.0], DEFAULT, [None, None, None]) == 2
    assert collapse_index([0.0, 0.0, 0.0], DEFAULT, [0.1, None, 0.6]) == 2
    assert collapse_index([0.0, 0.0, 0.0], DEFAULT) == 2
    assert collapse_index([0.0, 0.0, 0.0], GuardConfig(min_rise=None), rising) == 2
    # A rising probability never matters while the ratio is above eps.
    assert collapse_index([0.2, 0.3, 0.4], DEFAULT, [0.9, 0.5, 0.1]) is None


@pytest.mark.parametrize("bad", [0, 0.0, 1.0, -0.1, True, "0.01"])
def test_bad_min_rise_raises(bad):
    with pytest.raises(ValueError, match=r"collapse_guard.min_rise is .*, but must be a number in \(0, 1\)"):
        GuardConfig(min_rise=bad)


def test_stop_reason_uses_the_entity_probabilities():
    # The trial tables explain a stop with the same rule the scheduler applied.
    assert stop_reason("TERMINATED", {}, [0.0, 0.0, 0.0], DEFAULT, [0.4, 0.2, 0.45]) == "asha"
    assert stop_reason("TERMINATED", {}, [0.0, 0.0, 0.0], DEFAULT, [0.4, 0.2, 0.15]) == "collapsed"


def test_entity_prob_history_aligns_with_ratio_history():
    # Last report per evaluation wins; a missing or NaN probability (an older search's
    # rows, read back through pandas) is None.
    results = [{"eval_index": 0, "entity_pred_ratio": 0.0, "gold_entity_prob": 0.3},
               {"eval_index": 1, "entity_pred_ratio": 0.0, "gold_entity_prob": float("nan")},
               {"eval_index": 1, "entity_pred_ratio": 0.0, "gold_entity_prob": 0.2},
               {"eval_index": 2, "entity_pred_ratio": 0.0}]
    assert ratio_history(results) == [0.0, 0.0, 0.0]
    assert entity_prob_history(results) == [0.3, 0.2, None]
    assert entity_prob_history([{"eval_index": 0, "entity_pred_ratio": 0.0, "gold_entity_prob": float("nan")}]) == [None]


def test_a_rise_of_exactly_min_rise_spares():
    # 0.21 - 0.20 is 0.00999... in floating point; the documented ">= min_rise" still holds.
    assert collapse_index([0.0, 0.0, 0.0], DEFAULT, [0.30, 0.20, 0.21]) is None
