"""Keep a retried trial's result log whole.

When Ray restarts a failed trial from its checkpoint (``FailureConfig(max_failures)``,
a lost node), its JSON and CSV loggers first copy the trial's ``result.json`` and
``progress.csv`` *from storage* over the driver's own, up-to-date copies. Storage has
them only as of Ray's last experiment snapshot, about a second old
(tune.driver.snapshot_period), so the results reported since then vanish from the
trial's log, from the trial table and from ``nerkit report``. Before the restart
starts, this callback uploads the driver's copies, so the copy back is whole.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.fs as pafs
from ray.tune import Callback

logger = logging.getLogger(__name__)

#: The files Ray's loggers copy back from storage when a trial (re)starts from a
#: checkpoint (ray.tune.logger: JsonLoggerCallback, CSVLoggerCallback).
RESTORED_LOGS = ("result.json", "progress.csv")


def upload_result_logs(local_dir: str, fs: pafs.FileSystem, remote_dir: str) -> list[str]:
    """Copy the result logs in ``local_dir`` to ``remote_dir`` on ``fs``; the names copied."""
    copied = []
    for name in RESTORED_LOGS:
        local = Path(local_dir, name)
        if not local.is_file():
            continue
        fs.create_dir(remote_dir, recursive=True)
        pafs.copy_files(local.as_posix(), f"{remote_dir}/{name}", destination_filesystem=fs)
        copied.append(name)
    return copied


class ResultLogUpload(Callback):
    """Upload a failed trial's result logs to storage before Ray restarts it."""

    def on_trial_recover(self, iteration, trials, trial, **info):
        storage = trial.storage
        try:
            # A background sync of the driver's files that started before the last
            # result was written could land after this upload and undo it.
            storage.syncer.wait()
        except Exception:  # Ray logs its own sync errors; the upload below still helps
            logger.debug("waiting for Ray's sync before uploading %s's logs failed", trial, exc_info=True)
        local = isinstance(storage.storage_filesystem, pafs.LocalFileSystem)
        if not trial.local_path or (local and Path(trial.local_path).resolve() == Path(storage.trial_fs_path).resolve()):
            return  # nothing separate to upload
        try:
            copied = upload_result_logs(trial.local_path, storage.storage_filesystem, storage.trial_fs_path)
        except Exception:
            # The trial still restarts; its log may then miss its last results.
            logger.warning("could not upload the result logs of %s before its restart", trial, exc_info=True)
            return
        logger.debug("uploaded %s of %s before its restart", copied, trial)
