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
``tune.study_choice`` puts it in place on whichever machine resumes the search.

Each study carries its search's id (``search.json``'s ``search_id``) as a user
attribute, so a study file left behind by an older search of the same name and
storage is never taken for this one's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

from tune.snapshot import STUDY_COPY_PREFIX as STUDY_PREFIX
from tune.storage import split_query

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
    # Named without the query (its "?" and "=" in the file name broke the sqlite URL); the
    # key hashes it too: two endpoints (endpoint_override) with the same bucket path are
    # two searches.
    base = split_query(experiment)[0].rstrip("/")
    key = hashlib.sha256(experiment.rstrip("/").encode("utf-8")).hexdigest()[:12]
    return cache_dir() / "optuna" / f"{base.rsplit('/', 1)[-1]}-{key}.db"


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
