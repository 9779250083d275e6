"""Checkpoint retention that never deletes what a resume still needs.

Ray's own retention (``CheckpointConfig(num_to_keep=…)``) deletes a trial's previous
checkpoint the moment it registers the next one, and only afterwards copies an
experiment snapshot that points at the new one to storage. A driver killed in
between leaves a snapshot that points at a deleted checkpoint, and that trial fails
on resume. So the driver runs Ray with ``num_to_keep=None`` (Ray deletes nothing)
and this callback deletes instead, by reading the snapshot on storage: a checkpoint
goes only when it is older than any that snapshot could restore the trial from, and is
not the trial's best by dev F1 (kept for promotion). A finished trial is left with
what Ray's ``num_to_keep=1`` kept, its best and its latest; a running one with up to
two more for a short while; a failed one (ERROR, which a resume runs again) with up to
two more for good. A trial that trained again from the start (its checkpoint was damaged)
loses the abandoned run's checkpoints once the snapshot could restore it only from the new
run's. With ``backed_up`` (new searches), the snapshot read is the
one in tune.state_backup's last complete copy, which a resume falls back to when the
live one was cut off; the live one is never older, so what it needs is kept too.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pyarrow.fs as pafs
from tune.ray_hooks import SearchCallback

from tune.scheduler import METRIC
from tune.snapshot import newest_snapshot, read_snapshot
from tune.state_backup import latest_backup

logger = logging.getLogger(__name__)

#: How often to read the snapshot on storage at most. Ray takes one about every
#: second (tune.driver_process.snapshot_period). Superseded checkpoints wait this long to go,
#: and while they wait the kernel may write them back to disk, slowing the trials'
#: next checkpoint writes (benchmarks/RESULTS.md §3, update 3).
MIN_INTERVAL_S = 1.0


def checkpoint_index(name: str) -> int:
    """The number Ray gives a trial's checkpoint directory: ``checkpoint_000012`` → 12."""
    return int(name.rpartition("_")[2])


def _first_best(checkpoints: dict[str, float], names: list[str]) -> str | None:
    """The first of ``names`` (in report order) with the highest F1, as Ray's
    ``ExperimentAnalysis.get_best_checkpoint`` breaks ties (and so the trial table)."""
    return max(names, key=checkpoints.__getitem__) if names else None


def superseded(checkpoints: dict[str, float], latest: str, finished: bool = False) -> list[str]:
    """The checkpoints of one trial that neither a resume nor promotion needs.

    ``checkpoints`` maps directory name to dev F1 in the order the trial reported them;
    ``latest`` is the checkpoint of the trial's last result in the snapshot on storage.
    Ray restores from the last checkpoint it had registered when it took the snapshot:
    that one, or the one before it when the snapshot fell between a result and the save
    Ray processes after it (Ray asks for the next result only after that save, so never
    further back). A ``finished`` trial (TERMINATED in the snapshot) is never restored;
    it keeps its latest, as Ray does. The best is the one promotion takes; since Ray
    ranks registered checkpoints only, the snapshot's best is the best up to ``latest``
    or up to the one before it, and both are kept. Anything newer than ``latest`` is
    kept until a later snapshot covers it.
    """
    limit = checkpoint_index(latest)
    upto = [name for name in checkpoints if checkpoint_index(name) <= limit]
    earlier = [name for name in upto if checkpoint_index(name) < limit]
    keep = {latest, _first_best(checkpoints, upto)}
    if not finished and earlier:
        # Ray may not have registered `latest` yet: it would restore from the one
        # before, and rank only the ones before.
        keep |= {max(earlier, key=checkpoint_index), _first_best(checkpoints, earlier)}
    return [name for name in earlier if name not in keep]


def _checkpoint_dirs(fs: pafs.FileSystem, trial_path: str) -> list[str]:
    selector = pafs.FileSelector(trial_path, allow_not_found=True)
    return [i.base_name for i in fs.get_file_info(selector)
            if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")]


class CheckpointRetention(SearchCallback):
    """Deletes superseded trial checkpoints once the snapshot on storage no longer needs them."""

    def __init__(self, min_interval_s: float = MIN_INTERVAL_S, backed_up: bool = False) -> None:
        self.min_interval_s = min_interval_s
        # With tune.state_backup.StateBackup running before this callback, judge by the
        # snapshot in its last complete copy: a resume may fall back to that copy.
        # (Instances restored from searches started before it existed lack the flag.)
        self.backed_up = backed_up
        # trial id -> {checkpoint dir name: dev F1}, in report order. Saved with Ray's
        # snapshot (get_state), so a resumed search knows the checkpoints reported before.
        self.checkpoints: dict[str, dict[str, float]] = {}
        # trial id -> names of the checkpoints of a run the trial abandoned to train again
        # from the start, kept until the snapshot no longer restores from any of them.
        self.abandoned: dict[str, list[str]] = {}
        self._interval = min_interval_s
        self._last_check = 0.0

    def trial_result(self, trials: list, trial, result: dict[str, Any]) -> None:
        name = result.get("checkpoint_dir_name")
        if result.get("eval_index") == 0 and self.checkpoints.get(trial.trial_id):
            # A first evaluation again: the trial trains from the start (its checkpoint was
            # damaged, tune.trainable). The abandoned run's checkpoints are not its best any
            # more; they go once no snapshot restores from them (_prune). Each is as large
            # as a live one (a MiniLM's with its optimizer state, about 170 MiB).
            self._abandoned().setdefault(trial.trial_id, []).extend(self.checkpoints[trial.trial_id])
            self.checkpoints[trial.trial_id] = {}
        if name:
            self.checkpoints.setdefault(trial.trial_id, {})[name] = float(result.get(METRIC, float("-inf")))
            # Should the new run reuse a directory name of the abandoned one, the directory
            # is the new run's now: never delete it as abandoned.
            waiting = self._abandoned().get(trial.trial_id, [])
            if name in waiting:
                waiting.remove(name)

    def step_ended(self, trials: list) -> None:
        if time.monotonic() - self._last_check < self._interval:
            return
        # Nothing can be deleted while every trial has at most a best and a latest, and no
        # abandoned run's checkpoints wait.
        if any(len(c) > 2 for c in self.checkpoints.values()) or any(self._abandoned().values()):
            self.prune(trials)

    def experiment_ended(self, trials: list) -> None:
        # Ray has just written and copied its final snapshot (tune.run's forced,
        # waited-for sync comes before the callbacks' experiment end).
        self.prune(trials, sweep=True)

    def prune(self, trials: list, sweep: bool = False) -> list[str]:
        """Delete what the snapshot on storage lets go; returns the deleted paths.

        ``sweep`` also deletes, in finished trials, checkpoint directories no result
        names: ones a killed driver's trials wrote after its last snapshot, which the
        resumed trials did not write again (stopped earlier by ASHA, say).

        Never raises: a storage error (throttling, a network blip) is logged and the
        checkpoint is tried again next time, rather than ending the search.
        """
        self._last_check = time.monotonic()
        try:
            return self._prune(trials, sweep)
        except Exception:  # noqa: BLE001 - retention must never fail a search
            logger.warning("checkpoint retention: will try again later", exc_info=True)
            return []

    def _prune(self, trials: list, sweep: bool) -> list[str]:
        if not trials:
            return []
        storage = trials[0].storage
        fs = storage.storage_filesystem
        started = time.monotonic()
        source = storage.experiment_fs_path
        if getattr(self, "backed_up", False):
            source = latest_backup(fs, source)
            if source is None:
                return []  # nothing backed up yet: nothing is known to be safe to delete
        path = newest_snapshot(source, fs)
        try:
            recorded = read_snapshot(path, fs) if path else {}
        except (json.JSONDecodeError, FileNotFoundError):
            return []  # Ray is copying it right now: look again next time
        deleted = []
        for trial in trials:
            mine, snap = self.checkpoints.get(trial.trial_id), recorded.get(trial.trial_id)
            if not mine or snap is None:
                continue  # not in the snapshot yet: a resume would not know the trial
            finished = snap.status == "TERMINATED"
            latest = snap.checkpoint
            if latest is None:
                if not (finished or snap.status == "ERROR"):
                    continue
                # A trial that ended on a result without a checkpoint (diverged, or
                # stopped between checkpoints with --checkpoint-every), or that failed
                # there for good (ERROR; left out before, such a trial kept every
                # checkpoint it wrote). Ray processes a result's save before it asks for
                # the next result, so its newest is registered: what a resume with
                # resume_errored restores an ERROR trial from. Not `finished`, so the
                # one before is kept too.
                latest = max(mine, key=checkpoint_index)
            doomed = superseded(mine, latest, finished)
            gone = self._abandoned().get(trial.trial_id, [])
            if gone and latest in mine and (finished or any(checkpoint_index(n) < checkpoint_index(latest)
                                                            for n in mine)):
                # The snapshot restores from the new run's latest, or the new run's one
                # before it (never a checkpoint of the abandoned run).
                doomed += list(gone)
            if sweep and finished:
                # A killed driver's trials can only have written past the checkpoint the
                # trial finished on. Older unnamed ones may be Ray's own (its callback
                # state can trail its trial state after a kill): never those.
                doomed += [name for name in _checkpoint_dirs(fs, trial.path)
                           if name not in mine and checkpoint_index(name) > checkpoint_index(latest)]
            for name in doomed:
                target = f"{trial.path}/{name}"
                try:
                    fs.delete_dir(target)
                except FileNotFoundError:
                    pass
                except OSError:
                    # One stuck directory must not stop pruning for every other trial.
                    logger.warning("checkpoint retention: could not delete %s; will try again", target,
                                   exc_info=True)
                    continue
                mine.pop(name, None)  # only once it is gone: a failed delete is retried
                if name in gone:
                    gone.remove(name)
                deleted.append(target)
        # Reading a large search's snapshot from object storage and deleting take a
        # while: keep that under 5% of the driver's time, as Ray does for writing it.
        self._interval = max(self.min_interval_s, 20 * (time.monotonic() - started))
        if deleted:
            logger.debug("deleted %d superseded checkpoints: %s", len(deleted), deleted)
        return deleted

    def _abandoned(self) -> dict[str, list[str]]:
        # Instances pickled by searches started before abandoned runs were tracked lack it.
        return self.__dict__.setdefault("abandoned", {})

    def saved_state(self) -> dict[str, Any]:
        return {"checkpoints": {k: dict(v) for k, v in self.checkpoints.items()},
                "abandoned": {k: list(v) for k, v in self._abandoned().items() if v}}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.checkpoints = {k: dict(v) for k, v in state.get("checkpoints", {}).items()}
        self.abandoned = {k: list(v) for k, v in state.get("abandoned", {}).items()}
