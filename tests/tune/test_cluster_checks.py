"""tune.cluster_checks: what a search checks against the Ray it joined before any trial
starts (the multi-node checks run on a real local cluster in test_cluster.py)."""

from __future__ import annotations

from tune.settings import SearchSettings


def test_joining_a_cluster_that_holds_fewer_trials_than_asked_warns(caplog):
    # On a fresh autoscaling cluster (only a GPU-less head), the default concurrency is 1 for
    # the whole search: the driver says so, and how to let the cluster grow.
    import logging

    import ray

    from tune.cluster_checks import warn_if_autoscaling_would_starve

    ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with caplog.at_level(logging.WARNING, logger="tune.cluster_checks"):
            warn_if_autoscaling_would_starve(SearchSettings(name="s", space="x.yaml", trials=8), "head:6379")
            assert "holds 1 concurrent trial(s) now" in caplog.text and "--max-concurrent" in caplog.text
            caplog.clear()
            warn_if_autoscaling_would_starve(
                SearchSettings(name="s", space="x.yaml", trials=8, max_concurrent=32), "head:6379")
            warn_if_autoscaling_would_starve(SearchSettings(name="s", space="x.yaml", trials=8), None)
            assert caplog.text == ""
    finally:
        ray.shutdown()
