"""Where a search's Optuna study lives, and its copies on object storage.

On local storage the study is ``<experiment>/optuna.db``, written at once by the
searcher. SQLite cannot live in an object store, so with ``s3://`` (``gs://``, …)
storage the live study is a file on the driver's disk,
``$NERKIT_CACHE/optuna/<name>-<key>.db``. The key is a hash of the experiment's URI:
two searches of one name on two storages used to share one study file, and the second
search's TPE then learnt from the first one's trials.

That file dies with the driver's machine (a head node that ``ray up`` replaced, a
laptop that started the search). So with object storage the searcher
(``tune.searcher``) writes a consistent copy of the study beside its own state at every
snapshot Ray takes, ``optuna-study-<session>.db``: Ray uploads it with the snapshot it
belongs to, nerkit's state backups keep it with the rest of that snapshot, and
``study_for_resume`` puts it in place on whichever machine resumes the search.

Each study carries its search's id (``search.json``'s ``search_id``) as a user
attribute, so a study file left behind by an older search of the same name and
storage is never taken for this one's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import tempfile
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tune.snapshot import STUDY_COPY_PREFIX as STUDY_PREFIX

logger = logging.getLogger(__name__)

STUDY_SUFFIX = ".db"
#: The study's user attribute that names the search it belongs to.
SEARCH_ID_ATTR = "nerkit_search_id"
SQLITE_MAGIC = b"SQLite format 3\x00"


def cache_dir() -> Path:
    """nerkit's cache on this machine (``NERKIT_CACHE``, else ``~/.cache/nerkit``)."""
    return Path(os.environ.get("NERKIT_CACHE", Path.home() / ".cache" / "nerkit"))


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (``None`` for other databases)."""
    prefix = "sqlite:///"
    return Path(url[len(prefix):]) if url.startswith(prefix) else None


def local_study_path(experiment: str) -> Path:
    """The live study of a search on object storage, on this machine's disk."""
    experiment = experiment.rstrip("/")
    key = hashlib.sha256(experiment.encode("utf-8")).hexdigest()[:12]
    return cache_dir() / "optuna" / f"{experiment.rsplit('/', 1)[-1]}-{key}.db"


def live_study_url(experiment: str) -> str:
    """Where the live study of the search at ``experiment`` is, seen from this machine."""
    from tune.settings import OPTUNA_FILE, is_remote

    if is_remote(experiment):
        return sqlite_url(local_study_path(experiment))
    return sqlite_url(Path(experiment) / OPTUNA_FILE)


def copy_name(session: str) -> str:
    return f"{STUDY_PREFIX}{session}{STUDY_SUFFIX}"


def is_whole(data: bytes) -> bool:
    """Whether ``data`` is a whole SQLite database file, not one cut off in a copy.

    The header records the page size and, when the file was last written by SQLite
    itself (the "version-valid-for" number equals the change counter; always so for
    ``copy_study``'s output), the page count.
    """
    if len(data) < 100 or not data.startswith(SQLITE_MAGIC):
        return False
    page_size = int.from_bytes(data[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512:
        return False
    if data[24:28] == data[92:96]:
        return len(data) == page_size * int.from_bytes(data[28:32], "big")
    return len(data) % page_size == 0


def copy_study(source: Path, dest: Path) -> None:
    """A consistent copy of the SQLite study at ``source``, taken while the searcher may
    be writing it (SQLite's online backup), put at ``dest`` in one rename."""
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
    try:
        # A file URI, not "file:{path}": a '#' or '?' in the path would cut it short.
        with closing(sqlite3.connect(Path(source).resolve().as_uri() + "?mode=ro", uri=True)) as src, \
                closing(sqlite3.connect(tmp)) as out:
            src.backup(out)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Study:
    """What deciding between two files of one study needs."""

    search_id: str | None
    trials: tuple[tuple[int, dict, Any, Any], ...]  # (number, params, state, values), by number

    def extends(self, other: "_Study") -> bool:
        """Whether this study is ``other`` with more added: every trial of ``other`` is here,
        by number and parameters, and each one ``other`` has finished, finished alike.
        Two files of one search that ran on in two places (resumed on machine B while
        machine A's study was ahead) do not extend each other."""
        here = {number: (params, state, values) for number, params, state, values in self.trials}
        for number, params, state, values in other.trials:
            mine = here.get(number)
            if mine is None or mine[0] != params or (state.is_finished() and mine[1:] != (state, values)):
                return False
        return True


def _read_study(path: Path, study_name: str) -> _Study | None:
    """The study ``study_name`` in the SQLite file ``path``; None when the file holds no
    such Optuna study.

    Opened for writing, as Optuna does: a driver killed in the middle of a write leaves
    a hot journal beside the file, which only a writer rolls back (read-only, SQLite
    refuses the file)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = optuna.storages.RDBStorage(sqlite_url(path))
    except Exception:  # noqa: BLE001 - not a database, or not Optuna's: the same answer
        logger.debug("%s is not an Optuna database", path, exc_info=True)
        return None
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        trials = tuple((t.number, t.params, t.state, t.values) for t in study.get_trials(deepcopy=False))
        return _Study(study.user_attrs.get(SEARCH_ID_ATTR), tuple(sorted(trials, key=lambda t: t[0])))
    except KeyError:
        return None
    finally:
        storage.engine.dispose()


def mark_study(study: Any, search_id: str) -> None:
    """Mark the Optuna ``study`` as the one of search ``search_id``."""
    study.set_user_attr(SEARCH_ID_ATTR, search_id)


#: SQLite's files beside a database: a journal left hot by a killed writer belongs to
#: its database, and paired with another one it would be rolled back into that one.
_SIDECARS = ("-journal", "-wal", "-shm")


def set_aside(path: Path, why: str) -> Path:
    """Move a study file (with SQLite's files beside it) out of the way, never deleting
    it; returns where it went."""
    aside = path.with_name(f"{path.name}.{why}-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in _SIDECARS:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
    os.replace(path, aside)
    return aside


def set_aside_unstarted_study(experiment: str) -> None:
    """Before a search that stopped ahead of its first trial starts again: the study its
    stopped start opened (maybe with trials asked for and never run) is set aside."""
    path = sqlite_path(live_study_url(experiment))
    if path is not None and path.is_file():
        aside = set_aside(path, "unstarted")
        logger.warning("set aside the Optuna study of the stopped start of this search as %s", aside)


def make_room_for_new_study(experiment: str) -> None:
    """Before a new search on object storage: a study file at its local path belongs to
    an earlier search of the same name and storage, since deleted (a new search refuses
    an experiment whose ``search.json`` exists). Set it aside, so the new search does not
    load that study's trials as its own."""
    from tune.settings import is_remote

    if not is_remote(experiment):
        return
    path = local_study_path(experiment)
    if path.is_file():
        aside = set_aside(path, "earlier-search")
        logger.warning("found the Optuna study of an earlier search at %s (its experiment is gone from %s); "
                       "moved it to %s", path, experiment, aside)
    path.parent.mkdir(parents=True, exist_ok=True)


def newest_copy(experiment: str) -> str | None:
    """The study copy on storage that Ray's newest snapshot belongs to (a URI), or None."""
    from tune.snapshot import files_ray_reads, state_files
    from tune.storage import filesystem

    fs, path = filesystem(experiment)
    names = [n for n in files_ray_reads(state_files(fs, path)) if n.startswith(STUDY_PREFIX)]
    return f"{experiment.rstrip('/')}/{names[0]}" if names else None


def _download(uri: str, dest_dir: Path) -> Path | None:
    """The study copy at ``uri`` in a new file in ``dest_dir``; None when it is gone or cut
    off (a copy in flight on a store that shows files while they are written)."""
    from tune.storage import read_bytes

    data = read_bytes(uri)
    if data is None or not is_whole(data):
        logger.warning("%s: the study copy is %s; not used", uri, "gone" if data is None else "cut off")
        return None
    fd, name = tempfile.mkstemp(prefix=".study-", suffix=".db", dir=dest_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def _judge(local: Path, copy: Path | None, study_name: str, search_id: str | None) -> tuple[bool, str, bool]:
    """(use the local study?, why not, is the copy this search's study?) for the local
    study file and the copy from storage.

    The local study is used when it is this search's and extends the copy: it is ahead
    of it when this machine's driver died after the last snapshot. Otherwise the copy,
    which matches Ray's snapshot exactly."""
    mine = _read_study(local, study_name) if local.is_file() else None
    theirs = _read_study(copy, study_name) if copy is not None else None
    if theirs is not None and search_id is not None and theirs.search_id != search_id:
        theirs = None  # never expected: a copy is written beside its own search's state
    usable = theirs is not None
    if mine is None:
        return False, "unreadable" if local.is_file() else "missing", usable
    if search_id is not None and mine.search_id != search_id:
        return False, "other-search", usable
    if theirs is not None and not mine.extends(theirs):
        return False, "diverged" if len(mine.trials) >= len(theirs.trials) else "behind", usable
    return True, "", usable


def _recorded_study(experiment: str, record: dict[str, Any]) -> Path | None:
    """The study file ``search.json`` recorded, for a search on object storage started
    before nerkit copied studies (no search id); None otherwise. Object storage only: a
    local search's recorded path is where it ran, and a copy of its directory must not
    write to (or report) the original's study."""
    from tune.settings import is_remote

    old = sqlite_path(record.get("optuna_storage") or "")
    return old if record.get("search_id") is None and is_remote(experiment) else None


_WHY = {"unreadable": "is not an Optuna study of this search (unreadable)",
        "other-search": "belongs to another search (an earlier one of this name and storage)",
        "diverged": "ran on apart from the copy on storage (the search was resumed elsewhere meanwhile)",
        "behind": "is behind the copy on storage"}


def study_for_resume(experiment: str, record: dict[str, Any]) -> str:
    """Put the study of the search at ``experiment`` in place on this machine for a
    resume; returns its URL.

    The live study on this machine (``live_study_url``) when it is this search's and
    extends the newest copy on storage (``_judge``); otherwise that copy, put in its
    place. A study file that gives way is set aside, not deleted. Searches started
    before nerkit copied studies resume from the path ``search.json`` recorded.

    Raises:
        ValueError: when no study of this search is found (the message says where it
            looked and what to do).
    """
    name, search_id = record["settings"]["name"], record.get("search_id")
    url = live_study_url(experiment)
    local = sqlite_path(url)
    local.parent.mkdir(parents=True, exist_ok=True)
    copy_uri = newest_copy(experiment)
    copy = _download(copy_uri, local.parent) if copy_uri else None
    try:
        use_local, why, copy_usable = _judge(local, copy, name, search_id)
        if use_local:
            return url
        if copy_usable:
            if local.is_file():
                aside = set_aside(local, why)
                logger.warning("the Optuna study at %s %s: resuming with the copy on storage, %s; the local "
                               "one is kept at %s", local, _WHY[why], copy_uri, aside)
            os.replace(copy, local)
            copy = None
            logger.info("resuming with the Optuna study copied to storage with Ray's snapshot (%s)", copy_uri)
            return url
    finally:
        if copy is not None:
            copy.unlink(missing_ok=True)
    old = _recorded_study(experiment, record)
    if old is not None:
        if old.is_file():
            return sqlite_url(old)  # started before nerkit copied studies, resumed on the machine that ran it
        raise ValueError(
            f"the Optuna study of {experiment} is not at {old}, where this search (started before nerkit "
            f"copied studies to storage) keeps it: copy that file from the machine that ran the search to "
            f"{old} and resume again")
    if why != "missing":
        raise ValueError(f"the Optuna study at {local} {_WHY[why]}, and there is no copy of this search's "
                         f"study in {experiment}: move {local} away if it is not this search's, or resume on "
                         "the machine that ran the search")
    raise ValueError(
        f"the Optuna study of {experiment} is neither on this machine ({local}) nor copied to storage "
        f"(no {STUDY_PREFIX}*{STUDY_SUFFIX} there): resume on the machine that ran the search, or start a "
        "new search under another --name")


def study_for_reading(experiment: str, record: dict[str, Any], workdir: Path) -> str | None:
    """A URL to read the study of the search at ``experiment`` from, chosen as a resume
    would choose but moving nothing (a copy from storage is downloaded into
    ``workdir``), or None when there is none."""
    local = sqlite_path(live_study_url(experiment))
    copy_uri = newest_copy(experiment)
    copy = _download(copy_uri, workdir) if copy_uri else None
    use_local, _, copy_usable = _judge(local, copy, record["settings"]["name"], record.get("search_id"))
    if use_local:
        return sqlite_url(local)
    if copy_usable:
        return sqlite_url(copy)
    old = _recorded_study(experiment, record)
    return sqlite_url(old) if old is not None and old.is_file() else None
