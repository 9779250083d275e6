"""tune.scoring: a trial's checkpoint fetched for promotion (scoring itself: tests/tune/test_promote.py)."""

from __future__ import annotations

import pytest


def test_checkpoint_download_from_object_storage_skips_the_optimizer_state_and_names_a_gone_one(tmp_path):
    # The object-storage path (here file://, the same pyarrow code as s3://) copied the
    # optimizer state too, and a removed checkpoint gave pyarrow's raw "Path does not exist".
    from tune.scoring import local_checkpoint

    ckpt = tmp_path / "runs" / "s" / "trial_t" / "checkpoint_000001"
    (ckpt / "sub").mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "training_state.safetensors", "training_state.json",
                 "sub/extra.txt"):
        (ckpt / name).write_text(name)
    row = {"trial_id": "t", "checkpoint": str(ckpt)}
    got = local_checkpoint(row, f"file://{tmp_path / 'runs' / 's'}", tmp_path / "work")
    assert sorted(str(p.relative_to(got)) for p in got.rglob("*") if p.is_file()) == [
        "config.json", "model.safetensors", "sub/extra.txt"]
    import shutil

    shutil.rmtree(ckpt)
    with pytest.raises(ValueError, match=r"trial t's checkpoint .* is gone"):
        local_checkpoint(row, f"file://{tmp_path / 'runs' / 's'}", tmp_path / "work2")
