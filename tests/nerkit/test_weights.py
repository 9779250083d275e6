"""Tests for nerkit.weights: class-weight strategies, counts, the entity:O ratio, scale invariance."""

from __future__ import annotations

import math

import pytest
import torch

import nerkit.train
from nerkit.config import TrainConfig
from nerkit.data import DataConfig
from nerkit.features import prepare_data
from nerkit.labels import LabelMap
from nerkit.train import train
from nerkit.weights import IGNORE, class_weights, count_labels, entity_o_ratio

LM = LabelMap.from_types(["FOOD", "STORE", "LOC", "QTY", "PREF"])
PUBLISHED = {"O": 5130, "B-FOOD": 460, "I-FOOD": 672, "B-STORE": 194, "I-STORE": 293, "B-LOC": 207,
             "I-LOC": 343, "B-QTY": 106, "I-QTY": 3, "B-PREF": 77, "I-PREF": 84}
COUNTS = [PUBLISHED[label] for label in LM.labels]  # in label-map order


def test_counts_are_in_label_map_order():
    # The published counts line up with the label map and sum to the team's 7,569.
    assert LM.labels == ("O", "B-FOOD", "I-FOOD", "B-LOC", "I-LOC", "B-PREF", "I-PREF",
                         "B-QTY", "I-QTY", "B-STORE", "I-STORE")
    assert sum(COUNTS) == 7569


def test_seed_reproduces_team_numbers_from_their_counts():
    # seed with o_weight 0.5 and boost 3 gives B-FOOD ~4.49 and I-QTY ~688 on a 7,569 total.
    w = dict(zip(LM.labels, class_weights(COUNTS, "seed", o_weight=0.5, entity_boost=3.0)))
    assert w["O"] == 0.5
    assert w["B-FOOD"] == pytest.approx(4.49, abs=0.005)
    assert w["I-QTY"] == pytest.approx(688.1, abs=0.05)
    assert w["B-STORE"] == pytest.approx(3 * 7569 / (11 * 194))


def test_inverse_smoothing_one_half_zero():
    # inverse: smoothing 1 is inverse frequency (O included), 0.5 its square root, 0 uniform.
    k, total = len(COUNTS), sum(COUNTS)
    full = class_weights(COUNTS, "inverse", smoothing=1.0)
    assert full == pytest.approx([total / (k * c) for c in COUNTS])
    assert class_weights(COUNTS, "inverse", smoothing=0.5) == pytest.approx([math.sqrt(w) for w in full])
    assert class_weights(COUNTS, "inverse", smoothing=0.0) == [1.0] * k


def test_effective_weights_of_the_labels_seen_sum_to_their_number():
    # A label absent from training must not move the scale that max_weight caps.
    w = class_weights([100, 10, 0, 5], "effective", beta=0.99)
    assert w[0] + w[1] + w[3] == pytest.approx(3.0)
    assert class_weights([100, 10, 0, 5], "effective", beta=0.99, max_weight=2.0)[1] == \
        pytest.approx(min(2.0, w[1]))


def test_effective_number_weights():
    # effective (Cui et al. 2019): (1-beta)/(1-beta^n), normalised to sum to num_labels.
    beta = 0.99
    w = class_weights(COUNTS, "effective", beta=beta)
    raw = [(1 - beta) / (1 - beta**c) for c in COUNTS]
    assert w == pytest.approx([r * len(COUNTS) / sum(raw) for r in raw])
    assert sum(w) == pytest.approx(len(COUNTS))
    assert w[LM.label2id["I-QTY"]] > w[LM.label2id["B-FOOD"]] > w[0]


def test_none_is_uniform_but_multipliers_apply():
    # none: every base weight 1; o_weight and entity_boost still multiply.
    assert class_weights(COUNTS, "none") == [1.0] * len(COUNTS)
    w = class_weights(COUNTS, "none", o_weight=0.5, entity_boost=2.0)
    assert w == [0.5] + [2.0] * (len(COUNTS) - 1)


def test_max_weight_caps_every_weight():
    # The cap clips I-QTY's 688 to 50 and leaves smaller weights alone.
    w = class_weights(COUNTS, "seed", o_weight=0.5, entity_boost=3.0, max_weight=50.0)
    uncapped = class_weights(COUNTS, "seed", o_weight=0.5, entity_boost=3.0)
    assert max(w) == 50.0
    assert w == [min(x, 50.0) for x in uncapped]


def test_max_weight_caps_the_o_weight_too():
    # "every weight" includes O: a large o_weight (0.55 * 10 here) must not escape the cap
    # that bounds each label's share of the loss.
    w = class_weights([100, 10], "seed", o_weight=10.0, max_weight=5.0)
    assert w[0] == 5.0


def test_target_ratio_sets_entity_o_ratio():
    # target_ratio scales the entity weights so entity_o_ratio equals it exactly.
    for strategy in ("seed", "inverse", "effective", "none"):
        w = class_weights(COUNTS, strategy, target_ratio=4.0)
        assert entity_o_ratio(w, COUNTS) == pytest.approx(4.0)


def test_entity_o_ratio_by_hand():
    # Token-weighted mean entity weight over the O weight: ((2*3 + 4*1) / 4) / 0.5 = 5.
    assert entity_o_ratio([0.5, 2.0, 4.0], [10, 3, 1]) == pytest.approx(5.0)
    assert math.isnan(entity_o_ratio([1.0, 2.0, 2.0], [10, 0, 0]))


def test_count_labels_skips_ignored_positions():
    # Only label ids the loss sees are counted; -100 never is.
    rows = [[IGNORE, 0, 1, IGNORE, 2, IGNORE], [IGNORE, 0, 0, IGNORE]]
    assert count_labels(rows, 3) == [3, 1, 1]


def test_prepared_counts_come_from_non_ignored_labels(tiny_model_dir, small_data_dir):
    # The counts training uses equal a count over the aligned labels without -100.
    prepared = prepare_data(DataConfig(path=str(small_data_dir)), str(tiny_model_dir))
    flat = [y for row in prepared.train.labels for y in row]
    assert sum(prepared.train_counts) == sum(1 for y in flat if y != IGNORE) < len(flat)
    assert list(prepared.train_counts) == [flat.count(i) for i in range(len(prepared.label_map))]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"strategy": "focal"}, "'focal'"),
        ({"o_weight": -1.0}, "-1.0"),
        ({"entity_boost": 0.0}, "0.0"),
        ({"smoothing": 3.0}, "3.0"),
        ({"beta": 1.0}, "1.0"),
        ({"max_weight": -5.0}, "-5.0"),
        ({"target_ratio": -2.0}, "-2.0"),
        ({"target_ratio": 2.0, "o_weight": 0.5}, "0.5"),
    ],
)
def test_bad_values_raise_naming_the_value(kwargs, named):
    # Each out-of-range setting raises a ValueError that quotes the value given.
    with pytest.raises(ValueError) as info:
        class_weights(COUNTS, **kwargs)
    assert named in str(info.value)


def test_degenerate_counts_raise():
    # One label only, or no counted token at all, cannot give weights.
    with pytest.raises(ValueError, match="1 label"):
        class_weights([10])
    with pytest.raises(ValueError, match="none"):
        class_weights([0, 0, 0])


def test_scaling_all_weights_leaves_training_unchanged(tiny_model_dir, small_data_dir, monkeypatch):
    # Training with weights w and with 7*w gives the same losses and parameters (float tolerance).
    # fp32: the invariance is exact arithmetic; bf16 rounding (precision auto on CPUs with
    # bf16 units) would blur it past the tolerance.
    cfg = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), epochs=1,
                      batch_size=16, learning_rate=1e-3, eval_every_steps=2, num_threads=1, precision="fp32",
                      weight_strategy="seed", o_weight=0.5, entity_boost=3.0)
    models, initial = [], []
    real_load = nerkit.train.load_model

    def load_and_keep(*args):
        models.append(real_load(*args))
        initial.append({k: v.clone() for k, v in models[-1].state_dict().items()})
        return models[-1]

    monkeypatch.setattr(nerkit.train, "load_model", load_and_keep)

    def run():
        history = []
        result = train(cfg, report=lambda m, _save: history.append(m))
        return result, history

    base, base_hist = run()
    real_weights = nerkit.train.config_weights
    monkeypatch.setattr(nerkit.train, "config_weights", lambda *a: [7.0 * w for w in real_weights(*a)])
    scaled, scaled_hist = run()

    assert scaled.weights == pytest.approx([7.0 * w for w in base.weights])
    assert scaled.entity_o_ratio == pytest.approx(base.entity_o_ratio)
    assert len(base_hist) == len(scaled_hist) == 5
    for a, b in zip(base_hist, scaled_hist):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["dev_loss"] == pytest.approx(a["dev_loss"], rel=1e-5)
    # On the CPU, where `initial` was cloned: training may have run on a GPU.
    p0, p1 = ({k: v.cpu() for k, v in m.state_dict().items()} for m in models)
    assert not torch.equal(p0["classifier.weight"], initial[0]["classifier.weight"])  # it did train
    for name in p0:
        torch.testing.assert_close(p1[name], p0[name], rtol=1e-4, atol=1e-5)


def test_a_label_absent_from_training_gets_the_mean_entity_weight():
    # Never a training target, but dev and test losses see it: it must not carry the
    # largest weight of all (what count 1 would give it).
    counts = [100, 10, 5, 0, 0]
    for strategy in ("seed", "inverse", "effective"):
        w = class_weights(counts, strategy)
        mean_entity = (w[1] * 10 + w[2] * 5) / 15
        assert w[3] == w[4] == pytest.approx(mean_entity), strategy
        assert entity_o_ratio(w, counts) == pytest.approx(mean_entity / w[0])


def test_max_weight_cannot_move_a_target_ratio():
    with pytest.raises(ValueError, match="cannot be combined"):
        class_weights([100, 10, 5], "seed", max_weight=3.0, target_ratio=2.0)
