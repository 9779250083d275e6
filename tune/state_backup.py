"""A last complete copy of Ray's experiment state, so a driver killed mid-copy can resume.

Ray writes its experiment state (``experiment_state-*.json``, the searcher's
``searcher-state-*.pkl`` and ``search_gen_state-*.json``, the callbacks'
``callback-states-*.pkl``) in the driver's staging directory, then copies the files
to the experiment directory on storage in the background, every second or so
(tune.driver.snapshot_period). The copy is not atomic: a driver killed during it
leaves one file empty or cut off. Ray's restore then fails on it, and, worse, Ray
answers that by starting the whole experiment again from nothing.

So, about once a second, ``StateBackup`` (run by the controller thread, which is
also the only writer of the staging directory) checks that the state files on storage
equal the ones in the driver's staging directory, that is that Ray's last copy has
landed whole, then copies them into ``.nerkit/state/<n>/`` under the experiment and
marks that copy complete; if Ray's copy is still in flight it looks again next step. ``restore_if_broken`` (run by
``nerkit search --resume`` before Ray reads anything) checks the files Ray will read
and, when one is cut off, moves the state files aside and puts the last complete
copy in their place. Checkpoint retention (tune.retention) reads the snapshot in this
copy, not the live one, so the checkpoints a restored copy names are still there.
"""

from __future__ import annotations

import io
import json
import logging
import pickletools
import time
from datetime import datetime, timezone

import pyarrow.fs as pafs
from ray.tune import Callback

from tune.storage import filesystem

logger = logging.getLogger(__name__)

#: Ray's state files in the experiment directory (the ``CKPT_FILE_TMPL`` of
#: TuneController, SearchGenerator, Searcher, CallbackList and BasicVariantGenerator).
STATE_PREFIXES = ("experiment_state-", "search_gen_state-", "searcher-state-", "callback-states-",
                  "basic-variant-state-")
BACKUP_DIR = ".nerkit/state"
BROKEN_DIR = ".nerkit/broken"
COMPLETE = "COMPLETE"  # written last: a backup without it was cut off itself
#: Back up at most this often; Ray snapshots about every second.
MIN_INTERVAL_S = 1.0
#: How soon to look again when Ray's copy to storage has not landed yet.
RETRY_S = 0.1


def state_files(fs: pafs.FileSystem, exp: str) -> list[str]:
    """The names of Ray's state files directly in ``exp``, sorted."""
    infos = fs.get_file_info(pafs.FileSelector(exp, allow_not_found=True))
    return sorted(i.base_name for i in infos
                  if i.type == pafs.FileType.File and i.base_name.startswith(STATE_PREFIXES))


def files_ray_reads(names: list[str]) -> list[str]:
    """Of ``names``, the ones Ray's restore reads: the newest (largest name) per prefix."""
    newest = {}
    for name in names:
        prefix = next(p for p in STATE_PREFIXES if name.startswith(p))
        newest[prefix] = max(newest.get(prefix, name), name)
    return sorted(newest.values())


def is_complete(data: bytes) -> bool:
    """Whether a state file's bytes are whole: a pickle that reaches its STOP opcode
    (Ray pickles some state under ``.json`` names too) or JSON that parses. Nothing is
    unpickled, so nothing is imported or run."""
    if not data:
        return False
    if data[:1] == b"\x80":  # pickle protocol >= 2 starts with PROTO
        try:
            for _ in pickletools.genops(io.BytesIO(data)):
                pass
        except Exception:  # noqa: BLE001 - genops raises ValueError and others on a cut-off stream
            return False
        return True
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def _read_or_none(fs: pafs.FileSystem, path: str) -> bytes | None:
    try:
        return _read(fs, path)
    except FileNotFoundError:
        return None


def _write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as f:
        f.write(data)


def _backups(fs: pafs.FileSystem, exp: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(f"{exp}/{BACKUP_DIR}", allow_not_found=True))
    found = [i for i in infos if i.type == pafs.FileType.Directory and i.base_name.isdigit()]
    return [i.path for i in sorted(found, key=lambda i: int(i.base_name))]


def latest_backup(fs: pafs.FileSystem, exp: str) -> str | None:
    """The newest complete backup directory of ``exp`` (a path in ``fs``), or None."""
    for path in reversed(_backups(fs, exp)):
        if fs.get_file_info(f"{path}/{COMPLETE}").type == pafs.FileType.File:
            return path
    return None


def back_up(fs: pafs.FileSystem, exp: str, staging: str | None = None) -> str | None:
    """Copy Ray's state files in ``exp`` to a new backup; returns its path, or None when
    they are not one complete snapshot (the previous backup stays then).

    ``staging`` is the driver's local staging directory, where Ray writes each snapshot
    whole before copying it to ``exp``: given, the files on storage must equal it, so
    a copy in flight (some files new, some old, one cut off) is never backed up.
    """
    contents = {name: _read(fs, f"{exp}/{name}") for name in state_files(fs, exp)}
    incomplete = [name for name, data in contents.items() if not is_complete(data)]
    if staging is not None and not incomplete:
        local = pafs.LocalFileSystem()
        incomplete = [name for name in sorted(set(state_files(local, staging)) | set(contents))
                      if name not in contents or _read_or_none(local, f"{staging}/{name}") != contents[name]]
    if not contents or incomplete:
        logger.debug("not backing up %s now: %s not complete or not yet copied", exp, incomplete)
        return None
    older = _backups(fs, exp)
    number = int(older[-1].rsplit("/", 1)[1]) + 1 if older else 0
    target = f"{exp}/{BACKUP_DIR}/{number:08d}"
    fs.create_dir(target, recursive=True)
    for name, data in contents.items():
        _write(fs, f"{target}/{name}", data)
    _write(fs, f"{target}/{COMPLETE}", json.dumps(sorted(contents)).encode())
    for path in older:  # only once the new one is complete
        fs.delete_dir(path)
    return target


def restore_if_broken(exp: str) -> str | None:
    """Before a resume: if a state file Ray will read is cut off, put the last complete
    backup in place of the state files (moved to ``.nerkit/broken/<time>/``, never
    deleted) and return the backup's path; None when nothing was broken.

    Raises ``ValueError`` when a file is cut off and there is no complete backup.
    """
    fs, path = filesystem(exp)
    names = state_files(fs, path)
    broken = [n for n in files_ray_reads(names) if not is_complete(_read(fs, f"{path}/{n}"))]
    if not broken:
        return None
    backup = latest_backup(fs, path)
    if backup is None:
        raise ValueError(
            f"{exp}/{broken[0]} is cut off: the driver was killed while Ray was copying its state, and "
            f"there is no complete copy in {exp}/{BACKUP_DIR} (searches started before nerkit kept one). "
            "Start a new search under another --name; this experiment's trial directories, checkpoints "
            "and optuna.db are left as they are")
    aside = f"{path}/{BROKEN_DIR}/{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}"
    fs.create_dir(aside, recursive=True)
    for name in names:
        fs.move(f"{path}/{name}", f"{aside}/{name}")
    for name in json.loads(_read(fs, f"{backup}/{COMPLETE}")):
        _write(fs, f"{path}/{name}", _read(fs, f"{backup}/{name}"))
    logger.warning("%s was cut off (the driver died while Ray copied it): resuming from the last "
                   "complete copy, %s; the state files found are kept in %s", broken, backup, aside)
    return backup


class StateBackup(Callback):
    """Keeps ``.nerkit/state`` one complete copy of Ray's state behind storage at most."""

    def __init__(self, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.min_interval_s = min_interval_s
        self._interval = min_interval_s
        self._last = 0.0
        self._seen: tuple | None = None  # the live snapshot file's (name, size, mtime) last backed up

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if time.monotonic() - self._last >= self._interval:
            self.back_up(trials)

    def on_experiment_end(self, trials: list, **info) -> None:
        # Ray's final snapshot has been written and its copy waited for.
        self.back_up(trials)

    def back_up(self, trials: list) -> str | None:
        """Back up the state on storage if it changed since the last backup; never raises."""
        if not trials:
            return None
        storage = trials[0].storage
        fs, exp = storage.storage_filesystem, storage.experiment_fs_path
        started = time.monotonic()
        target = None
        try:
            names = [n for n in state_files(fs, exp) if n.startswith(STATE_PREFIXES[0])]
            info = fs.get_file_info(f"{exp}/{names[-1]}") if names else None
            seen = (info.base_name, info.size, info.mtime_ns) if info else None
            if seen is not None and seen != self._seen:
                target = back_up(fs, exp, staging=storage.experiment_driver_staging_path)
                if target is not None:
                    self._seen = seen
        except Exception:  # noqa: BLE001 - a backup must never end a search; tried again next time
            logger.warning("backing up the experiment state failed; will try again", exc_info=True)
        took = time.monotonic() - started
        self._last = time.monotonic()
        # Ray's copy still in flight (or Ray saved a newer snapshot than it has copied):
        # look again soon, or the checks fall into step with Ray's period and never match.
        # Either way keep this under 5% of the driver's time on slow object storage.
        pending = seen is not None and seen != self._seen
        self._interval = max(RETRY_S if pending else self.min_interval_s, 20 * took)
        if target is not None:
            logger.debug("state backup %s of %s in %.3f s", target, seen, took)
        return target
