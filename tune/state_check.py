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

The files of one snapshot agree on the trials, and that can be checked without Ray:
``SearchGenerator``'s count of the trials it created equals the trial table's length, and
the ``ConcurrencyLimiter``'s live trials are trials of the table that have not finished.
``tune.state_backup.restore_if_broken`` puts the last complete copy back when they don't.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tune.snapshot import SNAPSHOT_PREFIX

logger = logging.getLogger(__name__)

SEARCH_GEN_PREFIX = "search_gen_state-"
FINISHED = ("TERMINATED", "ERROR")


def _one(files: dict[str, bytes], prefix: str) -> tuple[str, bytes] | None:
    found = [(name, data) for name, data in files.items() if name.startswith(prefix)]
    return found[0] if len(found) == 1 else None


def _trial_statuses(data: bytes) -> dict[str, str]:
    """Trial id -> Ray status, from an ``experiment_state`` file's bytes."""
    out = {}
    for state_json, _ in json.loads(data)["trial_data"]:
        state = json.loads(state_json)
        out[state["trial_id"]] = state["status"]
    return out


def _search_gen(data: bytes) -> dict[str, Any]:
    # Ray writes it with cloudpickle; Ray's own restore unpickles the same file next, so
    # this trusts it no more than a resume already does.
    import ray.cloudpickle as cloudpickle

    return cloudpickle.loads(data)


def disagreements(files: dict[str, bytes]) -> list[str]:
    """How the state files Ray's restore reads (name -> whole bytes, as
    ``tune.state_backup.read_state`` gives them) disagree on the trials; empty when they
    are one snapshot as far as these checks tell, or when there is nothing to compare (no
    searcher state: Ray's basic variant generator; or a layout these checks do not know,
    which is logged)."""
    table, gen = _one(files, SNAPSHOT_PREFIX), _one(files, SEARCH_GEN_PREFIX)
    if table is None or gen is None:
        return []
    try:
        statuses = _trial_statuses(table[1])
        state = _search_gen(gen[1])
        counter = int(state["counter"])
        live = set((state.get("name:ConcurrencyLimiter") or {}).get("live_trials") or ())
    except Exception:  # noqa: BLE001 - another Ray's layout: nothing to compare, not an error
        logger.debug("cannot compare %s and %s", table[0], gen[0], exc_info=True)
        return []
    problems = []
    if counter != len(statuses):
        problems.append(f"{gen[0]} counts {counter} trials created, {table[0]} holds {len(statuses)}")
    unknown = sorted(live - statuses.keys())
    if unknown:
        problems.append(f"{gen[0]} has live trials {unknown} that {table[0]} does not hold")
    finished = sorted(t for t in live & statuses.keys() if statuses[t] in FINISHED)
    if finished:
        problems.append(f"{gen[0]} has live trials {finished} that {table[0]} holds as finished")
    return problems
