"""A real multi-node Ray cluster on this machine, for tests/tune/test_cluster.py.

One head and N workers, each a separate raylet (``ray.cluster_utils.Cluster``) on
127.0.0.1. The head advertises no CPU and no GPU, so no trial can land on it, as on
the real cluster (cluster.yaml); workers advertise *logical* GPUs, which Ray assigns
(CUDA_VISIBLE_DEVICES, ``ray.get_gpu_ids()``) although no CUDA device exists, so the
trial code runs on the CPU with them (``NERKIT_LOGICAL_GPUS=1``, set here).

The cluster lives in its own Ray temp dir (RAY_TMPDIR): ``Cluster`` writes its
address to ``<temp dir>/ray/ray_current_cluster``, where a plain ``ray.init()``
(other test modules, other people's runs on this machine) would otherwise find it
and join it instead of starting a local Ray.

Traffic stays on loopback: every node binds 127.0.0.1 only. Ray's drivers rewrite a
``127.0.0.1:port`` address to the machine's outward IP before connecting, unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (read once, when Ray is imported) says "no
multi-host networking here"; so driver subprocesses get that variable in their
environment (``LocalCluster.env``) and this process has the constant patched while
the cluster lives.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tune.trainable import LOGICAL_GPUS_ENV

_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_OBJECT_STORE = 100 * 1024**2  # per node; the tokenised small data set is a few MB
# Declare a silent node dead after ~3 s instead of Ray's ~30 s default.
_HEALTH_CHECKS = {"health_check_period_ms": 1000, "health_check_timeout_ms": 1000,
                  "health_check_failure_threshold": 3}


@dataclass
class LocalCluster:
    cluster: object                      # ray.cluster_utils.Cluster
    address: str                         # GCS address: run_search(..., address=...)
    head_id: str
    temp_dir: str
    cpus: float                          # per worker
    gpus: int                            # logical GPUs per worker
    multi_host: bool                     # Ray's ENABLE_RAY_CLUSTER before we patched it
    workers: dict = field(default_factory=dict)   # node id (hex) -> ray._private.node.Node

    def env(self) -> dict[str, str]:
        """Environment for a driver subprocess joining this cluster."""
        return {**os.environ, "RAY_TMPDIR": self.temp_dir, _LOOPBACK_ONLY: "0"}

    def kill_worker(self, node_id: str) -> None:
        """SIGKILL every process of a worker node at once (its workers, raylet and helpers):
        a node lost.

        ``remove_node`` alone kills the raylet and its helpers; the raylet's worker
        processes notice and exit 0.2-0.3 s later (measured here), and until then a trial's
        actor, which talks to the driver directly, can still report. A lost machine takes
        its trials with it, so they die first, in the same breath.
        """
        import psutil
        from ray._private.ray_constants import PROCESS_TYPE_RAYLET

        node = self.workers.pop(node_id)
        raylet = psutil.Process(node.all_processes[PROCESS_TYPE_RAYLET][0].process.pid)
        for proc in raylet.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.cluster.remove_node(node, allow_graceful=False)

    def top_up(self, workers: int) -> None:
        """Add workers until ``workers`` are alive (a test may have killed some)."""
        with _ray_tmpdir(self.temp_dir):
            while len(self.workers) < workers:
                node = self.cluster.add_node(**_worker_args(self.cpus, self.gpus))
                self.workers[node.node_id] = node
            self.cluster.wait_for_nodes()


def start_cluster(workers: int = 2, cpus: float = 1, gpus: int = 1) -> LocalCluster:
    """Head (0 CPUs, 0 GPUs) + ``workers`` nodes with ``cpus`` CPUs and ``gpus`` logical GPUs."""
    import ray
    from ray.cluster_utils import Cluster

    # The workers' GPUs are logical (no CUDA here): trials given one train on the CPU
    # instead of refusing (tune.trainable). Nodes inherit this process's environment.
    os.environ[LOGICAL_GPUS_ENV] = "1"
    multi_host = ray._private.ray_constants.ENABLE_RAY_CLUSTER
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # see module doc
    # /tmp, not pytest's tmp_path: Ray's unix socket paths must stay under 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="nk-ray-", dir="/tmp")
    with _ray_tmpdir(temp_dir):
        cluster = Cluster(initialize_head=True, head_node_args=dict(
            num_cpus=0, num_gpus=0, include_dashboard=False, node_ip_address="127.0.0.1",
            object_store_memory=_OBJECT_STORE, _system_config=_HEALTH_CHECKS,
        ))
    local = LocalCluster(cluster, cluster.address, cluster.head_node.node_id, temp_dir, cpus, gpus, multi_host)
    local.top_up(workers)
    return local


def stop_cluster(local: LocalCluster) -> None:
    import ray

    ray.shutdown()
    with _ray_tmpdir(local.temp_dir):  # Cluster.shutdown deletes its address file there
        local.cluster.shutdown()
    shutil.rmtree(local.temp_dir, ignore_errors=True)
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = local.multi_host


def connect(local: LocalCluster, env_vars: dict[str, str] | None = None) -> None:
    """Make this process a driver of the cluster (dropping any other Ray it joined).

    ``env_vars`` reach every trial of this driver's job (a job-level runtime_env).
    """
    import ray

    ray.shutdown()
    runtime_env = {"env_vars": env_vars} if env_vars else None
    ray.init(address=local.address, log_to_driver=False, runtime_env=runtime_env)


def results(trial_dir: Path) -> list[dict]:
    """The results a trial has reported so far (its result.json, one JSON per line)."""
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written
    return rows


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _worker_args(cpus: float, gpus: int) -> dict:
    return dict(num_cpus=cpus, num_gpus=gpus, node_ip_address="127.0.0.1", object_store_memory=_OBJECT_STORE)


@contextlib.contextmanager
def _ray_tmpdir(temp_dir: str):
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp_dir
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous
