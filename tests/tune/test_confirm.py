"""tune.confirm: re-training the top configs with fresh seeds before promotion."""

from __future__ import annotations

import json

import pytest

from tune.confirm import confirm_with_seeds


def _diverging(row: dict) -> dict:
    """The row with a learning rate that diverges in the first epoch (no evaluation, no model)."""
    config = json.loads(row["config"])
    return {**row, "trial_id": "diverges", "config": json.dumps({**config, "learning_rate": 1e6, "epochs": 1})}


def _one_epoch(row: dict) -> dict:
    row = json.loads(json.dumps(row))
    row["config"] = json.dumps({**json.loads(row["config"]), "epochs": 1})
    return row


def _missing_model(row: dict, tmp_path) -> dict:
    """The row with a base model this machine does not have (re-training raises at once)."""
    config = json.loads(row["config"])
    return {**row, "trial_id": "no-model", "config": json.dumps({**config, "model": str(tmp_path / "absent")})}


def test_a_config_whose_retraining_fails_is_left_out_and_the_others_still_compete(search_tables, tmp_path,
                                                                                    one_thread):
    # One config failing to re-train (out of memory, a full disk) used to abort the whole
    # confirmation, throwing away the others' re-training; now it is recorded with its
    # error and the rest are compared. Here the first config's second seed fails (its
    # output path is taken by a file) after its first seed trained. Only the chosen run's
    # model directory is left in the work directory: the failed config's trained seed,
    # the chosen config's other seed and the losing config's runs are deleted as they
    # stop mattering (all top-k x seeds of them used to stay).
    row = _one_epoch(search_tables.trials[0])
    blocked = {**row, "trial_id": "blocked"}
    twin = {**row, "trial_id": "twin"}  # the same config: the same scores, so the tie goes to `row`
    work = tmp_path / "work"
    work.mkdir()
    seed = json.loads(row["config"])["seed"]
    (work / f"blocked-seed{seed + 2}").write_text("in the way")
    chosen = confirm_with_seeds([blocked, row, twin], 2, work)
    assert chosen.row["trial_id"] == row["trial_id"]
    failed, ok, tied = chosen.candidates
    assert failed["trial_id"] == "blocked" and failed["mean_dev_f1"] is None and len(failed["dev_f1"]) == 1
    assert failed["error"].startswith("ValueError: output_dir") and "\n" not in failed["error"]
    assert "error" not in ok and len(ok["dev_f1"]) == 2 and tied["mean_dev_f1"] == ok["mean_dev_f1"]
    assert chosen.run.dev_f1 == max(ok["dev_f1"])
    assert sorted(p.name for p in work.iterdir()) == sorted([chosen.run.model_dir.name, f"blocked-seed{seed + 2}"])


def test_when_every_config_fails_to_retrain_the_first_error_is_raised_as_it_was(search_tables, tmp_path):
    # Its own type and words (a missing model is the user's to fix: exit 2, not an I/O 1).
    row = _missing_model(search_tables.trials[0], tmp_path)
    with pytest.raises(ValueError, match=r"absent.* does not exist"):
        confirm_with_seeds([row], 1, tmp_path / "work")


def test_a_config_whose_runs_saved_no_model_is_never_chosen(search_tables, tmp_path):
    # A seed run that diverged before its first evaluation saves no model: its config
    # cannot be published, even listed first with a mean as good as the next one's (the
    # chosen run used to point at a directory that did not exist, and promotion failed on
    # a missing file); with only such configs, the error says so and what to do.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two torch threads on a shared 2-core box run ~10x slower
    try:
        row = json.loads(json.dumps(search_tables.trials[0]))
        row["config"] = json.dumps({**json.loads(row["config"]), "epochs": 1})
        chosen = confirm_with_seeds([_diverging(row), row], 1, tmp_path)
        assert chosen.row["trial_id"] == row["trial_id"] and chosen.run.model_dir.is_dir()
        assert [c["trial_id"] for c in chosen.candidates] == ["diverges", row["trial_id"]]
        with pytest.raises(ValueError, match=r"diverged before its first evaluation.*without --confirm-seeds"):
            confirm_with_seeds([_diverging(row)], 1, tmp_path / "again")
    finally:
        torch.set_num_threads(threads)
