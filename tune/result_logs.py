"""Keep a retried trial's result log whole.

When Ray restarts a failed trial from its checkpoint (``FailureConfig(max_failures)``,
a lost node), its JSON and CSV loggers first copy the trial's ``result.json`` and
``progress.csv`` *from storage* over the driver's own, up-to-date copies. Storage has
them only as of Ray's last experiment snapshot copied there: a snapshot period old
(tune.driver_process.snapshot_period), or more while a copy to slow storage is still running.
So the results reported since then vanish from the trial's log, from the trial table
and from ``nerkit report``. Just before the copy back, this callback uploads the
driver's copies, so the copy back is whole.

Ray's JSON logger copies ``result.json`` back as the trial starts, right after this
callback; its CSV logger copies ``progress.csv`` back only with the retry's first
result, and snapshots in between upload the driver's whole copy again. Left open: a
snapshot's background copy to storage (its own thread) that is rewriting these files
at the very moment of the copy back (a window as long as that copy).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow.fs as pafs
from tune.ray_hooks import SearchCallback

from tune.storage import read_bytes, write_bytes

logger = logging.getLogger(__name__)

#: The files Ray's loggers copy back from storage when a trial (re)starts from a
#: checkpoint (ray.tune.logger: JsonLoggerCallback, CSVLoggerCallback).
RESULT_LOG = "result.json"
RESTORED_LOGS = (RESULT_LOG, "progress.csv")


def upload_result_logs(local_dir: str, fs: pafs.FileSystem, remote_dir: str) -> list[str]:
    """Copy the result logs in ``local_dir`` to ``remote_dir`` on ``fs``; the names copied."""
    copied = []
    for name in RESTORED_LOGS:
        local = Path(local_dir, name)
        if not local.is_file():
            continue
        fs.create_dir(remote_dir, recursive=True)
        write_bytes(f"{remote_dir}/{name}", local.read_bytes(), fs)
        copied.append(name)
    return copied


def read_result_log(trial) -> list[dict]:
    """Every result in a trial's ``result.json`` on storage, oldest first, as Ray wrote
    them (nested). A line that does not parse (the last one, cut off by an interrupted
    copy, or a damaged one) is left out with a warning naming the file and line: one bad
    line must not cost the trial the rest of its log.
    """
    path = f"{trial.storage.trial_fs_path}/{RESULT_LOG}"
    data = read_bytes(path, trial.storage.storage_filesystem)
    results = []
    # Split and decoded line by line: one damaged byte costs its line only.
    for number, line in enumerate((data or b"").split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            result = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            logger.warning("%s line %d is not a whole JSON result (%s); left out", path, number, why)
            continue
        if isinstance(result, dict):
            results.append(result)
        else:
            logger.warning("%s line %d is not a JSON object; left out", path, number)
    return results


def logged_results(trial) -> list[dict]:
    """A trial's results as its ``result.json`` on storage holds them, oldest first.

    Only the results up to the one Ray's own record of the trial ends with
    (``trial.last_result``): storage's log can run a result or two ahead of the experiment
    snapshot the trial was restored from, and those the trial reports again.
    """
    results = read_result_log(trial)
    last = trial.last_result.get("eval_index")
    return results if last is None else [r for r in results if r.get("eval_index", last) <= last]


class ResultLogUpload(SearchCallback):
    """Upload a restarting trial's result logs to storage just before Ray copies them back."""

    def trial_started(self, trials, trial) -> None:
        # Ray appends its logger callbacks after the user's, so this runs right before
        # they copy the logs back, with nothing in between on this (the controller's)
        # thread; the module doc says what can still interleave. Only a trial restarting
        # from a checkpoint gets them copied back, and only a retry (not a resumed
        # driver, whose staging directory is new) has them locally.
        if trial.checkpoint is None or not trial.local_path:
            return
        storage = trial.storage
        local = isinstance(storage.storage_filesystem, pafs.LocalFileSystem)
        if local and Path(trial.local_path).resolve() == Path(storage.trial_fs_path).resolve():
            return  # nothing separate to upload
        try:
            copied = upload_result_logs(trial.local_path, storage.storage_filesystem, storage.trial_fs_path)
        except Exception:
            # The trial still restarts; its log may then miss its last results.
            logger.warning("could not upload the result logs of %s before its restart", trial, exc_info=True)
            return
        logger.debug("uploaded %s of %s before its restart", copied, trial)
