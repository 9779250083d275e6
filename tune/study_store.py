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
        with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
                closing(sqlite3.connect(tmp)) as out:
            src.backup(out)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _study_facts(path: Path) -> tuple[int, str | None]:
    """(trials in the database, the search id its study carries) of a study file;
    (-1, None) when it is not an Optuna database."""
    import json

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            trials = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
            row = db.execute("SELECT value_json FROM study_user_attributes WHERE key = ?",
                             (SEARCH_ID_ATTR,)).fetchone()
    except sqlite3.DatabaseError:
        return -1, None
    return int(trials), (json.loads(row[0]) if row else None)


def mark_study(url: str, study_name: str, search_id: str) -> None:
    """Create the search's study (maximising dev F1) carrying ``search_id``."""
    import optuna

    study = optuna.create_study(study_name=study_name, storage=url, direction="maximize")
    study.set_user_attr(SEARCH_ID_ATTR, search_id)


def set_aside(path: Path, why: str) -> Path:
    """Move a study file out of the way (never delete it); returns where it went."""
    aside = path.with_name(f"{path.name}.{why}-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, aside)
    return aside


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


def _download(uri: str, dest_dir: Path) -> Path:
    from tune.storage import read_bytes

    data = read_bytes(uri)
    if data is None or not is_whole(data):
        raise ValueError(f"{uri}: the study copy is {'gone' if data is None else 'cut off'}; "
                         "run the resume again (it restores the last complete copy first)")
    fd, name = tempfile.mkstemp(prefix=".study-", suffix=".db", dir=dest_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def study_for_resume(experiment: str, record: dict[str, Any]) -> str:
    """Put the study of the search at ``experiment`` in place on this machine for a
    resume; returns its URL.

    With object storage: the local study (this machine ran the search) when it belongs
    to this search and is at least as far as the copy on storage (it is ahead of it
    when this machine's driver died after the last snapshot); otherwise the copy, which
    matches Ray's snapshot exactly. A local study that is behind or another search's is
    set aside, not deleted. Searches started before nerkit copied studies resume from
    the path ``search.json`` recorded.

    Raises:
        ValueError: when no study of this search is found (the message says where it looked).
    """
    from tune.settings import is_remote

    url = live_study_url(experiment)
    local = sqlite_path(url)
    search_id = record.get("search_id")
    if not is_remote(experiment):
        if not local.is_file():
            raise ValueError(f"{local}: the search's Optuna study is missing, so it cannot resume (the study "
                             "holds what TPE learnt); start a new search under another --name")
        return url
    copy = newest_copy(experiment)
    local.parent.mkdir(parents=True, exist_ok=True)
    downloaded = _download(copy, local.parent) if copy else None
    try:
        copy_trials = _study_facts(downloaded)[0] if downloaded else -1
        if local.is_file():
            trials, owner = _study_facts(local)
            if search_id is not None and owner != search_id:
                aside = set_aside(local, "other-search")
                logger.warning("the Optuna study at %s belongs to another search (%s); moved it to %s",
                               local, owner, aside)
            elif trials >= copy_trials:
                return url
            else:
                aside = set_aside(local, "behind")
                logger.warning("the Optuna study at %s holds %d trials, the copy on storage %d: resuming "
                               "with the copy; the local one is kept at %s", local, trials, copy_trials, aside)
        if downloaded is not None:
            os.replace(downloaded, local)
            downloaded = None
            logger.info("resuming with the Optuna study copied to storage with Ray's snapshot (%s)", copy)
            return url
    finally:
        if downloaded is not None:
            downloaded.unlink(missing_ok=True)
    recorded = record.get("optuna_storage") or ""
    old = sqlite_path(recorded)
    if search_id is None and old is not None and old.is_file():
        return recorded  # started before nerkit copied studies, and resumed on the machine that ran it
    raise ValueError(
        f"the Optuna study of {experiment} is neither on this machine ({local}) nor copied to storage "
        f"(no {STUDY_PREFIX}*{STUDY_SUFFIX} there; searches started before nerkit copied studies kept it only "
        f"at {recorded or 'the driver machine'}): resume on the machine that started the search, or copy that "
        f"file to {local}")


def study_for_reading(experiment: str, record: dict[str, Any], workdir: Path) -> str | None:
    """A URL to read the study of the search at ``experiment`` from (the live study when
    it is on this machine, else the copy on storage downloaded into ``workdir``), or None."""
    from tune.settings import is_remote

    local = sqlite_path(live_study_url(experiment))
    if local.is_file() or not is_remote(experiment):
        return sqlite_url(local) if local.is_file() else None
    copy = newest_copy(experiment)
    if copy is not None:
        return sqlite_url(_download(copy, workdir))
    old = sqlite_path(record.get("optuna_storage") or "")
    return sqlite_url(old) if old is not None and old.is_file() else None
