"""Driver-side cost of Ray's experiment snapshots at nerkit's period against Ray's own.

Command::

    python benchmarks/bench_snapshot_cost.py --trials 16 --max-epochs 6 \\
        --out benchmarks/results/snapshot_cost.json

Runs the same tiny-model search twice in fresh processes: once with nerkit's snapshot
period (``tune.driver_process.snapshot_period``: about 1 s) and once with
``TUNE_GLOBAL_CHECKPOINT_S=10`` (Ray's floor). Inside each, Ray's
``TuneController.save_to_dir`` (writing the snapshot in the driver's staging dir) and
Ray's upload of that dir to storage are wrapped with timers; nothing in ``tune/`` is
edited. The question it answers: does a snapshot every second take time from the trials
on a machine where the driver shares the cores with them? nerkit's own driver-side work
that follows each snapshot, ``StateBackup.back_up`` (tune.state_backup) and
``CheckpointRetention.prune`` (tune.retention), is timed the same way. Prints JSON and
tables.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import _benchutil as bu


def _child(args: argparse.Namespace) -> None:
    """One search with timers around Ray's snapshot save and upload (a fresh process)."""
    bu.private_ray_tmpdir()
    import ray.train._internal.storage as storage
    from ray.tune.execution.tune_controller import TuneController

    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.settings import SearchSettings

    import tune.retention as retention
    import tune.state_backup as state_backup

    spent = {"save_s": 0.0, "saves": 0, "upload_s": 0.0, "uploads": 0, "backup_s": 0.0, "backup_calls": 0,
             "backups": 0, "prune_s": 0.0, "prunes": 0}
    save, upload = TuneController.save_to_dir, storage._upload_to_fs_path
    back_up, prune = state_backup.StateBackup.back_up, retention.CheckpointRetention.prune

    def timed_back_up(self, trials):
        t = time.perf_counter()
        target = back_up(self, trials)
        spent["backup_s"] += time.perf_counter() - t
        spent["backup_calls"] += 1
        spent["backups"] += target is not None
        return target

    def timed_prune(self, trials, sweep=False):
        t = time.perf_counter()
        try:
            return prune(self, trials, sweep)
        finally:
            spent["prune_s"] += time.perf_counter() - t
            spent["prunes"] += 1

    state_backup.StateBackup.back_up = timed_back_up
    retention.CheckpointRetention.prune = timed_prune

    def timed_save(self):
        t = time.perf_counter()
        save(self)
        spent["save_s"] += time.perf_counter() - t
        spent["saves"] += 1

    def timed_upload(*a, **kw):
        t = time.perf_counter()
        try:
            return upload(*a, **kw)
        finally:
            spent["upload_s"] += time.perf_counter() - t
            spent["uploads"] += 1

    TuneController.save_to_dir = timed_save
    storage._upload_to_fs_path = timed_upload  # Ray's syncer looks it up at call time
    if args.period != "nerkit":
        os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = args.period
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        tmp_path = Path(tmp)
        settings = SearchSettings(
            name="snap", space=str(bu.REPO / "search_spaces/default.yaml"), storage=str(tmp_path / "runs"),
            trials=args.trials, model=str(bu.tiny_model(tmp_path / "tiny")), max_epochs=args.max_epochs,
            data=DataConfig(path=str(bu.corpus_copy(tmp_path / "data", train_limit=args.train_limit))),
            seed=args.seed,
        )
        t, cpu = time.perf_counter(), time.process_time()
        run_search(settings)
        wall, driver_cpu = time.perf_counter() - t, time.process_time() - cpu
    bu.write_result(args.result, {"period": args.period, "search_wall_s": round(wall, 2),
                                  "driver_cpu_s": round(driver_cpu, 2),
                                  **{k: round(v, 3) if isinstance(v, float) else v for k, v in spent.items()}})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--max-epochs", type=float, default=6)
    p.add_argument("--train-limit", type=int, default=300)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--periods", default="nerkit,10", help="'nerkit' (tune.driver's) or seconds, comma-separated")
    p.add_argument("--out", help="also write the JSON document here")
    p.add_argument("--period", help=argparse.SUPPRESS)   # child process only
    p.add_argument("--result", help=argparse.SUPPRESS)   # child process only
    args = p.parse_args(argv)
    if args.result:
        _child(args)
        return
    doc: dict[str, Any] = bu.document("snapshot_cost", vars(args))
    rows = []
    for period in args.periods.split(","):
        child = [__file__, "--period", period, "--trials", str(args.trials), "--max-epochs", str(args.max_epochs),
                 "--train-limit", str(args.train_limit), "--seed", str(args.seed)]
        result, _ = bu.run_child(child)
        result["save_ms_each"] = round(1000 * result["save_s"] / max(1, result["saves"]), 1)
        result["share_of_wall"] = round((result["save_s"] + result["upload_s"]) / result["search_wall_s"], 4)
        result["nerkit_share_of_wall"] = round((result["backup_s"] + result["prune_s"]) / result["search_wall_s"], 4)
        rows.append(result)
    doc["runs"] = rows
    bu.emit(doc, [("Snapshot cost in the driver", rows,
                   ["period", "search_wall_s", "driver_cpu_s", "saves", "save_s", "save_ms_each",
                    "uploads", "upload_s", "share_of_wall"]),
                  ("nerkit's state backup (tune.state_backup) and checkpoint retention in the driver", rows,
                   ["period", "backup_calls", "backups", "backup_s", "prunes", "prune_s",
                    "nerkit_share_of_wall"])], args.out)


if __name__ == "__main__":
    main()
