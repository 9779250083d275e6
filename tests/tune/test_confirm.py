"""tune.confirm: re-training the top configs with fresh seeds before promotion."""

from __future__ import annotations

import json

import pytest

from tune.confirm import confirm_with_seeds


def _diverging(row: dict) -> dict:
    """The row with a learning rate that diverges in the first epoch (no evaluation, no model)."""
    config = json.loads(row["config"])
    return {**row, "trial_id": "diverges", "config": json.dumps({**config, "learning_rate": 1e6, "epochs": 1})}


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
