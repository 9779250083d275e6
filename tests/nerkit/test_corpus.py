"""Tests for the bundled corpus and its generator (nerkit/corpus)."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from nerkit.corpus import BUNDLED_SEED, bundled_data_dir, generate
from nerkit.corpus.generator import main
from nerkit.corpus.lexicon import check_lexicon
from nerkit.corpus.names import Entry
from nerkit.corpus.templates import TEMPLATES
from nerkit.text import split_words

SPLITS = ("train", "dev", "test")
LABELS = {"STORE", "FOOD", "LOC", "QTY", "PREF"}
NAMED = ("STORE", "FOOD", "LOC")
_DEVANAGARI = re.compile("[\u0900-\u097f]")


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[dict]]:
    out = {}
    for split in SPLITS:
        lines = (bundled_data_dir() / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        out[split] = [json.loads(line) for line in lines]
    return out


def _surfaces(records: list[dict], labels=NAMED) -> set[tuple[str, str]]:
    return {
        (r["text"][e["start"] : e["end"]].casefold(), e["label"])
        for r in records
        for e in r["entities"]
        if e["label"] in labels
    }


def _entity_word_labels(record: dict) -> list[str | None]:
    """The entity label of each split_words word of ``record`` (None outside)."""
    labels = []
    for _, start, end in split_words(record["text"]):
        inside = [e["label"] for e in record["entities"] if e["start"] <= start and end <= e["end"]]
        labels.append(inside[0] if inside else None)
    return labels


def test_generate_is_deterministic():
    # The same seed gives the same corpus, record for record.
    assert generate(BUNDLED_SEED) == generate(BUNDLED_SEED)
    assert generate(1) != generate(2)


def test_rebuild_gives_the_shipped_bytes(tmp_path, capsys):
    # The CLI rebuilds the shipped files byte for byte.
    main(["--out", str(tmp_path)])
    for split in SPLITS:
        rebuilt = (tmp_path / f"{split}.jsonl").read_bytes()
        assert rebuilt == (bundled_data_dir() / f"{split}.jsonl").read_bytes(), split
    assert "train.jsonl" in capsys.readouterr().out


def test_record_format(shipped):
    # Records are {"text", "entities"} with sorted, non-overlapping, labelled spans.
    for records in shipped.values():
        for r in records:
            assert list(r) == ["text", "entities"]
            end = 0
            for e in r["entities"]:
                assert list(e) == ["start", "end", "label"] and e["label"] in LABELS
                assert end <= e["start"] < e["end"] <= len(r["text"]), r
                end = e["end"]


def test_spans_align_with_split_words(shipped):
    # Every entity starts and ends on a word boundary of nerkit.text.split_words.
    for records in shipped.values():
        for r in records:
            words = split_words(r["text"])
            starts, ends = {s for _, s, _ in words}, {e for _, _, e in words}
            for e in r["entities"]:
                assert e["start"] in starts and e["end"] in ends, (r["text"], e)


def test_held_out_names_never_occur_in_train(shipped):
    # Dev and test stores, dishes and localities are unseen in train, as strings.
    train = {text for text, _ in _surfaces(shipped["train"])}
    for split in ("dev", "test"):
        held_out = {text for text, _ in _surfaces(shipped[split])}
        assert held_out and not held_out & train, sorted(held_out & train)


def test_texts_are_unique_and_held_out_texts_unseen(shipped):
    # No split repeats a text, and no dev or test text is also a train text.
    texts = {split: [r["text"] for r in shipped[split]] for split in SPLITS}
    for split in SPLITS:
        assert len(set(texts[split])) == len(texts[split]), split
    assert not set(texts["test"]) & set(texts["train"])
    assert not set(texts["dev"]) & set(texts["train"])


def test_train_teaches_the_capability_sentences(shipped):
    # The names and shapes of "tushar se 2 misal mangwao" & co. are train material.
    train = _surfaces(shipped["train"])
    for surface in [("tushar", "STORE"), ("inayat cafe", "STORE"), ("misal", "FOOD"),
                    ("pizza", "FOOD"), ("gangapur road", "LOC")]:
        assert surface in train
    texts = {r["text"] for r in shipped["train"]}
    assert {"tushar se 2 misal mangwao", "inayat cafe se pizza chahiye",
            "gangapur road pe delivery", "cart dikhao"} <= texts
    # Context carries the signal: "X se" precedes many different stores.
    se_stores = {
        r["text"][e["start"] : e["end"]].casefold()
        for r in shipped["train"] for e in r["entities"]
        if e["label"] == "STORE" and r["text"][e["end"] :].startswith(" se ")
    }
    assert len(se_stores) >= 40


def test_figures_match_the_team_corpus(shipped):
    # Size, share with entities, entity-word share and QTY/PREF rarity are on target.
    records = [r for split in SPLITS for r in shipped[split]]
    assert 1000 <= len(records) <= 1100
    assert 0.64 <= sum(bool(r["entities"]) for r in records) / len(records) <= 0.74
    labels = [label for r in records for label in _entity_word_labels(r)]
    per_type = Counter(label for label in labels if label)
    n_entity = sum(per_type.values())
    assert 0.27 <= n_entity / len(labels) <= 0.37
    assert 0 < per_type["QTY"] / n_entity < 0.10
    assert 0 < per_type["PREF"] / n_entity < 0.10
    sizes = [len(shipped[split]) / len(records) for split in SPLITS]
    assert sizes == pytest.approx([0.8, 0.1, 0.1], abs=0.01)


def test_devanagari_and_negatives_in_every_split(shipped):
    # Each split has Devanagari records (5-8% overall) and records without entities.
    for split in SPLITS:
        assert any(_DEVANAGARI.search(r["text"]) for r in shipped[split]), split
        assert any(not r["entities"] for r in shipped[split]), split
    records = [r for split in SPLITS for r in shipped[split]]
    share = sum(bool(_DEVANAGARI.search(r["text"])) for r in records) / len(records)
    assert 0.05 <= share <= 0.08


def test_there_are_many_templates():
    # At least 40 distinct sentence shapes carry entities.
    assert len({t.pattern for t in TEMPLATES}) >= 40


def test_check_lexicon_rejects_a_shared_spelling():
    # One spelling in two entries would leak a train name into a held-out pool.
    check_lexicon()
    clash = {"STORE": [Entry(("Misal",))], "FOOD": [Entry(("misal", "misal pav"))]}
    with pytest.raises(ValueError, match="'misal'"):
        check_lexicon(clash)
