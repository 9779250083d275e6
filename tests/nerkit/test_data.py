"""Tests for nerkit.data: config validation, split discovery, seeded splits, label map, fingerprint."""

from __future__ import annotations

import json
import re

import pytest

import nerkit.corpus
from nerkit.data import DataConfig, load_dataset
from nerkit.errors import DataError


def write_tokens(path, rows):
    path.write_text("".join(json.dumps({"tokens": t, "tags": g}) + "\n" for t, g in rows))
    return str(path)


def numbered(n, tag="B-FOOD"):
    return [([f"w{i}", "pizza"], ["O", tag]) for i in range(n)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "csv"}, r"format is 'csv', but must be 'auto' or one of"),
        ({"on_invalid": "fix"}, r"on_invalid is 'fix', but must be one of"),
        ({"split_ratios": (0.5, 0.5)}, r"split_ratios is \(0.5, 0.5\), but must be 3"),
        ({"split_ratios": (0.9, 0.0, 0.1)}, r"train and dev must be > 0"),
        ({"split_ratios": (0.8, 0.1, 0.2)}, r"sum to 1"),
        ({"split_ratios": (0.9, 0.1, False)}, r"split_ratios is \(0.9, 0.1, False\), but must be 3"),
        ({"split_seed": "13"}, r"split_seed is '13', but must be an integer"),
        # Path("") is the working directory: "$UNSET" would read ./train.jsonl unannounced.
        ({"path": ""}, r"path is '', but must be a non-empty path \(or left out: the bundled corpus\)"),
        ({"dev": " "}, r"dev is ' ', but must be a non-empty path \(or left out: the one found from path\)"),
        ({"label_names": ["O", "O"]}, r"label_names is \['O', 'O'\], but must be a non-empty list of distinct"),
        ({"label_names": []}, r"label_names is \[\], but must be"),
        ({"label_names": "O,B-FOOD"}, r"label_names is 'O,B-FOOD', but must be"),
        ({"label_names": ["O", "FOOD"]}, r"label_names is \['O', 'FOOD'\], but tag 'FOOD' is not IOB2"),
    ],
)
def test_data_config_rejects_bad_values(kwargs, message):
    # Each bad setting is a ValueError naming the value and what is allowed.
    with pytest.raises(ValueError, match=message):
        DataConfig(**kwargs)


def test_a_single_file_splits_80_10_10_with_seed_13_by_default():
    # The README's defaults: a researcher's split is the same on every machine and run,
    # so a changed default would silently move records between train, dev and test.
    assert (DataConfig().split_seed, DataConfig().split_ratios) == (13, (0.8, 0.1, 0.1))


def test_data_config_accepts_a_yaml_list_for_ratios():
    # YAML gives lists; the frozen config stores a tuple.
    assert DataConfig(split_ratios=[0.7, 0.2, 0.1]).split_ratios == (0.7, 0.2, 0.1)


def test_integer_tags_load_with_label_names(tmp_path):
    # HF-style ner_tags ids without a ClassLabel: the config names the labels, in id order,
    # and a TrainConfig stored as JSON (lists) brings them back.
    from nerkit.config import TrainConfig

    for split in ("train", "dev"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps({"tokens": ["2", "pizza"], "ner_tags": [0, 1]}) + "\n")
    cfg = DataConfig(path=str(tmp_path), label_names=["O", "B-FOOD", "I-FOOD"])
    ds = load_dataset(cfg)
    assert ds.train[0].tags == ("O", "B-FOOD") and cfg.label_names == ("O", "B-FOOD", "I-FOOD")
    stored = json.loads(json.dumps(TrainConfig(data=cfg).to_dict()))
    assert TrainConfig.from_dict(stored).data == cfg
    with pytest.raises(DataError, match="--label-names O,B-FOOD,I-FOOD"):
        load_dataset(DataConfig(path=str(tmp_path)))


def test_directory_with_split_files(tmp_path):
    # train.*, validation.* (as dev) and test.* in a directory become the three splits.
    write_tokens(tmp_path / "train.jsonl", numbered(4))
    write_tokens(tmp_path / "validation.jsonl", numbered(2))
    (tmp_path / "test.conll").write_text("ek O\ncoke B-DRINK\n")
    ds = load_dataset(DataConfig(path=str(tmp_path)))
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (4, 2, 1)
    # The label map is the union over all splits: DRINK only occurs in test.
    assert ds.label_map.labels == ("O", "B-DRINK", "I-DRINK", "B-FOOD", "I-FOOD")
    assert [f.source for f in ds.report.files][0].endswith("train.jsonl")


def test_directory_without_dev_says_how_to_fix(tmp_path):
    # A missing dev split is an error naming --dev and single-file splitting.
    write_tokens(tmp_path / "train.jsonl", numbered(4))
    with pytest.raises(DataError, match=r"no dev split found.*single file to split.*--dev FILE"):
        load_dataset(DataConfig(path=str(tmp_path)))


@pytest.mark.parametrize("train_name, dev_name", [("Train.jsonl", "dev.jsonl"), ("train.jsonl.gz", "dev.jsonl"),
                                                  ("train.jsonl", "val.jsonl")])
def test_missing_split_names_the_files_that_look_like_it(tmp_path, train_name, dev_name):
    # A split file nerkit does not read (case, suffix, alias) is named, not left for the user to find.
    write_tokens(tmp_path / train_name, numbered(4))
    write_tokens(tmp_path / dev_name, numbered(3))
    near = train_name if train_name != "train.jsonl" else dev_name
    with pytest.raises(DataError, match=rf"no (train|dev) split found.*found \['{re.escape(near)}'\]"):
        load_dataset(DataConfig(path=str(tmp_path)))


def test_damaged_dataset_dict_json_names_the_file(tmp_path):
    # A DatasetDict whose dataset_dict.json is not JSON: a DataError naming that file, not a bare JSON error.
    (tmp_path / "dataset_dict.json").write_text("garbage", encoding="utf-8")
    with pytest.raises(DataError, match=r"dataset_dict\.json: cannot read the DatasetDict's split list"):
        load_dataset(DataConfig(path=str(tmp_path)))


def test_explicit_dev_overrides_directory(tmp_path):
    # --dev fills (or replaces) the directory's dev split.
    write_tokens(tmp_path / "train.jsonl", numbered(4))
    dev = write_tokens(tmp_path / "other.jsonl", numbered(3))
    ds = load_dataset(DataConfig(path=str(tmp_path), dev=dev))
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (4, 3, 0)


def test_single_file_split_is_deterministic(tmp_path):
    # The same seed gives the same split; another seed a different one; ratios are kept.
    path = write_tokens(tmp_path / "all.jsonl", numbered(50))
    a, b = (load_dataset(DataConfig(path=path)) for _ in range(2))
    c = load_dataset(DataConfig(path=path, split_seed=7))
    assert (len(a.train), len(a.dev), len(a.test)) == (40, 5, 5)
    assert a.train == b.train and a.fingerprint == b.fingerprint
    assert a.train != c.train and a.fingerprint != c.fingerprint
    assert sorted(r.line for s in (a.train, a.dev, a.test) for r in s) == list(range(1, 51))


def test_single_file_with_explicit_test_splits_the_rest(tmp_path):
    # With --test given, the file is split into train/dev only (ratios renormalised).
    path = write_tokens(tmp_path / "all.jsonl", numbered(45))
    test = write_tokens(tmp_path / "t.jsonl", numbered(2))
    ds = load_dataset(DataConfig(path=path, test=test))
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (40, 5, 2)


@pytest.mark.parametrize("n", [1, 3])
def test_too_small_file_to_split_says_so(tmp_path, n):
    # A file too small to split is an error naming the count, not "the dev split has no
    # records ... check the load report for skipped ones" when none was skipped.
    path = write_tokens(tmp_path / "all.jsonl", numbered(n))
    with pytest.raises(DataError, match=rf"{n} record\(s\) are too few to split into train/dev/test.*at least 4"):
        load_dataset(DataConfig(path=path))
    ds = load_dataset(DataConfig(path=write_tokens(tmp_path / "four.jsonl", numbered(4))))
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (2, 1, 1)


def test_records_left_too_few_after_skipping_says_how_many_were_skipped_and_the_first(tmp_path):
    # 10 records, 8 bad: "2 record(s) are too few to split" read as the file's size, and the
    # 8 skipped (file:line) were named nowhere the CLI shows.
    rows = numbered(2) + numbered(8, tag="I-FOOD")
    path = write_tokens(tmp_path / "all.jsonl", rows)
    with pytest.raises(DataError, match=r"2 record\(s\) are too few to split.*; 8 bad record\(s\) were skipped.*"
                                         r"the first: .*all.jsonl:3: tags\[1\] = 'I-FOOD'.*fix the skipped ones"):
        load_dataset(DataConfig(path=path, on_invalid="skip"))
    dev = write_tokens(tmp_path / "dev.jsonl", numbered(1, tag="I-FOOD"))
    with pytest.raises(DataError, match=r"the dev split has no records .*1 bad record\(s\) were skipped.*dev.jsonl:1"):
        load_dataset(DataConfig(train=path, dev=dev, on_invalid="skip"))


def test_a_dataset_dict_given_as_one_splits_data_names_the_options_that_work(tmp_path):
    # "pick one of ['train', 'validation']" named no option that picks one.
    import datasets

    rows = {"tokens": [["a", "pizza"]], "tags": [["O", "B-FOOD"]]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows), "validation": datasets.Dataset.from_dict(rows)}
                         ).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=rf"give it as --data {tmp_path / 'dd'} .*or one split's own directory, "
                                        rf"e.g. {tmp_path / 'dd' / 'train'}"):
        load_dataset(DataConfig(train=str(tmp_path / "dd"), dev=write_tokens(tmp_path / "dev.jsonl", numbered(1))))
    ds = load_dataset(DataConfig(train=str(tmp_path / "dd" / "train"), dev=str(tmp_path / "dd" / "validation")))
    assert (len(ds.train), len(ds.dev)) == (1, 1)


def test_an_empty_split_of_a_dataset_dict_names_its_own_skipped_records(tmp_path):
    # The note counted and showed every split's skipped records (dd[train]:4 for an empty dev).
    import datasets

    good, bad = (["a", "pizza"], ["O", "B-FOOD"]), (["a", "pizza"], ["O", "I-FOOD"])
    rows = lambda pairs: {"tokens": [t for t, _ in pairs], "tags": [g for _, g in pairs]}  # noqa: E731
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows([good] * 3 + [bad] * 2)),
                          "validation": datasets.Dataset.from_dict(rows([bad]))}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"dd\[validation\]: the dev split has no records .*; 1 bad record\(s\) were "
                                        r"skipped .*the first: .*dd\[validation\]:1"):
        load_dataset(DataConfig(path=str(tmp_path / "dd"), on_invalid="skip"))


def test_dev_or_test_without_train_is_refused_not_trained_on_the_bundled_corpus(tmp_path):
    # A forgotten --train used to train on the bundled corpus, its labels mixed with these.
    dev = write_tokens(tmp_path / "dev.jsonl", numbered(2))
    with pytest.raises(ValueError, match=r"dev '.*dev.jsonl' given without train or a data path.*--train FILE"):
        load_dataset(DataConfig(dev=dev))
    with pytest.raises(ValueError, match=r"test '.*' given without train"):
        load_dataset(DataConfig(test=dev))


def test_dataset_dict_directory(tmp_path):
    # A saved DatasetDict with train/validation splits loads as train/dev.
    import datasets

    rows = {"tokens": [["a", "pizza"]], "tags": [["O", "B-FOOD"]]}
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(rows), "validation": datasets.Dataset.from_dict(rows)}
    ).save_to_disk(str(tmp_path / "dd"))
    ds = load_dataset(DataConfig(path=str(tmp_path / "dd")))
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (1, 1, 0)
    assert ds.dev[0].source.endswith("[validation]")


def test_fingerprint_changes_with_tags(tmp_path):
    # The fingerprint covers tags, so relabelling invalidates a tokenisation cache.
    a = load_dataset(DataConfig(path=write_tokens(tmp_path / "a.jsonl", numbered(20))))
    b = load_dataset(DataConfig(path=write_tokens(tmp_path / "b.jsonl", numbered(20, "B-DRINK"))))
    assert len(a.fingerprint) == 64 and a.fingerprint != b.fingerprint


def test_repairs_are_reported_not_silent(tmp_path):
    # on_invalid="repair" fixes the tags and the load report counts it.
    train = write_tokens(tmp_path / "train.jsonl", [(["pizza"], ["I-FOOD"])] + numbered(2))
    dev = write_tokens(tmp_path / "dev.jsonl", numbered(1))
    ds = load_dataset(DataConfig(train=train, dev=dev, on_invalid="repair"))
    assert ds.train[0].tags == ("B-FOOD",)
    assert ds.report.repaired == 1 and ds.report.to_dict()["files"][0]["repaired"] == 1


def test_bundled_corpus_is_the_default(tmp_path, monkeypatch):
    # path=None reads train/dev/test from nerkit.corpus.bundled_data_dir().
    for name, n in (("train", 6), ("dev", 2), ("test", 2)):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"text": f"{i} pizza", "entities": [{"start": len(str(i)) + 1,
                    "end": len(str(i)) + 6, "label": "FOOD"}]}) + "\n" for i in range(n))
        )
    monkeypatch.setattr(nerkit.corpus, "bundled_data_dir", lambda: tmp_path, raising=False)
    ds = load_dataset(DataConfig())
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (6, 2, 2)
    assert ds.train[0].tags == ("O", "B-FOOD") and ds.train[0].offsets == ((0, 1), (2, 7))
