"""A last complete copy of Ray's experiment state, so a driver killed mid-copy can resume.

Ray writes its experiment state (``experiment_state-*.json``, the searcher's
``searcher-state-*.pkl`` and ``search_gen_state-*.json``, the callbacks'
``callback-states-*.pkl``) whole in the driver's staging directory, then copies the
files to the experiment directory on storage in the background, every second or so
(tune.driver_process.snapshot_period). The copy is not atomic: a driver killed during it
leaves a file empty or cut off. Ray's restore then fails on it, and, worse, Ray
answers that by starting the whole experiment again from nothing. A resumed search
also copies ``tuner.pkl`` and nerkit's ``search.json`` again with every snapshot (Ray
stages every top-level ``.json``/``.pkl`` on resume), so those can be cut off too.

So ``StateBackup`` (run by the controller thread, the only writer of the staging
directory) notes each version of the staged files Ray reads, and, about once a
second, copies the files on storage into ``.nerkit/state/<n>/`` when they equal one
whole staged version: a copy in flight (some files new, some old, one cut off) never
does. A ``COMPLETE`` marker is written last. ``tune.state_restore`` (run by
``nerkit search --resume`` before anything is read) checks the files a resume reads
and, when one is cut off or they are whole but from two snapshots (tune.state_check),
moves them aside and puts the last complete copy in their place. Checkpoint retention
(tune.retention) reads the snapshot in this copy, not the live one, so the checkpoints
a restored copy names are still there.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import logging
import pickletools
import time

import pyarrow.fs as pafs

from tune.ray_hooks import SearchCallback
from tune.snapshot import files_ray_reads, state_files
from tune.state_check import disagreements
from tune.storage import is_file, read_bytes, write_bytes
from tune.study_store import SQLITE_MAGIC
from tune.study_store import is_whole as study_is_whole

logger = logging.getLogger(__name__)

#: Written once per search and read by every resume (Ray's Tuner, nerkit's settings).
STATIC_FILES = ("tuner.pkl", "search.json")
BACKUP_DIR = ".nerkit/state"
BROKEN_DIR = ".nerkit/broken"
COMPLETE = "COMPLETE"  # written last: a backup without it was cut off itself
#: Back up at most this often; Ray snapshots about every second.
MIN_INTERVAL_S = 1.0
#: How soon to look again when Ray's copy to storage has not landed yet.
RETRY_S = 0.1
#: Staged versions remembered: storage may land a version after Ray staged newer ones
#: (a copy slower than the snapshot period).
VERSIONS = 16
#: Warn when no backup has landed for this long although the state changed.
STALL_WARN_S = 120.0


def is_complete(data: bytes | None) -> bool:
    """Whether a state file's bytes are whole: a pickle that reaches its STOP opcode
    (Ray pickles some state under ``.json`` names too), JSON that parses, or a SQLite
    study copy as long as its header says. Nothing is unpickled, so nothing is imported
    or run."""
    if not data:
        return False
    if data.startswith(SQLITE_MAGIC):
        return study_is_whole(data)
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


def version(files: dict[str, bytes]) -> frozenset:
    """A comparable fingerprint of a set of state files (name and content hash)."""
    return frozenset((name, hashlib.sha256(data).hexdigest()) for name, data in files.items())


def read_state(fs: pafs.FileSystem, exp: str) -> dict[str, bytes]:
    """The state files Ray's restore reads in ``exp``, by name."""
    out = {}
    for name in files_ray_reads(state_files(fs, exp)):
        data = read_bytes(f"{exp}/{name}", fs)
        if data is not None:
            out[name] = data
    return out


def stat(fs: pafs.FileSystem, exp: str) -> tuple:
    """Names, sizes and modification times of the state files Ray reads in ``exp``:
    cheap to get, and it changes whenever a file is rewritten."""
    names = files_ray_reads(state_files(fs, exp))
    return tuple((i.base_name, i.size, i.mtime_ns) for i in fs.get_file_info([f"{exp}/{n}" for n in names]))


def _backups(fs: pafs.FileSystem, exp: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(f"{exp}/{BACKUP_DIR}", allow_not_found=True))
    found = [i for i in infos if i.type == pafs.FileType.Directory and i.base_name.isdigit()]
    return [i.path for i in sorted(found, key=lambda i: int(i.base_name))]


def latest_backup(fs: pafs.FileSystem, exp: str) -> str | None:
    """The newest complete backup directory of ``exp`` (a path in ``fs``), or None."""
    for path in reversed(_backups(fs, exp)):
        if is_file(f"{path}/{COMPLETE}", fs):
            return path
    return None


def back_up(fs: pafs.FileSystem, exp: str, staged: collections.abc.Collection | None = None,
            contents: dict[str, bytes] | None = None) -> str | None:
    """Copy the state files Ray reads in ``exp`` (and ``STATIC_FILES``) to a new backup;
    returns its path, or None when they are not one complete snapshot (the previous
    backup stays then).

    ``staged`` holds ``version``s of what Ray staged whole in the driver's staging
    directory: given, the files on storage must be one of them, so a copy in flight
    (some files new, some old, one cut off) is never backed up. Files that disagree on
    the trials (tune.state_check) are never backed up either. ``contents``: those
    files as the caller just read them (``read_state``), so they are not read twice.
    """
    contents = dict(read_state(fs, exp) if contents is None else contents)
    incomplete = [name for name, data in contents.items() if not is_complete(data)]
    if not contents or incomplete or (staged is not None and version(contents) not in staged):
        logger.debug("not backing up %s now: %s cut off, or not yet copied whole", exp, incomplete)
        return None
    # A staged version never disagrees with itself; this guards callers without ``staged``.
    mixed = disagreements(contents)
    if mixed:
        logger.debug("not backing up %s now: %s", exp, "; ".join(mixed))
        return None
    older = _backups(fs, exp)
    previous = latest_backup(fs, exp)
    for name in STATIC_FILES:
        data = read_bytes(f"{exp}/{name}", fs)
        if data is not None and not is_complete(data) and previous is not None:
            data = read_bytes(f"{previous}/{name}", fs)  # being copied again: keep the last whole one
        if data is not None and is_complete(data):
            contents[name] = data
    number = int(older[-1].rsplit("/", 1)[1]) + 1 if older else 0
    target = f"{exp}/{BACKUP_DIR}/{number:08d}"
    fs.create_dir(target, recursive=True)
    for name, data in contents.items():
        write_bytes(f"{target}/{name}", data, fs)
    write_bytes(f"{target}/{COMPLETE}", json.dumps(sorted(contents)).encode(), fs)
    for path in older:  # only once the new one is complete
        fs.delete_dir(path)
    return target


class StateBackup(SearchCallback):
    """Keeps ``.nerkit/state`` a complete copy of the last snapshot that landed whole."""

    def __init__(self, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.min_interval_s = min_interval_s
        self._backed_up: frozenset | None = None  # version of the last backup
        self._reset()

    def _reset(self) -> None:
        """Per-session state: clocks, what this driver staged, what it last read."""
        self._interval = self.min_interval_s
        self._last = 0.0
        self._staged: collections.deque = collections.deque(maxlen=VERSIONS)
        self._since = time.monotonic()  # when the last backup landed (or we started)
        self._warned = False
        self._stats: dict[str, tuple] = {}  # "staged"/"storage" -> stat() when last read

    def started(self) -> None:
        # Ray pickles this callback with the Tuner and a resume unpickles it in another
        # process, maybe on another machine: the clocks and staged versions it carries
        # mean nothing there.
        self._reset()

    def step_ended(self, trials: list) -> None:
        if not trials:
            return
        if time.monotonic() - self._last >= self._interval:
            self.back_up(trials)
            return
        # Between backups, still note every version Ray stages (a local stat, and a read
        # only when it changed): with slow storage the backups are seconds apart, and
        # storage can only ever be matched against a version noted here.
        try:
            self._note_staged(trials[0].storage)
        except Exception:  # noqa: BLE001 - as in back_up: never end a search
            logger.debug("reading the staged experiment state failed; will try again", exc_info=True)
            self._stats.pop("staged", None)

    def experiment_ended(self, trials: list) -> None:
        # Ray's final snapshot has been written and its copy waited for. Read it whatever
        # stat() says: object stores give modification times to the second, so a rewrite
        # in the same second with the same sizes looks unchanged, and the last backup
        # (which retention's final sweep reads) would lag a version behind.
        self._stats.pop("storage", None)
        self.back_up(trials)

    def back_up(self, trials: list) -> str | None:
        """Back up the state on storage if it is a whole, new snapshot; never raises."""
        if not trials:
            return None
        storage = trials[0].storage
        started = time.monotonic()
        target, pending = None, False
        try:
            self._note_staged(storage)
            fs, exp = storage.storage_filesystem, storage.experiment_fs_path
            current = read_state(fs, exp) if self._changed("storage", fs, exp) else None
            current_version = version(current) if current else None
            if current_version is not None and current_version != self._backed_up:
                target = back_up(fs, exp, staged=self._staged, contents=current)
                if target is None:
                    pending = True
                    self._stats.pop("storage")  # read it again next time even if unchanged
                else:
                    self._backed_up, self._since, self._warned = current_version, time.monotonic(), False
        except Exception:  # noqa: BLE001 - a backup must never end a search; tried again next time
            logger.warning("backing up the experiment state failed; will try again", exc_info=True)
            pending = True
            self._stats.clear()
        took = time.monotonic() - started
        self._last = time.monotonic()
        # Ray's copy still in flight: look again soon, or the checks fall into step with
        # Ray's period and never match. Either way stay under 5% of the driver's time
        # (reading the state from slow object storage), as Ray does for its snapshots.
        self._interval = max(RETRY_S if pending else self.min_interval_s, 20 * took)
        if pending and not self._warned and time.monotonic() - self._since > STALL_WARN_S:
            self._warned = True
            logger.warning("no complete copy of the experiment state for %.0f s: a driver killed now "
                           "while Ray copies it resumes from an older copy", time.monotonic() - self._since)
        if target is not None:
            logger.debug("state backup %s in %.3f s", target, took)
        return target

    def _note_staged(self, storage) -> None:
        """Remember the version of the state files Ray staged whole in the driver."""
        local, staging = pafs.LocalFileSystem(), storage.experiment_driver_staging_path
        if self._changed("staged", local, staging):
            staged = read_state(local, staging)
            staged_version = version(staged) if staged else None
            if staged_version is not None and (not self._staged or self._staged[-1] != staged_version):
                self._staged.append(staged_version)

    def _changed(self, key: str, fs: pafs.FileSystem, directory: str) -> bool:
        now = stat(fs, directory)
        changed = self._stats.get(key) != now
        self._stats[key] = now
        return changed
