"""nerkit.labels: the label order, and reading a model config's labels."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from nerkit.labels import LabelMap, labels_from_config, split_tag


def test_label_order_is_o_then_b_i_per_sorted_type():
    assert LabelMap.from_types(["LOC", "FOOD"]).labels == ("O", "B-FOOD", "I-FOOD", "B-LOC", "I-LOC")
    assert LabelMap.from_tags(["O", "I-LOC", "B-FOOD"]).types == ("FOOD", "LOC")


def test_config_labels_come_in_id_order_whether_keys_are_int_or_str():
    # A config.json read by hand has str keys; transformers' configs have int keys.
    assert labels_from_config(SimpleNamespace(id2label={"1": "B-FOOD", "0": "O", "2": "I-FOOD"})) == [
        "O", "B-FOOD", "I-FOOD"]
    assert labels_from_config(SimpleNamespace(id2label={1: "B-FOOD", 0: "O"})) == ["O", "B-FOOD"]


@pytest.mark.parametrize("id2label, needle", [
    ({0: "O", 2: "B-FOOD"}, r"missing \[1\]"),
    ({"a": "O"}, r"keys \['a'\], but they must be integer ids"),
])
def test_config_labels_with_a_gap_or_a_name_as_id_are_refused_by_name(id2label, needle):
    with pytest.raises(ValueError, match=f"^models/x: .*{needle}"):
        labels_from_config(SimpleNamespace(id2label=id2label), "models/x")


@pytest.mark.parametrize(("tag", "said"), [
    ("B-FOOD\u200b", "has an invisible character (a control, zero-width or bidi mark) in its type 'FOOD\\u200b'"),
    ("I-LOC\u200e", "invisible character"),
    ("B-DRINKE\u0301", "in decomposed Unicode (NFD); write it composed, 'DRINK\u00c9' (NFC)"),
])
def test_a_type_that_prints_like_another_is_refused(tag, said):
    # 'FOOD\u200b' and a decomposed 'DRINKÉ' print as 'FOOD' and 'DRINKÉ' and were types of their own.
    with pytest.raises(ValueError, match=re.escape(said)):
        split_tag(tag)
    assert split_tag("B-DRINK\u00c9") == ("B", "DRINK\u00c9")
    # A word joiner is part of the spelling (Persian, Devanagari), not a hidden character.
    assert split_tag("B-\u0646\u0627\u0645\u200c\u062e\u0627\u0646\u0648\u0627\u062f\u06af\u06cc")[0] == "B"
