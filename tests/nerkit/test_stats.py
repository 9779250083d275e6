"""Tests for nerkit.stats: label counts over counted tokens and the all-O baseline."""

from __future__ import annotations

import pytest

from nerkit.alignment import IGNORE, AlignedSplit
from nerkit.labels import LabelMap
from nerkit.records import Record
from nerkit.stats import format_label_table, label_stats

LM = LabelMap.from_types(["DRINK", "FOOD"])  # O, B-DRINK, I-DRINK, B-FOOD, I-FOOD


def split(*labels):
    return AlignedSplit(input_ids=[], labels=[list(row) for row in labels], word_ids=[], num_truncated=0,
                        num_words_dropped=0)


def test_counts_only_counted_tokens():
    # IGNORE positions are not counted; shares and the baseline follow from the counts.
    aligned = split([IGNORE, 0, 0, 3, IGNORE, 4, IGNORE], [IGNORE, 0, 0, 0, 1, IGNORE])
    records = [Record(("a", "b", "c", "d"), ("O", "O", "B-FOOD", "I-FOOD")), Record(("x",), ("O",))]
    stats = label_stats(aligned, LM, records)
    assert stats.counts == {"O": 5, "B-DRINK": 1, "I-DRINK": 0, "B-FOOD": 1, "I-FOOD": 1}
    assert stats.total == 8 and stats.percent("O") == pytest.approx(62.5)
    assert stats.records_with_entities == 0.5
    assert stats.entity_token_share == pytest.approx(3 / 8)
    assert stats.imbalance_ratio == 5.0  # O / rarest present entity label (1)
    assert stats.majority_accuracy == pytest.approx(5 / 8)


def test_no_entities_has_no_imbalance_ratio():
    # Without entity tokens the imbalance ratio is undefined (None), not a division error.
    stats = label_stats(split([IGNORE, 0, 0, IGNORE]), LM, [Record(("a", "b"), ("O", "O"))])
    assert stats.imbalance_ratio is None and stats.majority_accuracy == 1.0


def test_to_dict_and_table():
    # The dict is JSON-ready and the table lists every label with its count and %.
    stats = label_stats(split([0, 0, 0, 3]), LM, [Record(("a",) * 4, ("O", "O", "O", "B-FOOD"))])
    data = stats.to_dict()
    assert data["percent"]["O"] == 75.0 and data["total"] == 4
    table = format_label_table(stats)
    assert "B-FOOD" in table and "25.00%" in table and "all-O baseline token accuracy: 75.0%" in table


def test_a_split_without_o_tokens_shows_no_imbalance_ratio():
    # "imbalance (O / rarest entity label): 0.0" read as a balanced split.
    stats = label_stats(split([3, 4]), LM, [Record(("a", "b"), ("B-FOOD", "I-FOOD"))])
    assert "n/a (no 'O' tokens)" in format_label_table(stats)


def test_look_alike_types_name_a_rare_type_spelt_like_another():
    from nerkit.stats import look_alike_types

    lm = LabelMap.from_types(["FOOD", "FOD", "QTY", "LOC"])
    counts = {"train": {"O": 9, "B-FOOD": 5, "I-FOOD": 2, "B-FOD": 1, "I-FOD": 0, "B-QTY": 1, "I-QTY": 0,
                        "B-LOC": 1, "I-LOC": 0}}
    # FOD (1 token) is FOOD misspelt; QTY and LOC are rare but named like no other type.
    assert look_alike_types(counts, lm) == {"FOD": "FOOD"}
    counts["dev"] = {"B-FOD": 5}  # common enough to be meant
    assert look_alike_types(counts, lm) == {}


def test_look_alike_types_name_a_type_that_differs_only_in_case():
    from nerkit.stats import look_alike_types

    # 'food' beside 'FOOD' is one type written two ways, however many tokens each has.
    lm = LabelMap.from_types(["FOOD", "food", "LOC"])
    counts = {"train": {"O": 9, "B-FOOD": 20, "I-FOOD": 0, "B-food": 7, "I-food": 0, "B-LOC": 5, "I-LOC": 0}}
    assert look_alike_types(counts, lm) == {"food": "FOOD"}
    counts["train"]["B-food"] = 20  # a tie points at the first in sorted order
    assert look_alike_types(counts, lm) == {"food": "FOOD"}


def test_three_spellings_of_a_type_all_point_at_the_most_frequent():
    from nerkit.stats import look_alike_types

    # FOOD (1) pointed at Food (5), itself a rare spelling of food (50).
    lm = LabelMap.from_types(["FOOD", "Food", "food"])
    counts = {"train": {"O": 9, "B-FOOD": 1, "B-Food": 5, "B-food": 50}}
    assert look_alike_types(counts, lm) == {"FOOD": "food", "Food": "food"}
