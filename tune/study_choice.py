"""Which file of a search's Optuna study a resume uses (and, moving nothing, a reader:
``study_for_reading``; the report ranks parameters from the trial table, not the study).

With object storage a study can be in two places: the live file on the machine that
ran the driver, and the copy written beside Ray's newest snapshot (tune.study_store).
The live one is used when it is this search's and extends the copy (it is ahead of it
when the driver died after the last snapshot); otherwise the copy, which matches Ray's
snapshot exactly. A file that gives way is set aside, never deleted.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tune.study_store import (SEARCH_ID_ATTR, STUDY_PREFIX, STUDY_SUFFIX, is_whole, live_study_url, set_aside,
                              sqlite_path, sqlite_url)

logger = logging.getLogger(__name__)


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


def newest_copy(experiment: str) -> str | None:
    """The study copy on storage that Ray's newest snapshot belongs to (a URI), or None."""
    from tune.snapshot import files_ray_reads, state_files
    from tune.storage import filesystem, join

    fs, path = filesystem(experiment)
    names = [n for n in files_ray_reads(state_files(fs, path)) if n.startswith(STUDY_PREFIX)]
    return join(experiment, names[0]) if names else None


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
