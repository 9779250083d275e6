"""Tests for nerkit.metrics: entity scores against seqeval, token-level collapse signals."""

from __future__ import annotations

import random

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from nerkit.labels import LabelMap
from nerkit.metrics import IGNORE, entity_metrics, evaluation_metrics

TAGS = ["O", "O", "O", "B-FOOD", "I-FOOD", "B-LOC", "I-LOC", "B-QTY", "I-QTY"]
LM = LabelMap.from_types(["FOOD", "LOC"])  # O, B-FOOD, I-FOOD, B-LOC, I-LOC
STRICT = dict(mode="strict", scheme=IOB2, zero_division=0)


def test_doc_example():
    # A perfect prediction scores 1 for the entity and 0 entities predicted where none exist.
    m = entity_metrics([["B-FOOD", "I-FOOD", "O"]], [["B-FOOD", "I-FOOD", "O"]])
    assert (m["precision"], m["recall"], m["f1"], m["macro_f1"]) == (1.0, 1.0, 1.0, 1.0)
    assert m["per_type"] == {"FOOD": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # seqeval's averages over zero types
def test_matches_seqeval_strict_on_random_sequences():
    # Micro P/R/F1 and per-type scores equal seqeval's strict IOB2 ones, ill-formed tags included.
    rng = random.Random(7)
    for _ in range(300):
        gold = [[rng.choice(TAGS) for _ in range(rng.randint(0, 9))] for _ in range(rng.randint(1, 5))]
        pred = [[rng.choice(TAGS) for _ in seq] for seq in gold]
        m = entity_metrics(gold, pred)
        assert m["precision"] == pytest.approx(precision_score(gold, pred, **STRICT), abs=1e-12)
        assert m["recall"] == pytest.approx(recall_score(gold, pred, **STRICT), abs=1e-12)
        assert m["f1"] == pytest.approx(f1_score(gold, pred, **STRICT), abs=1e-12)
        report = classification_report(gold, pred, output_dict=True, **STRICT)
        ref = {t: v for t, v in report.items() if not t.endswith(" avg")}
        assert set(m["per_type"]) == set(ref)
        for etype, v in ref.items():
            mine = m["per_type"][etype]
            assert (mine["precision"], mine["recall"], mine["f1"], mine["support"]) == pytest.approx(
                (v["precision"], v["recall"], v["f1-score"], v["support"]), abs=1e-12)


def test_strict_mode_rejects_ill_formed_entity():
    # An I- start is not an entity in strict IOB2, so it neither matches nor counts as predicted.
    m = entity_metrics([["B-FOOD", "I-FOOD"]], [["I-FOOD", "I-FOOD"]])
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
    assert m["per_type"]["FOOD"]["support"] == 1


def test_macro_f1_averages_gold_types():
    # macro_f1 averages per-type F1 over types present in gold (FOOD 1.0, LOC 0.0 → 0.5).
    gold = [["B-FOOD", "O", "B-LOC"]]
    pred = [["B-FOOD", "O", "O"]]
    assert entity_metrics(gold, pred)["macro_f1"] == pytest.approx(0.5)


def test_length_mismatch_raises():
    # Different numbers of gold and predicted sequences is an error naming both counts.
    with pytest.raises(ValueError, match="2 gold sequences but 1 predicted"):
        entity_metrics([["O"], ["O"]], [["O"]])


def test_evaluation_metrics_drops_ignored_positions():
    # -100 positions are skipped: predictions there change nothing; accuracy is over counted tokens.
    labels = [[IGNORE, 1, 2, IGNORE, 0, 0, IGNORE], [IGNORE, 3, IGNORE, 0, IGNORE]]
    preds = [[3, 1, 2, 1, 0, 1, 4], [0, 3, 2, 0, 1]]
    m = evaluation_metrics(labels, preds, LM)
    assert m["counted_tokens"] == 6
    # gold FOOD, LOC; predicted FOOD, FOOD, LOC (the B-LOC/I-LOC at -100 positions are dropped)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert m["token_accuracy"] == pytest.approx(5 / 6)
    assert m["entity_pred_ratio"] == pytest.approx(4 / 6)
    assert m["gold_entity_ratio"] == pytest.approx(3 / 6)
    assert m["collapsed"] is False


def test_all_o_predictions_are_collapse():
    # Predicting O everywhere: F1 0, entity_pred_ratio 0, collapsed, accuracy = O's share.
    labels = [[IGNORE, 0, 0, 1, 2, 0, IGNORE], [IGNORE, 3, 4, 0, 0, IGNORE]]
    preds = [[0] * len(row) for row in labels]
    m = evaluation_metrics(labels, preds, LM)
    assert (m["f1"], m["precision"], m["recall"], m["entity_pred_ratio"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["collapsed"] is True
    assert m["token_accuracy"] == pytest.approx(5 / 9)
    assert m["gold_entity_ratio"] == pytest.approx(4 / 9)


def test_collapse_threshold():
    # collapsed is entity_pred_ratio < collapse_eps: 1 entity token in 10 is collapse under 0.2 only.
    labels = [[0] * 9 + [1]]
    preds = [[0] * 9 + [1]]
    assert evaluation_metrics(labels, preds, LM, collapse_eps=0.2)["collapsed"] is True
    assert evaluation_metrics(labels, preds, LM, collapse_eps=0.1)["collapsed"] is False
