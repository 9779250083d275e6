"""Checks of a search's settings against the Ray cluster it runs on, made after Ray is
up and before any trial starts: what would otherwise fail in every trial, or waste the
cluster, without a word."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import yaml

from tune.driver_lock import LOCK_FILE
from tune.settings import SearchSettings, is_remote

logger = logging.getLogger(__name__)


def check_storage_on_every_node(experiment: str) -> None:
    """Refuse a local ``--storage`` path that a node able to run trials does not see (a
    disk of the head's, not NFS).

    Each trial would train to its first checkpoint, fail there (Ray cannot write the
    checkpoint to storage), be retried, and the search would end with every trial in
    error. A task on each other node looks for the driver's lock file, which this driver
    holds in the experiment directory. Nodes that join later (autoscaling) are not
    checked: there Ray's own error stays the first word.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if is_remote(experiment):
        return
    here = ray.get_runtime_context().get_node_id()
    nodes = [n for n in ray.nodes() if n["Alive"] and n["NodeID"] != here and n["Resources"].get("CPU", 0) > 0]
    if not nodes:
        return

    @ray.remote(num_cpus=0)
    def sees(path: str) -> bool:
        return os.path.exists(path)

    marker = f"{experiment}/{LOCK_FILE}"
    asked = [sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(marker)
             for n in nodes]
    blind = []
    for node, answer in zip(nodes, asked):
        try:
            if not ray.get(answer):
                blind.append(node["NodeManagerAddress"])
        except ray.exceptions.RayError:
            # A node that died since ray.nodes() listed it (still "Alive" until its health
            # checks fail: a lost spot instance, an idle node removed): it runs no trial.
            logger.info("node %s did not answer the storage check (gone?)", node["NodeManagerAddress"])
    if blind:
        raise ValueError(f"--storage {experiment.rsplit('/', 1)[0]} is a local path that {len(blind)} of the "
                         f"cluster's {len(nodes)} other node(s) ({', '.join(sorted(set(blind)))}) do not see, so "
                         "every trial there would fail at its first checkpoint; give a path on a filesystem every "
                         "node mounts at the same place (NFS) or an s3:// / gs:// URI (docs/CLUSTER.md)")


#: Where `ray up` leaves the cluster's config on the head, which the autoscaler reads (and
#: Ray Tune, as the sign of a launched cluster: ray/tune/execution/cluster_info.py).
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


def gpus_it_can_add(bootstrap: str = BOOTSTRAP_CONFIG) -> float:
    """The GPUs an autoscaling cluster can add: ``max_workers`` × GPUs of each worker type in
    the config `ray up` left on the head (0 where there is none: not such a cluster's head)."""
    path = Path(bootstrap).expanduser()
    try:
        config = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        # Read for a warning only: a config that will not read must not stop the search.
        return 0
    types = config.get("available_node_types") if isinstance(config, dict) else None
    if not isinstance(types, dict):
        return 0
    return sum(float((t.get("resources") or {}).get("GPU", 0)) * int(t.get("max_workers", 0))
               for name, t in types.items() if isinstance(t, dict) and name != config.get("head_node_type"))


def warn_if_gpus_unused(settings: SearchSettings, bootstrap: str = BOOTSTRAP_CONFIG) -> None:
    """A cluster with GPUs, or one that can add them, and ``--gpus-per-trial 0``: trials
    train on CPUs (a trial uses only what Ray reserved for it, tune.trainable), so say how
    to use the GPUs. cluster.yaml starts with no GPU (its head has none, its GPU workers
    start at 0) and launches GPU nodes for the CPU-only trials too."""
    import ray

    if settings.gpus_per_trial != 0:
        return
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus > 0:
        logger.warning("the cluster has %g GPU(s), but --gpus-per-trial is 0, so every trial trains on CPUs; give "
                       "--gpus-per-trial 1 (or 0.5 for two trials per GPU) to train on them", gpus)
    elif (more := gpus_it_can_add(bootstrap)) > 0:
        logger.warning("the cluster can add up to %g GPU(s) (its worker types in %s), but --gpus-per-trial is 0, so "
                       "every trial trains on CPUs, on GPU nodes too where those are what it launches; give "
                       "--gpus-per-trial 1 (or 0.5 for two trials per GPU) to train on them", more, bootstrap)


def trials_held_now(settings: SearchSettings) -> int:
    """How many trials the cluster's resources hold at once now (0: none, a GPU trial on a
    cluster without GPUs yet)."""
    import ray

    total = ray.cluster_resources()
    slots = [math.floor(total.get("CPU", 1) / settings.cpus_per_trial)]
    if settings.gpus_per_trial > 0:
        slots.append(math.floor(total.get("GPU", 0) / settings.gpus_per_trial + 1e-9))
    return min(slots)


def default_concurrency(settings: SearchSettings) -> int:
    """As many trials as the cluster's resources hold at once (at least 1)."""
    return max(1, trials_held_now(settings))


def warn_if_autoscaling_would_starve(settings: SearchSettings, joined: bool,
                                     bootstrap: str = BOOTSTRAP_CONFIG) -> None:
    """On a cluster, the default concurrency is what its nodes hold *now*. An autoscaling
    cluster adds nodes only for trials that wait, so a head-only start would run one trial
    at a time for the whole search: say so, and how to ask for more.

    ``joined``: the search runs on a cluster it joined (with ``--address``, ``RAY_ADDRESS``,
    or none at all: ``ray exec`` on the head joins the cluster running there), not on a
    Ray it started (tune.ray_connect.joined_cluster)."""
    if not joined:
        return
    import ray

    if (settings.gpus_per_trial > 0 and ray.cluster_resources().get("GPU", 0) == 0
            and gpus_it_can_add(bootstrap) == 0):
        # Ray only repeats a warning naming ScalingConfig/resources_per_trial, not nerkit's.
        logger.warning("the cluster has no GPU now, and its autoscaling config (%s) adds none, so no trial with "
                       "--gpus-per-trial %g can start until a GPU node joins; give --gpus-per-trial 0 to train on "
                       "CPUs, or add GPU nodes", bootstrap, settings.gpus_per_trial)
        return
    if settings.max_concurrent is not None:
        return
    slots = default_concurrency(settings)
    if slots < settings.trials:
        logger.warning(
            "the cluster holds %d concurrent trial(s) now, so the search runs at most %d at once; an "
            "autoscaling cluster starts more nodes only for trials that wait: pass --max-concurrent N "
            "(e.g. the trials its max_workers hold) to let it grow", trials_held_now(settings), slots)


#: Where Ray unpacks a job's ``--working-dir`` on each node: a directory per session and
#: content hash (ray/_private/runtime_env/working_dir.py), gone after ``ray down``.
_WORKING_DIR_MARK = "/runtime_resources/working_dir_files/"


def warn_if_data_is_temporary(data) -> None:
    """Data shipped in the job's ``--working-dir`` is recorded at Ray's unpacked copy of it,
    which a ``--resume`` after ``ray down`` (a new session) or a ``nerkit promote`` from
    another machine will not find: say so while it can still be moved."""
    shipped = [p for p in (data.path, data.train, data.dev, data.test) if p and _WORKING_DIR_MARK in str(p)]
    if shipped:
        logger.warning("the data (%s) is in the job's --working-dir, which Ray unpacks to a directory of this "
                       "session only: a --resume after `ray down` or a promote from another machine will not find "
                       "it; put the data on storage every node and later command reach (NFS), and give that path",
                       ", ".join(map(str, shipped)))
