"""Whether Ray's state files on storage are one snapshot, or whole files from two.

Ray rewrites its state files in the driver's staging directory at every snapshot and
copies them to storage in the background with pyarrow's ``copy_files``: file by file,
several at once, each written in place. It stages the next snapshot even while the
previous copy still runs. So a copy, and a driver killed after it, can leave storage
with every file whole but from two snapshots: say the searcher's ``search_gen_state``
from after the sixth trial was created beside an ``experiment_state`` that holds five.
Ray's restore reads them as they are and never creates the sixth trial: the resumed
search ends one trial short (seen in tests/tune/test_cluster.py's killed-driver test).
A concurrency limiter restored with a trial the table holds as finished would keep that
trial's slot for the rest of the search.

The files of one snapshot agree on the trials (read in Ray 2.60's TuneController,
SearchGenerator, ConcurrencyLimiter and OptunaSearch):

- ``SearchGenerator``'s count of the trials it created equals the trial table's length;
- the ``ConcurrencyLimiter``'s live trials are trials of the table, none of them
  TERMINATED (an ERROR trial can stay live: a failed actor reuse errors a trial without
  telling the searcher, and ``resume_errored`` runs it again anyway);
- ``OptunaSearch``'s own pickle (``searcher-state``) maps exactly the table's trial ids to
  study trials. A table newer than that pickle would end the resumed search with a
  ``KeyError`` at the first result of a trial the searcher does not know.
- With object storage, the study copy (``optuna-study``, tune.study_store) is the one
  that searcher state was saved with: the state holds the copy's hash. A copy older
  than the state would lack study trials the searcher refers to.

``tune.state_restore.restore_if_broken`` puts the last complete copy back when they don't.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
from collections.abc import Callable
from typing import Any

from tune.snapshot import SEARCH_GEN_PREFIX, SEARCHER_PREFIX, SNAPSHOT_PREFIX, STUDY_COPY_PREFIX

logger = logging.getLogger(__name__)


class _Stub:
    """Stands in for every class a searcher pickle names: nothing is imported or run."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass


class _StubUnpickler(pickle.Unpickler):
    # OptunaSearch pickles its study, whose RDBStorage opens the database on unpickling:
    # containers load as themselves, every class and function as _Stub.
    SAFE = {"set": set, "frozenset": frozenset, "bytearray": bytearray, "complex": complex, "slice": slice}

    def find_class(self, module: str, name: str):
        if module == "builtins" and name in self.SAFE:
            return self.SAFE[name]
        return _Stub


def _searcher_state(data: bytes) -> dict:
    """A searcher pickle's attributes ({} for another layout)."""
    state = _StubUnpickler(io.BytesIO(data)).load()
    return state if isinstance(state, dict) else {}


def searcher_trial_ids(data: bytes) -> set[str] | None:
    """The Ray trial ids an ``OptunaSearch`` pickle (``searcher-state-*.pkl``) maps to study
    trials, read without importing or running anything it names; None when the pickle is
    not that layout."""
    trials = _searcher_state(data).get("_ot_trials")
    return set(trials) if isinstance(trials, dict) else None


def study_copy_hash(data: bytes) -> str | None:
    """The hash of the study copy a ``ResumableOptunaSearch`` state was saved with (None:
    saved without one)."""
    sha = _searcher_state(data).get("_study_copy_sha")
    return sha if isinstance(sha, str) else None


def _one(files: dict[str, bytes], prefix: str) -> tuple[str, bytes] | None:
    found = [(name, data) for name, data in files.items() if name.startswith(prefix)]
    if len(found) > 1:  # the caller passes the files Ray reads: one of each kind
        logger.debug("%d files of kind %s: not compared", len(found), prefix)
    return found[0] if len(found) == 1 else None


def _trial_statuses(data: bytes) -> dict[str, str]:
    """Trial id -> Ray status, from an ``experiment_state`` file's bytes."""
    # Not tune.snapshot.read_snapshot's parse: that one decodes every trial's run
    # metadata too (its results), 3x the time on a 24-trial snapshot, at every backup.
    out = {}
    for state_json, _ in json.loads(data)["trial_data"]:
        state = json.loads(state_json)
        out[state["trial_id"]] = state["status"]
    return out


def _created_and_live(data: bytes) -> tuple[int, set[str]]:
    """From a ``search_gen_state`` file's bytes: the count of trials created, and the
    concurrency limiter's live trials."""
    # Ray writes it with cloudpickle; Ray's own restore unpickles the same file next, so
    # this trusts it no more than a resume already does.
    import ray.cloudpickle as cloudpickle

    state = cloudpickle.loads(data)
    # Ray keys each wrapper's state by its class name: nerkit's limiter since it passes on
    # reruns' completions (tune.searcher), Ray's own in searches started before.
    limiter = state.get("name:ResumableConcurrencyLimiter") or state.get("name:ConcurrencyLimiter") or {}
    return int(state["counter"]), set(limiter.get("live_trials") or ())


def _parsed(entry: tuple[str, bytes], parse: Callable[[bytes], Any]) -> Any:
    """``parse`` of a state file's bytes, or None when it is in a layout these checks do
    not know (another Ray's): nothing to compare then, not an error."""
    try:
        return parse(entry[1])
    except Exception:  # noqa: BLE001 - any layout error means the same: not compared
        logger.debug("cannot read the trials of %s", entry[0], exc_info=True)
        return None


def disagreements(files: dict[str, bytes]) -> list[str]:
    """How the state files Ray's restore reads (name -> whole bytes, as
    ``tune.state_backup.read_state`` gives them) disagree on the trials; empty when they
    are one snapshot as far as these checks tell, or when there is nothing to compare (no
    searcher state: Ray's basic variant generator; or a layout these checks do not know,
    which is logged)."""
    table = _one(files, SNAPSHOT_PREFIX)
    statuses = None if table is None else _parsed(table, _trial_statuses)
    if statuses is None:
        return _against_study_copy(files)
    return (_against_search_gen(files, table[0], statuses) + _against_searcher(files, table[0], statuses)
            + _against_study_copy(files))


def _against_search_gen(files: dict[str, bytes], table: str, statuses: dict[str, str]) -> list[str]:
    gen = _one(files, SEARCH_GEN_PREFIX)
    parsed = None if gen is None else _parsed(gen, _created_and_live)
    if parsed is None:
        return []
    counter, live = parsed
    problems = []
    if counter != len(statuses):
        problems.append(f"{gen[0]} counts {counter} trials created, {table} holds {len(statuses)}")
    unknown = sorted(live - statuses.keys())
    if unknown:
        problems.append(f"{gen[0]} has live trials {unknown} that {table} does not hold")
    ended = sorted(t for t in live & statuses.keys() if statuses[t] == "TERMINATED")
    if ended:
        problems.append(f"{gen[0]} has live trials {ended} that {table} holds as TERMINATED")
    return problems


def _against_searcher(files: dict[str, bytes], table: str, statuses: dict[str, str]) -> list[str]:
    searcher = _one(files, SEARCHER_PREFIX)
    known = None if searcher is None else _parsed(searcher, searcher_trial_ids)
    if known is None or known == statuses.keys():
        return []
    missing, extra = sorted(statuses.keys() - known), sorted(known - statuses.keys())
    return [f"{searcher[0]} knows {len(known)} trials, {table} holds {len(statuses)}"
            + (f"; unknown to the searcher: {missing}" if missing else "")
            + (f"; not in the table: {extra}" if extra else "")]


def _against_study_copy(files: dict[str, bytes]) -> list[str]:
    searcher = _one(files, SEARCHER_PREFIX)
    expected = None if searcher is None else _parsed(searcher, study_copy_hash)
    if expected is None:
        return []
    copy = _one(files, STUDY_COPY_PREFIX)
    if copy is None:
        return [f"{searcher[0]} was saved with a study copy, and there is none"]
    if hashlib.sha256(copy[1]).hexdigest() != expected:
        return [f"{copy[0]} is not the study copy {searcher[0]} was saved with"]
    return []
