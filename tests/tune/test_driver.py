"""tune.driver: what it refuses before any Ray starts."""

from __future__ import annotations

import pytest

from tune.driver import init_ray


@pytest.mark.parametrize("via_env", [False, True])
def test_ray_client_addresses_are_refused_with_the_supported_way_in(monkeypatch, via_env):
    # Through Ray Client the whole search would run in a task on the head, untested; the
    # error names the address and the job-submission command instead of half-working.
    import ray

    address, was_up = "ray://head.example:10001", ray.is_initialized()
    if via_env:
        monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(ValueError, match=r"'ray://head.example:10001'.*not supported.*ray job submit"):
        init_ray(None if via_env else address)
    assert ray.is_initialized() == was_up  # refused before joining or starting anything


def test_sigterm_becomes_rays_graceful_stop_once_then_falls_through():
    # Inside a search, SIGTERM is passed to Ray's SIGUSR1 handler (a graceful stop), once:
    # the second SIGTERM reaches the handler from before (here a recorder; in a search,
    # Ray's shutdown or the default exit). Leaving the block restores that handler too.
    import os
    import signal

    from tune.driver import sigterm_stops_gracefully

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


def test_an_unusable_address_is_refused_before_the_data_is_prepared(monkeypatch):
    # A ray:// address used to be refused only after the whole corpus was tokenised.
    import tune.driver
    from tune.settings import SearchSettings
    from tune.space import resolve_space

    def prepare(*_a, **_k):
        raise AssertionError("prepare_data ran before the address check")

    monkeypatch.setattr(tune.driver, "prepare_data", prepare)
    with pytest.raises(ValueError, match="Ray Client"):
        tune.driver.run_search(SearchSettings(name="s", space=str(resolve_space("default"))), "ray://head:10001")
