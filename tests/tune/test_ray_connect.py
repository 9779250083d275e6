"""tune.ray_connect: addresses nerkit cannot use are refused before Ray starts."""

from __future__ import annotations

import pytest

from tune.ray_connect import init_ray


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
