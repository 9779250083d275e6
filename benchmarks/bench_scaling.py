"""Scaling: trials per hour on a local multi-node Ray cluster, and search cost vs dataset size.

Command (tiny random BERT: node scaling of the search machinery, not model speed)::

    python benchmarks/bench_scaling.py --trials 6 --max-epochs 2 --nodes 1,2 --cpus-per-node 1 \
        --data-scales 0.5,1,2 --out benchmarks/results/scaling.json

A cluster is ``ray.cluster_utils.Cluster`` on this machine: a head with 0 CPUs (no
trial lands on it, as in cluster.yaml) plus N worker nodes of ``--cpus-per-node``
CPUs each, every node its own raylet. For each N, ``tune.driver.run_search`` runs
``search_spaces/default.yaml`` against the cluster's address (1 CPU per trial).
Then, on the largest cluster, the same search on the train split scaled 0.5x, 1x,
2x (2x = the records twice, the second copy in another order; dev/test unchanged).
Reported: wall time, trials per hour, epochs and tokens trained, the trials' summed
wall time. Prints one JSON document and markdown tables.

CPU nodes only: the simulated worker nodes advertise no GPUs (on a GPU machine the
trials still train on its CPU), since nodes started on one host cannot split its GPUs
between them the way separate machines each have their own.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _benchutil as bu


def _start_cluster(workers: int, cpus: float):
    import ray
    import ray._private.services as services
    from ray.cluster_utils import Cluster

    # Ray rewrites a driver's 127.0.0.1 bootstrap address to the machine's interface
    # IP, where this loopback-only cluster does not listen (the driver then hangs
    # retrying). Keep loopback as given: every process of this cluster is local.
    services.resolve_ip_for_localhost = lambda host: host
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=0, num_gpus=0, include_dashboard=False, node_ip_address="127.0.0.1",
        object_store_memory=100 * 1024**2))
    for _ in range(workers):
        cluster.add_node(num_cpus=cpus, node_ip_address="127.0.0.1", object_store_memory=100 * 1024**2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def _stop_cluster(cluster) -> None:
    import ray

    ray.shutdown()
    cluster.shutdown()


def _one_search(name: str, storage: str, model: str, data_dir: Path, args, address: str) -> dict[str, Any]:
    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.settings import SearchSettings
    from tune.tables import collect

    s = SearchSettings(name=name, space=str(bu.REPO / "search_spaces/default.yaml"), storage=storage,
                       trials=args.trials, model=model, data=DataConfig(path=str(data_dir)),
                       max_epochs=args.max_epochs)
    load = bu.load_avg()
    t = time.perf_counter()
    run_search(s, address=address)
    wall = time.perf_counter() - t
    rows = collect(s.experiment_path).trials
    nodes = {r["node_id"] for r in rows if r["node_id"]}
    return {
        "wall_s": round(wall, 1), "trials": len(rows), "trials_per_hour": round(len(rows) / wall * 3600, 1),
        "epochs": round(sum(r["epochs_trained"] or 0 for r in rows), 2),
        "tokens": sum(r["tokens_trained"] for r in rows),
        "sum_trial_wall_s": round(sum(r["wall_time_s"] or 0 for r in rows), 1),
        "nodes_used": len(nodes), "load_avg_1m_before": load,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny", help="'tiny' (2-layer random BERT) or a nerkit model name")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--max-epochs", type=float, default=3)
    p.add_argument("--nodes", default="1,2", help="worker-node counts to compare")
    p.add_argument("--cpus-per-node", type=float, default=1)
    p.add_argument("--data-scales", default="0.5,1,2", help="train-split scales, run on the largest cluster")
    p.add_argument("--out", help="also write the JSON document here")
    args = p.parse_args(argv)

    ray_tmp = bu.private_ray_tmpdir()
    doc: dict[str, Any] = {**bu.document("scaling", vars(args)), "nodes": {}, "data_scales": {}}
    node_counts = [int(n) for n in args.nodes.split(",")]
    scales = [float(s) for s in args.data_scales.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        tmp_path = Path(tmp)
        model = str(bu.tiny_model(tmp_path / "tiny")) if args.model == "tiny" else args.model
        data = {s: bu.corpus_copy(tmp_path / f"data-{s}", scale=s, seed=1) for s in {1.0, *scales}}
        storage = str(tmp_path / "runs")
        for n in node_counts:
            t = time.perf_counter()
            cluster = _start_cluster(n, args.cpus_per_node)
            start_s = time.perf_counter() - t
            try:
                res = _one_search(f"nodes{n}", storage, model, data[1.0], args, cluster.address)
                res["cluster_start_s"] = round(start_s, 1)
                doc["nodes"][n] = res
                print(f"[nodes {n}] {res}", file=sys.stderr, flush=True)
                if n == max(node_counts):
                    for s in scales:
                        if s == 1.0:
                            doc["data_scales"][s] = {**res, "train_records": _records(data[s])}
                            continue
                        r = _one_search(f"scale{s}", storage, model, data[s], args, cluster.address)
                        doc["data_scales"][s] = {**r, "train_records": _records(data[s])}
                        print(f"[scale {s}] {r}", file=sys.stderr, flush=True)
            finally:
                _stop_cluster(cluster)
    shutil.rmtree(ray_tmp, ignore_errors=True)

    nodes = doc["nodes"]
    if len(nodes) >= 2:
        lo, hi = min(nodes), max(nodes)
        doc["speedup_trials_per_hour"] = round(nodes[hi]["trials_per_hour"] / nodes[lo]["trials_per_hour"], 2)
    base = doc["data_scales"].get(1.0)
    for s, r in doc["data_scales"].items():
        if base:
            r["wall_vs_1x"] = round(r["wall_s"] / base["wall_s"], 2)
            r["tokens_vs_1x"] = round(r["tokens"] / base["tokens"], 2) if base["tokens"] else None
    node_rows = [{"worker_nodes": n, **r} for n, r in nodes.items()]
    scale_rows = [{"scale": s, **r} for s, r in doc["data_scales"].items()]
    bu.emit(doc, [
        ("Trials per hour vs worker nodes", node_rows,
         ["worker_nodes", "trials", "wall_s", "trials_per_hour", "epochs", "sum_trial_wall_s", "nodes_used",
          "cluster_start_s", "load_avg_1m_before"]),
        ("Search cost vs train-split size", scale_rows,
         ["scale", "train_records", "trials", "wall_s", "wall_vs_1x", "epochs", "tokens", "tokens_vs_1x",
          "sum_trial_wall_s", "load_avg_1m_before"]),
    ], args.out)


def _records(data_dir: Path) -> int:
    return sum(1 for line in (data_dir / "train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip())


if __name__ == "__main__":
    main()
