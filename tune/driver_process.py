"""The driver process while a search runs: how it stops, and how often Ray snapshots.

Both are process-wide (a signal handler, an environment variable Ray reads), so each is
a context manager that puts things back as they were when the search returns.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

logger = logging.getLogger(__name__)


@contextmanager
def sigterm_stops_gracefully():
    """SIGTERM ends the search as Ctrl-C does: Ray saves its state, stops the trials and
    returns, so ``--resume`` continues it.

    Batch schedulers and ``kill`` stop a job with SIGTERM, but Ray Tune only catches
    SIGINT and SIGUSR1 (ray.tune.tune._setup_signal_catching); a SIGTERM killed the driver
    mid-run, with no last snapshot. This passes it on as SIGUSR1 while the search runs.
    Only the main thread can set handlers, and not every platform has SIGUSR1.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        yield
        return

    def to_sigusr1(signum, frame) -> None:
        # Once: a second SIGTERM gets the handler from before (Ray's shutdown, or the
        # default exit), as Ray's own warning then promises.
        signal.signal(signal.SIGTERM, previous)
        if not callable(signal.getsignal(signal.SIGUSR1)):
            # Before Ray set its handler (fit() is still starting), SIGUSR1 would kill the
            # process outright: SIGTERM does what it did before.
            signal.raise_signal(signal.SIGTERM)
            return
        logger.warning("SIGTERM received: stopping the search as on Ctrl-C (state saved; --resume continues it; "
                       "a second SIGTERM ends it at once)")
        signal.raise_signal(signal.SIGUSR1)

    previous = signal.signal(signal.SIGTERM, to_sigusr1)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def snapshot_period(trials: int):
    """Ray's experiment-snapshot period for a new search, unless the user set one.

    Ray's ``auto`` period is at least 10 s. The snapshot (with every trial's result
    log) is what reaches storage: what ``nerkit trials`` shows during a search and
    where a resumed driver starts each trial again from. ``num_to_keep=1`` used to
    force one per checkpoint; tune.retention no longer needs that, so this sets
    about 1 s instead. Ray saves the period with the search, so a resumed search
    keeps it. A snapshot holds some 35 KB per trial plus about 3 KB per evaluation
    (Ray keeps every checkpoint's metrics: some 850 KB for 16 trials of up to 6
    evaluations, 12 ms to write), so the period grows with the trial count to keep
    writing it a small, steady cost (10 s, Ray's floor, at 1,000 trials).
    """
    if "TUNE_GLOBAL_CHECKPOINT_S" in os.environ:
        yield
        return
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = f"{max(1.0, trials / 100):g}"
    try:
        yield
    finally:
        os.environ.pop("TUNE_GLOBAL_CHECKPOINT_S", None)
