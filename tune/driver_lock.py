"""One driver per search: a lock held for as long as a driver runs or resumes it.

Two drivers on one experiment directory run over each other: both write Ray's
experiment state and the Optuna study, trials run twice or vanish from the table, and
an uninterrupted driver ends reading the other's snapshot. It happened two ways: two
``nerkit search --name X`` started together (each checked for ``search.json`` before
either wrote it), and ``--resume X`` while the first driver still ran.

On a local or shared filesystem the driver holds an exclusive ``flock`` on
``.driver.lock`` in the experiment directory. The kernel releases it when the process
ends, however it ends, so a killed driver never leaves a stale lock for ``--resume``
to trip over. Object storage has no locks: there one driver per search is the user's
to keep (docs/CLUSTER.md).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from tune.settings import is_remote

LOCK_FILE = ".driver.lock"
_ATTEMPTS = 10
#: How long a driver tries for the lock before it takes it as another driver's: a reader's
#: probe (running_driver) holds a shared lock for microseconds, a driver for the search.
_PROBE_WAIT_S, _PROBE_TRIES = 0.01, 50
#: A holder between taking the lock and writing its name into the file.
_UNNAMED = "a process that has not written its name yet"


def _lock_exclusive(f) -> bool:
    """Take ``f``'s exclusive lock, waiting out a reader's momentary probe; False when
    another process keeps it (a driver)."""
    import fcntl

    for attempt in range(_PROBE_TRIES):
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < _PROBE_TRIES - 1:
                time.sleep(_PROBE_WAIT_S)
    return False


@contextlib.contextmanager
def driver_lock(experiment: str, name: str, create: bool = True) -> Iterator[None]:
    """Hold search ``name`` at ``experiment`` for this process (see module doc).

    ``create=False`` (a resume) takes no lock where there is no search (no directory or no
    ``search.json``): there is nothing to hold, which the caller reports, and a directory
    that is not a search gets no lock file.

    Raises:
        ValueError: another process holds it (the message names that process).
    """
    from tune.settings import SETTINGS_FILE

    if is_remote(experiment) or (not create and not (Path(experiment) / SETTINGS_FILE).is_file()):
        yield
        return
    import fcntl

    path = Path(experiment) / LOCK_FILE
    for _ in range(_ATTEMPTS):
        Path(experiment).mkdir(parents=True, exist_ok=True)
        f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open until the search ends
        if not _lock_exclusive(f):
            f.seek(0)
            holder = f.read().strip() or _UNNAMED
            f.close()
            raise ValueError(f"search {name!r} at {experiment} is being run by another driver ({holder}); "
                             "wait for it to end, or stop it (Ctrl-C, or SIGTERM to that process) and then "
                             f"continue it with --resume {name}") from None
        # The file locked must still be the one at the path: a driver that failed before its
        # search began removes its directory, lock file included, while it holds the lock; a
        # lock won on that removed file would hold nothing.
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    else:
        raise ValueError(f"could not lock {path}: it was replaced {_ATTEMPTS} times while locking")
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n")
        f.flush()
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def running_driver(experiment: str) -> str | None:
    """Who holds search ``experiment``'s lock now (the name its driver wrote), or None:
    nobody, no lock file, or remote storage (no locks there). Creates nothing."""
    if is_remote(experiment):
        return None
    import fcntl

    try:
        f = open(Path(experiment) / LOCK_FILE, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or _UNNAMED
        fcntl.flock(f, fcntl.LOCK_UN)
        return None
