"""Checkpoint retention: never delete what the snapshot on storage would restore."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest
from ray.tune import Callback

from cluster_utils import results as trial_results
from nerkit.data import DataConfig
from snapshot_checks import SnapshotChecker
from tune.driver import run_search
from tune.retention import CheckpointRetention, superseded
from tune.settings import SearchSettings, read_settings
from tune.tables import collect


def test_superseded_keeps_what_a_restore_or_promotion_may_need():
    # Reported in order 0..5; the snapshot on storage records checkpoint 3 as the last
    # result's. Kept: 3 and 2 (Ray restores from 3, or from 2 when the snapshot fell before
    # it processed 3's save), 1 (best F1: the first of two equal bests, as Ray's
    # get_best_checkpoint picks) and 4, 5 (newer than the snapshot).
    ckpts = {f"checkpoint_00000{i}": f1 for i, f1 in enumerate([0.1, 0.5, 0.2, 0.3, 0.5, 0.0])}
    assert superseded(ckpts, "checkpoint_000003") == ["checkpoint_000000"]
    assert superseded(ckpts, "checkpoint_000005") == ["checkpoint_000000", "checkpoint_000002",
                                                      "checkpoint_000003"]
    # A finished trial is never restored: only its best and latest remain.
    assert superseded(ckpts, "checkpoint_000005", finished=True) == [
        "checkpoint_000000", "checkpoint_000002", "checkpoint_000003", "checkpoint_000004"]
    # Indices compare as numbers, not strings (Ray pads to 6 digits; a long trial exceeds it).
    assert superseded({"checkpoint_999998": 0.9, "checkpoint_999999": 0.1, "checkpoint_1000000": 0.2,
                       "checkpoint_1000001": 0.3}, "checkpoint_1000001") == ["checkpoint_999999"]


def test_superseded_keeps_the_best_the_snapshot_knows_not_a_newer_one():
    # The snapshot's last result is checkpoint 2; checkpoint 4 has since scored higher, but
    # the snapshot (what the trial table reads if the driver dies now) still names 1 as best.
    ckpts = {"checkpoint_000000": 0.1, "checkpoint_000001": 0.8, "checkpoint_000002": 0.2,
             "checkpoint_000003": 0.3, "checkpoint_000004": 0.9}
    assert superseded(ckpts, "checkpoint_000003") == ["checkpoint_000000"]
    # If Ray had not yet registered the last result's checkpoint (3, the best so far), its
    # best is still the best before it (1): both are kept.
    ckpts = {"checkpoint_000000": 0.1, "checkpoint_000001": 0.5, "checkpoint_000002": 0.2,
             "checkpoint_000003": 0.7}
    assert superseded(ckpts, "checkpoint_000003") == ["checkpoint_000000"]
    assert superseded(ckpts, "checkpoint_000003", finished=True) == [
        "checkpoint_000000", "checkpoint_000001", "checkpoint_000002"]


def _finished_trial(exp: Path, checkpoints: list[str], last: str | None,
                    status: str = "TERMINATED") -> SimpleNamespace:
    """A TERMINATED (or ``status``) trial whose last result names ``last`` (None: no
    checkpoint), as Ray's snapshot records it, with ``checkpoints`` as directories on disk."""
    trial_dir = exp / "trial_t1"
    for name in checkpoints:
        (trial_dir / name).mkdir(parents=True)
    state = json.dumps({"trial_id": "t1", "status": status})
    metadata = json.dumps({"last_result": {"checkpoint_dir_name": last}})
    (exp / "experiment_state-2026.json").write_text(json.dumps({"trial_data": [[state, metadata]]}))
    storage = SimpleNamespace(storage_filesystem=pafs.LocalFileSystem(), experiment_fs_path=str(exp))
    return SimpleNamespace(trial_id="t1", storage=storage, path=str(trial_dir))


def test_the_final_sweep_deletes_only_leftovers_newer_than_the_final_checkpoint(tmp_path):
    # After a kill, Ray's callback state can trail its trial state: checkpoint 3 is Ray's
    # (it is the trial's best) but no result this callback saw names it. The sweep takes
    # only what a killed driver's trial wrote past the final checkpoint (5), never 3.
    trial = _finished_trial(tmp_path, [f"checkpoint_00000{i}" for i in range(6)], "checkpoint_000004")
    retention = CheckpointRetention()
    retention.checkpoints = {"t1": {"checkpoint_000000": 0.1, "checkpoint_000001": 0.2,
                                    "checkpoint_000002": 0.3, "checkpoint_000004": 0.4}}
    deleted = retention.prune([trial], sweep=True)
    assert sorted(Path(p).name for p in deleted) == ["checkpoint_000000", "checkpoint_000001",
                                                     "checkpoint_000002", "checkpoint_000005"]
    assert sorted(p.name for p in Path(trial.path).iterdir()) == ["checkpoint_000003", "checkpoint_000004"]


def test_a_failed_trial_whose_last_result_has_no_checkpoint_is_pruned_too(tmp_path):
    # ERROR after an evaluation without a checkpoint (--checkpoint-every 2, retries used
    # up): its newest checkpoint (3) is what a resume with resume_errored restores it from.
    # Kept, as for a running trial: 3, the one before (2) and the best (1); 0 goes. A trial
    # still running waits for a snapshot whose last result names one. (The ERROR trial
    # used to keep every checkpoint.)
    ckpts = [f"checkpoint_00000{i}" for i in range(4)]
    f1 = {"checkpoint_000000": 0.1, "checkpoint_000001": 0.3, "checkpoint_000002": 0.2, "checkpoint_000003": 0.25}
    for status, kept in (("RUNNING", ckpts), ("ERROR", ckpts[1:])):
        trial = _finished_trial(tmp_path / status, ckpts, None, status=status)
        retention = CheckpointRetention()
        retention.checkpoints = {"t1": dict(f1)}
        retention.prune([trial], sweep=True)
        assert sorted(p.name for p in Path(trial.path).iterdir()) == kept, status


def test_a_checkpoint_that_cannot_be_deleted_does_not_stop_pruning_the_rest(tmp_path):
    # One stuck directory (permissions, object-store errors) is logged and kept for the
    # next try; the other superseded checkpoints still go.
    trial = _finished_trial(tmp_path, [f"checkpoint_00000{i}" for i in range(4)], "checkpoint_000003")
    retention = CheckpointRetention()
    retention.checkpoints = {"t1": {f"checkpoint_00000{i}": 0.1 * i for i in range(4)}}
    stuck = f"{trial.path}/checkpoint_000001"
    delete_dir = pafs.LocalFileSystem.delete_dir

    class StuckFS(pafs.LocalFileSystem):
        def delete_dir(self, path):
            if path == stuck:
                raise PermissionError(path)
            return delete_dir(self, path)

    trial.storage.storage_filesystem = StuckFS()
    deleted = retention.prune([trial])
    assert sorted(Path(p).name for p in deleted) == ["checkpoint_000000", "checkpoint_000002"]
    assert "checkpoint_000001" in retention.checkpoints["t1"]  # tried again next time


def test_an_abandoned_runs_checkpoints_go_once_no_snapshot_restores_from_them(tmp_path):
    # A trial whose checkpoint was damaged trains again from the start (tune.trainable).
    # The abandoned run's checkpoints (0-2) stayed on disk for good, each as large as a live
    # one. They go once the snapshot restores from the new run only: its latest and, for a
    # running trial, the one before it (Ray's restore point when the latest is not yet
    # registered) both the new run's. A new-run checkpoint with an abandoned one's name stays.
    old = [f"checkpoint_00000{i}" for i in range(3)]
    new = ["checkpoint_000003", "checkpoint_000004"]
    cases = [("RUNNING", "checkpoint_000003", old + new),  # the one before 3 is the old run's 2
             ("RUNNING", "checkpoint_000004", new),
             ("TERMINATED", "checkpoint_000003", new)]
    for status, last, kept in cases:
        trial = _finished_trial(tmp_path / f"{status}-{last}", old + new, last, status=status)
        retention = CheckpointRetention()
        for i, name in enumerate(old + new):
            retention.trial_result([trial], trial, {"eval_index": i if i < 3 else i - 3,
                                                   "checkpoint_dir_name": name, "dev_f1": 0.5})
        assert retention.abandoned == {"t1": old}
        retention.step_ended([trial])
        assert sorted(p.name for p in Path(trial.path).iterdir()) == kept, (status, last)
        # What is left to delete survives a resume (saved with Ray's snapshot).
        restored = CheckpointRetention()
        restored.restore_state(json.loads(json.dumps(retention.saved_state())))
        assert restored.abandoned == ({"t1": old} if kept != new else {})

    retention = CheckpointRetention()
    trial = SimpleNamespace(trial_id="t")
    for i, name in enumerate(["checkpoint_000000", "checkpoint_000001", "checkpoint_000001"]):
        retention.trial_result([], trial, {"eval_index": i if i < 2 else 0, "checkpoint_dir_name": name,
                                           "dev_f1": 0.5})
    assert retention.abandoned == {"t": ["checkpoint_000000"]}


class PlantOrphan(Callback):
    """Writes a checkpoint directory no result names into the first trial to report, as a
    killed driver's trial leaves one written after the last snapshot."""

    def __init__(self) -> None:
        self.planted: Path | None = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.planted is None:
            self.planted = Path(trial.path) / "checkpoint_000099"
            self.planted.mkdir()
            (self.planted / "trainer_state.json").write_text("{}")


@pytest.fixture(scope="module")
def longer_data_dir(tmp_path_factory, corpus_slice):
    """640 train records: trials long enough for several of nerkit's state backups (at
    least 1 s apart) to fall while they hold a checkpoint. On 160, a fast run (CI, once)
    saw none."""
    return corpus_slice(tmp_path_factory.mktemp("longer-data"), 640, 40, 40)


@pytest.mark.slow
def test_a_search_never_deletes_the_checkpoint_a_resume_needs(tmp_path, tiny_model_dir, longer_data_dir, monkeypatch):
    # A real search with --checkpoint-every 2 over 6 evaluations (3 epochs, one every half
    # epoch: default.yaml): checkpoints at evaluations 1, 3 and 5 (every 2nd, and the final
    # one), none at 0, 2 and 4. At every controller step, the checkpoint the snapshot on
    # storage (and its last complete copy, which a resume falls back to) would restore each
    # unfinished trial from must exist, although the snapshot's last result often has none:
    # Ray's own num_to_keep=1 deleted it before the snapshot moved on, so a driver killed
    # then could not resume that trial (this test fails with it, as it did when it
    # checkpointed at every evaluation; the two differ only in which results carry one).
    # At the end each trial keeps exactly its best checkpoint (the one the trial table
    # names, with the evaluation it holds, for promotion) and its latest; a checkpoint
    # directory no result names (planted mid-search) is gone too.
    # A snapshot every 0.2 s, not nerkit's 1 s: many fall while each trial runs.
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0.2")
    checker, orphan = SnapshotChecker(), PlantOrphan()
    settings = SearchSettings(
        name="keep", space="search_spaces/default.yaml", storage=str(tmp_path), trials=2,
        model=str(tiny_model_dir), data=DataConfig(path=str(longer_data_dir)), max_epochs=3,
        grace_epochs=3, seed=2, checkpoint_every=2,
    )
    run_search(settings, callbacks=[checker, orphan])
    assert checker.missing == []
    assert checker.checks["live"] > 0, checker.checks
    assert checker.checks["backup"] > 0, checker.checks
    assert orphan.planted is not None and not orphan.planted.exists()

    exp = Path(settings.experiment_path)
    tables = collect(str(exp))
    assert len(tables.trials) == 2
    for row in tables.trials:
        assert row["stop_reason"] == "completed"
        results = trial_results(exp / f"trial_{row['trial_id']}")
        assert [r["eval_index"] for r in results] == [0, 1, 2, 3, 4, 5]
        saved = {r["eval_index"]: r for r in results if r.get("checkpoint_dir_name")}
        assert sorted(saved) == [1, 3, 5]
        # The table's checkpoint is the best checkpointed evaluation, which it names.
        best_saved = max(saved.values(), key=lambda r: r["dev_f1"])
        assert row["checkpoint_eval_index"] == best_saved["eval_index"]
        assert row["checkpoint_dev_f1"] == pytest.approx(best_saved["dev_f1"])
        assert json.loads((Path(row["checkpoint"]) / "metrics.json").read_text())["eval_index"] == \
            best_saved["eval_index"]
        on_disk = sorted(p.name for p in (exp / f"trial_{row['trial_id']}").glob("checkpoint_*"))
        kept = {Path(row["checkpoint"]).name, saved[max(saved)]["checkpoint_dir_name"]}
        assert on_disk == sorted(kept), (row["trial_id"], on_disk)
    assert read_settings(str(exp))["settings"]["checkpoint_every"] == 2  # stored for --resume


def test_a_trial_that_starts_again_forgets_the_abandoned_runs_checkpoints():
    # A trial whose checkpoint was damaged trains again from the start (tune.trainable),
    # and a deterministic re-run ties the abandoned run's F1s: "first of equals" kept the
    # damaged checkpoint as the best and deleted the new run's.
    cb = CheckpointRetention()
    trial = SimpleNamespace(trial_id="t")
    for i, (name, f1) in enumerate([("checkpoint_000000", 0.5), ("checkpoint_000001", 0.4),
                                     ("checkpoint_000002", 0.5)]):
        cb.on_trial_result(0, [], trial, {"eval_index": i if i < 2 else 0, "checkpoint_dir_name": name,
                                          "dev_f1": f1})
    assert cb.checkpoints["t"] == {"checkpoint_000002": 0.5}
