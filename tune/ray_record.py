"""Reading Ray's record of an experiment: its trials, their results and checkpoints.

:func:`read_analysis` reads Ray's snapshot of the trials (statuses, configs,
checkpoints), waiting out a copy in flight or falling back on the last complete backup;
:func:`trial_results` reads a trial's result log as Ray's analysis would, tolerating a
damaged line. The rest answer one question each about a trial, for the trial tables
(tune.tables).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from typing import Any

import pyarrow.fs as pafs

from tune.settings import METRIC
from tune.snapshot import SNAPSHOT_PREFIX, files_ray_reads, newest_snapshot, state_files
from tune.state_backup import BACKUP_DIR, is_complete, latest_backup
from tune.storage import filesystem, join, read_bytes, uri_in

logger = logging.getLogger(__name__)

#: A cut-off snapshot is usually Ray's copy to storage in flight: how long to wait for
#: it to land before reading the last complete backup instead (tune.state_backup).
SNAPSHOT_WAIT_S = (0.2, 0.5, 1.0)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def trial_results(trial) -> list[dict[str, Any]]:
    """A trial's logged results, flattened as Ray's own analysis flattens them
    (``per_type/<TYPE>/<metric>``), NaN values dropped."""
    from tune.result_logs import read_result_log

    return [_flat(result) for result in read_result_log(trial)]


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` flattened as Ray's own analysis flattens it, NaN values dropped."""
    from ray.tune.utils import flatten_dict

    flat = flatten_dict(dict(result), delimiter="/")
    return {k: v for k, v in flat.items() if not (isinstance(v, float) and math.isnan(v))}


def _iteration(result: dict[str, Any]) -> int:
    """The result's ``training_iteration`` (0 where it has none)."""
    return int(result.get("training_iteration") or 0)


def read_analysis(experiment_path: str):
    """Ray's analysis of the experiment's trials (statuses, configs, checkpoints), or
    None when no trial has started yet.

    Ray copies its snapshot to storage in the background, not atomically, so a reader
    can find it cut off: mid-copy (it lands within moments) or for good (a driver killed
    during a copy). Waited out, or else read from the last complete backup
    (tune.state_backup), as is a snapshot that is missing (a partial copy of the
    directory). Result logs are read by :func:`trial_results`, not here.

    Raises:
        ValueError: the snapshot is cut off or missing and there is no backup to read.
    """
    for wait in (*SNAPSHOT_WAIT_S, None):
        snapshot = newest_snapshot(experiment_path)
        if snapshot is None:
            break
        if is_complete(read_bytes(snapshot)):
            try:
                return _ray_analysis(experiment_path)
            except (json.JSONDecodeError, FileNotFoundError):
                pass  # rewritten between this read and Ray's own: look again
        if wait is not None:
            time.sleep(wait)
    fs, path = filesystem(experiment_path)
    if snapshot is None:
        if latest_backup(fs, path) is None and not reported_trial_directories(experiment_path):
            return None  # no trial has started yet
        # Read from the backup, never as "no trials": the tables written next would
        # replace the stored ones with empty ones.
        problem = (f"{experiment_path} has no {SNAPSHOT_PREFIX}*.json, Ray's record of its trials (a partial "
                   "copy of the directory?)")
    else:
        problem = f"{snapshot} is cut off (a driver killed while Ray copied it, or a copy still in flight)"
    for _ in range(2):  # a backup can be pruned as a newer one lands: take the newer one then
        backup = latest_backup(fs, path)
        if backup is None:
            raise ValueError(
                f"{problem}, and there is no complete copy of it in {join(experiment_path, BACKUP_DIR)} (searches "
                "started before nerkit kept one, or a search in its first seconds: try again), so Ray's record "
                "of the trials cannot be read; nothing was written. The trial directories (result.json, "
                "checkpoints) are left as they are")
        names = [n for n in files_ray_reads(state_files(fs, backup)) if n.startswith(SNAPSHOT_PREFIX)]
        shown = join(experiment_path, BACKUP_DIR, backup.rsplit('/', 1)[-1])
        try:
            analysis = _ray_analysis(experiment_path, snapshot=f"{backup}/{names[0]}")
        except (FileNotFoundError, IndexError):
            continue
        logger.warning("%s; the tables show the last complete copy, %s, which may miss the last few seconds",
                       problem, shown)
        return analysis
    raise ValueError(f"{problem}, and its backups in {join(experiment_path, BACKUP_DIR)} changed while being read; "
                     "try again")


def reported_trial_directories(experiment: str) -> list[str]:
    """Names of the trial directories under ``experiment`` whose trial reported a result
    (a non-empty ``result.json``), sorted."""
    fs, root = filesystem(experiment)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith("trial_"))
    return [n for n in names if fs.get_file_info(f"{root}/{n}/result.json").size]


def _ray_analysis(experiment_path: str, snapshot: str | None = None):
    """``ExperimentAnalysis`` of ``experiment_path``, reading its trials from ``snapshot``
    (a path in the experiment's filesystem) when given, and fetching no result logs
    (:func:`trial_results` reads them, tolerating a damaged line where Ray's reader drops the
    trial's whole log)."""
    from ray.tune import ExperimentAnalysis

    fs, exp_fs_path = filesystem(experiment_path)

    class Analysis(ExperimentAnalysis):
        # Two private hooks of Ray 2.60's ExperimentAnalysis (pinned in pyproject.toml):
        # _load_trials places the trials under _experiment_fs_path, which the constructor
        # sets to the snapshot's directory; _fetch_trial_dataframes reads every log.
        def _load_trials(self):
            if snapshot is not None:
                self._experiment_fs_path = exp_fs_path  # the trials are here, not beside a backup's snapshot
            return super()._load_trials()

        def _fetch_trial_dataframes(self):
            return {}

    if snapshot is None:
        return Analysis(experiment_path, default_metric=METRIC, default_mode="max")
    # Given the snapshot file itself, Ray's constructor looks for none in the experiment
    # directory (where a partial copy may lack one).
    return Analysis(snapshot, storage_filesystem=fs, default_metric=METRIC, default_mode="max")


def log_behind(results: list[dict[str, Any]], last: dict[str, Any]) -> bool:
    """Whether Ray's last result of a trial is an evaluation its result log lacks."""
    if "eval_index" not in last:
        return False
    logged = [int(r["eval_index"]) for r in results if "eval_index" in r]
    return not logged or max(logged) < int(last["eval_index"])


def checkpointed_results(trial, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluations of the trial's last start that its result log lacks (cut short, or a
    line that does not parse) but Ray's record of its checkpoints holds, flattened as
    :func:`trial_results` flattens them, in evaluation order.

    Ray keeps the metrics of every checkpointed evaluation in its snapshot, those whose
    files retention deleted included, so the best evaluation is never lost with a line.
    """
    since = last_start(results)
    logged = {int(r["eval_index"]) for r in results if "eval_index" in r and _iteration(r) >= since}
    found: dict[int, dict[str, Any]] = {}
    for r in trial.run_metadata.checkpoint_manager.best_checkpoint_results:
        m = r.metrics
        if ("eval_index" not in m or int(m["eval_index"]) in logged or m.get("stop_reason") == "diverged"
                or _iteration(m) < since):
            continue
        found[int(m["eval_index"])] = _flat(m)
    return [found[i] for i in sorted(found)]


def lacks_evaluations(results: list[dict[str, Any]]) -> bool:
    """Whether the results of the trial's last start skip an evaluation below their last
    one: a lost line of an evaluation with no checkpoint (``--checkpoint-every`` above 1),
    which Ray's record cannot give back."""
    since = last_start(results)
    seen = {int(r["eval_index"]) for r in results
            if "eval_index" in r and r.get("stop_reason") != "diverged" and _iteration(r) >= since}
    return bool(seen) and len(seen) != max(seen) + 1


def last_start(results: list[dict[str, Any]]) -> int:
    """The ``training_iteration`` of the trial's last start from scratch: its last first
    evaluation (a trial whose checkpoint was damaged trains again from the start,
    tune.trainable; a restore from a checkpoint goes on from a later evaluation)."""
    starts = [_iteration(r) for r in results if r.get("eval_index") == 0]
    return max(starts, default=0)


def since_last_start(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results of the trial's last start from scratch (:func:`last_start`) on."""
    since = last_start(results)
    return [r for r in results if _iteration(r) >= since]


def best_checkpoint(trial, since_iteration: int = 0) -> tuple[Any, dict[str, Any]]:
    """The trial's checkpoint with the highest dev F1 and the result it came with, among
    those of its last start (``since_iteration``): the run that made its history.

    The same choice as Ray's ``ExperimentAnalysis.get_best_checkpoint`` (NaN left out,
    the first of equals), which returns the checkpoint alone.
    """
    scored = [(r.checkpoint, r.metrics) for r in trial.run_metadata.checkpoint_manager.best_checkpoint_results
              if _finite(r.metrics.get(METRIC))
              and _iteration(r.metrics) >= since_iteration]
    return max(scored, key=lambda c: c[1][METRIC], default=(None, {}))


def checkpoint_uri(checkpoint, experiment: str) -> str:
    """A checkpoint's full location: Ray keeps object-store paths without their scheme
    (nor an Azure account or an HDFS host), so it is rebuilt on ``experiment``'s URI."""
    return uri_in(experiment, checkpoint.path)


def trial_error(trial) -> str:
    if trial.status != "ERROR":
        return ""
    # The tail of the trace: the exception line is what a reader of the table needs. Ray
    # colours its frames for terminals; the codes would reach Parquet, CSV and JSON.
    return _ANSI.sub("", str(trial.get_error() or ""))[-2000:]


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
