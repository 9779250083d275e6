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


@contextlib.contextmanager
def driver_lock(experiment: str, name: str, create: bool = True) -> Iterator[None]:
    """Hold search ``name`` at ``experiment`` for this process (see module doc).

    ``create=False`` (a resume) takes no lock where the directory does not exist: there
    is no search to hold, which the caller reports.

    Raises:
        ValueError: another process holds it (the message names that process).
    """
    if is_remote(experiment) or (not create and not Path(experiment).is_dir()):
        yield
        return
    import fcntl

    Path(experiment).mkdir(parents=True, exist_ok=True)
    path = Path(experiment) / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "a process that has not written its name yet"
            raise ValueError(f"search {name!r} at {experiment} is being run by another driver ({holder}); "
                             "wait for it to end, or stop it (Ctrl-C, or SIGTERM to that process) and then "
                             f"continue it with --resume {name}") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
