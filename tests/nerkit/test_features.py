"""prepare_data: tokenised splits cached by content, with each load's own report."""

from __future__ import annotations

import json
import shutil

from nerkit.data import DataConfig
from nerkit.features import prepare_data


def _write_splits(directory, rows) -> None:
    """``{split: [(tokens, tags), ...]}`` as ``<split>.jsonl`` files (jsonl-tokens)."""
    for split, records in rows.items():
        (directory / f"{split}.jsonl").write_text(
            "".join(json.dumps({"tokens": t, "tags": g}) + "\n" for t, g in records), encoding="utf-8")


def test_a_cache_hit_keeps_this_loads_report(tiny_model_dir, small_data_dir, tmp_path):
    # A copy with one bad record skipped has the same records (fingerprint) as the
    # original: the tokenised splits are shared, but the report says what this load skipped.
    data = tmp_path / "data"
    shutil.copytree(small_data_dir, data)
    with open(data / "train.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"text": "2 pizza", "entities": [{"start": 3, "end": 7, "label": "FOOD"}]}) + "\n")
    clean = prepare_data(DataConfig(path=str(small_data_dir)), str(tiny_model_dir))
    skipped = prepare_data(DataConfig(path=str(data), on_invalid="skip"), str(tiny_model_dir))
    assert skipped.fingerprint == clean.fingerprint and skipped.train is clean.train
    assert (clean.dataset.report.skipped, skipped.dataset.report.skipped) == (0, 1)


def test_an_entity_type_only_dev_has_is_warned_about(tiny_model_dir, tmp_path, caplog):
    # train and search said nothing (only the doctor did): the model cannot learn LOC, and
    # dev F1 still scores it.
    rows = {"train": [(["2", "pizza"], ["B-QTY", "B-FOOD"])] * 3, "dev": [(["andheri", "pizza"], ["B-LOC", "B-FOOD"])]}
    _write_splits(tmp_path, rows)
    with caplog.at_level("WARNING", logger="nerkit.features"):
        prepare_data(DataConfig(path=str(tmp_path)), str(tiny_model_dir))
    assert "entity types with no training tokens (the model cannot learn them" in caplog.text
    assert "['LOC']" in caplog.text


def test_a_tag_spelt_like_another_is_warned_about_with_where_it_is(tiny_model_dir, tmp_path, caplog):
    # B-per beside B-PER: only the doctor said so (and not where); `nerkit train` trained
    # `per` as a type of its own without a word.
    rows = {"train": [(["ravi", "aaya"], ["B-PER", "O"])] * 4 + [(["sita", "gayi"], ["B-per", "O"])],
            "dev": [(["ravi", "gaya"], ["B-PER", "O"])]}
    _write_splits(tmp_path, rows)
    with caplog.at_level("WARNING", logger="nerkit.features"):
        prepare_data(DataConfig(path=str(tmp_path)), str(tiny_model_dir))
    assert (f"look like a misspelt tag (a type of its own for the model to learn): per (1 token(s), first at "
            f"{tmp_path / 'train.jsonl'}:5): did you mean PER?") in caplog.text


def test_an_entity_word_predict_would_split_is_warned_about_with_where_it_is(tiny_model_dir, tmp_path, caplog):
    # '3.5' is one word of pre-split data, three to nerkit predict's default split: the
    # model's QTY entities came back in pieces from raw text, and only the doctor said so.
    rows = {"train": [(["order", "2", "kg"], ["O", "B-QTY", "O"])] * 3 + [(["order", "3.5", "kg"], ["O", "B-QTY", "O"])],
            "dev": [(["order", "2", "kg"], ["O", "B-QTY", "O"])]}
    _write_splits(tmp_path, rows)
    with caplog.at_level("WARNING", logger="nerkit.features"):
        prepare_data(DataConfig(path=str(tmp_path)), str(tiny_model_dir))
    assert f"(e.g. '3.5' at {tmp_path / 'train.jsonl'}:4 → '3' '.' '5')" in caplog.text
    assert "nerkit predict --split spaces" in caplog.text


def test_a_dev_split_without_entities_is_warned_about(tiny_model_dir, tmp_path, caplog):
    # The doctor fails it; `nerkit train` trained on and reported best dev F1 0.0000.
    rows = {"train": [(["2", "pizza"], ["B-QTY", "B-FOOD"])] * 3, "dev": [(["hello", "there"], ["O", "O"])]}
    _write_splits(tmp_path, rows)
    with caplog.at_level("WARNING", logger="nerkit.features"):
        prepare_data(DataConfig(path=str(tmp_path)), str(tiny_model_dir))
    assert f"dev has no entities ({tmp_path / 'dev.jsonl'}), so its entity F1 is 0.0 for any model" in caplog.text
