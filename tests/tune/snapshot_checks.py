"""A Ray Tune callback that checks, at every controller step of a real search, that the
checkpoint a resume would restore each unfinished trial from still exists."""

from __future__ import annotations

import json
from pathlib import Path

from ray.tune import Callback

from tune.snapshot import newest_snapshot
from tune.state_backup import latest_backup


class SnapshotChecker(Callback):
    """After every controller step: does the checkpoint Ray would restore each unfinished
    trial from exist, per the snapshot on storage and per its last complete copy
    (tune.state_backup, what a resume falls back to)? Read with Ray's own decoder, so this
    checks Ray's restore point itself, not nerkit's reading of the snapshot."""

    def __init__(self) -> None:
        self.checks = {"live": 0, "backup": 0}
        self.missing: list[str] = []

    def on_step_end(self, iteration, trials, **info):
        if not trials:
            return
        storage = trials[0].storage
        self._check("live", storage.experiment_fs_path, storage.storage_filesystem)
        backup = latest_backup(storage.storage_filesystem, storage.experiment_fs_path)
        if backup is not None:
            self._check("backup", backup, storage.storage_filesystem)

    def _check(self, source, directory, fs):
        from ray.tune.utils.serialization import TuneFunctionDecoder

        path = newest_snapshot(directory, fs)
        try:
            trial_data = json.loads(Path(path).read_text())["trial_data"] if path else []
        except (json.JSONDecodeError, FileNotFoundError):
            return  # a copy in flight; the next step looks again
        for state, metadata in trial_data:
            if json.loads(state)["status"] == "TERMINATED":
                continue
            # Our own run's snapshot, so unpickling it is safe (Ray's restore does the same).
            manager = TuneFunctionDecoder(allow_cloudpickle=True).decode(metadata)["checkpoint_manager"]
            latest = manager.latest_checkpoint_result
            if latest is not None:
                self.checks[source] += 1
                if not Path(latest.checkpoint.path).is_dir():
                    self.missing.append(f"{source}: {latest.checkpoint.path}")
