"""tune.staging: checkpoint staging directories, and the clean-up of killed trials' ones."""

from __future__ import annotations

import os

from tune.staging import STAGING_PREFIX, remove_stale_staging, staging_prefix


def test_checkpoint_staging_left_by_killed_trials_is_removed(tmp_path):
    # A SIGKILLed driver kills its trials before they remove the checkpoint they were
    # staging: one per trial was left in the node's /tmp, each as large as a checkpoint.
    import subprocess
    import sys

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mine = staging_prefix()
    dead = tmp_path / (mine.replace(f"-{os.getpid()}-", f"-{int(ended.stdout)}-") + "abc_123")
    live = tmp_path / f"{mine}def_456"
    # Another container's, sharing this /tmp: its process ids are not this namespace's.
    foreign = tmp_path / f"{STAGING_PREFIX}0123456789-{int(ended.stdout)}-ghi_789"
    for d in (dead, live, foreign):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x")
    assert remove_stale_staging(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and live.exists() and foreign.exists()
