"""tune.driver_process: the driver's SIGTERM handling and Ray's snapshot period."""

from __future__ import annotations

import os


def test_sigterm_becomes_rays_graceful_stop_once_then_falls_through():
    # Inside a search, SIGTERM is passed to Ray's SIGUSR1 handler (a graceful stop), once:
    # the second SIGTERM reaches the handler from before (here a recorder; in a search,
    # Ray's shutdown or the default exit). Leaving the block restores that handler too.
    import os
    import signal

    from tune.driver_process import sigterm_stops_gracefully

    seen = []
    before_term = signal.signal(signal.SIGTERM, lambda s, f: seen.append("previous"))
    before_usr1 = signal.signal(signal.SIGUSR1, lambda s, f: seen.append("ray-stop"))
    try:
        with sigterm_stops_gracefully():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        assert seen == ["ray-stop", "previous"]
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == ["ray-stop", "previous", "previous"]
        # Before Ray has a SIGUSR1 handler, SIGTERM does what it did before (SIGUSR1's
        # default action would kill the process with no cleanup).
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        seen.clear()
        with sigterm_stops_gracefully():
            os.kill(os.getpid(), signal.SIGTERM)
        assert seen == ["previous"]
    finally:
        signal.signal(signal.SIGTERM, before_term)
        signal.signal(signal.SIGUSR1, before_usr1)


def test_the_snapshot_period_grows_with_the_trials_and_a_users_setting_wins(monkeypatch):
    # About 1 s for small searches, 10 s (Ray's floor for `auto`) at 1,000 trials; restored
    # afterwards, and never over a period the user set.
    from tune.driver_process import snapshot_period

    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    for trials, period in ((16, "1"), (250, "2.5"), (1000, "10")):
        with snapshot_period(trials):
            assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == period
        assert "TUNE_GLOBAL_CHECKPOINT_S" not in os.environ
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "30")
    with snapshot_period(1000):
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "30"
