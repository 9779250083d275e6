"""Collapse guard: compute it saves, and whether any trial it stopped would have recovered.

Command (the run for RESULTS.md)::

    python benchmarks/bench_collapse_guard.py --model bundled-minilm --trials 6 --max-epochs 5 \
        --train-limit 300 --out benchmarks/results/collapse_guard.json

1. A search (``tune.driver.run_search``) on ``benchmarks/collapse_space.yaml``:
   entity:O weight ratios far below 1 and small learning rates, so many trials
   collapse to all-'O'; ASHA's grace equals the budget, so only the guard (defaults:
   eps 0.005, grace 1, patience 2 evaluations) stops trials early.
2. Every trial the guard stopped is re-trained to the end of the budget without the
   guard (``nerkit.train.train`` with the trial's ``config`` column, 1 CPU thread as
   in the search, so its first evaluations replay the trial's). It *would have
   recovered* if any evaluation after the guard's verdict is not collapsed.
   Trials the ratio alone would have stopped but the guard spared (their
   ``gold_entity_prob`` still rose, tune.guard) are listed with their own later
   evaluations from the search, which ran them on: did they come back?
3. The transient-collapse check behind the guard's defaults: plain cross-entropy
   (uniform weights, lr 5e-5, batch 16) on the whole bundled corpus, trained for 1
   epoch and for 3 epochs; entity_pred_ratio and dev F1 at each epoch.

Target: no guard-stopped trial would have recovered. Prints one JSON document and
markdown tables.

On a GPU machine add ``--gpus-per-trial`` (0.25: four trials per GPU); the re-runs then train
on the GPU too. Without it, the trials and the re-runs train on the CPU (a trial with no GPU
reserved does not see one, and the re-runs must replay the trials).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import _benchutil as bu

KEEP = ("eval_index", "epoch", "dev_f1", "entity_pred_ratio", "gold_entity_prob", "collapsed", "dev_loss",
        "train_loss")


def _train_history(config: dict[str, Any], threads: int, device: str = "cpu") -> dict[str, Any]:
    """Train ``config`` to its end (no guard, no search) and return its evaluation history,
    on ``device``: the one the search's trials trained on, so it replays them (a trial
    with no GPU reserved trains on the CPU even on a GPU machine; device auto here would
    take the GPU, in bf16, and replay nothing)."""
    from nerkit.config import TrainConfig
    from nerkit.train import train

    cfg = TrainConfig.from_dict(config).with_overrides(num_threads=threads, device=device)
    t = time.perf_counter()
    result = train(cfg)
    return {"status": result.status, "wall_s": round(time.perf_counter() - t, 1),
            "history": [{k: (round(m[k], 4) if isinstance(m[k], float) else m[k]) for k in KEEP}
                        for m in result.history]}


def _guard_verdict(ratios: list[float], guard: dict[str, Any], probs: list[float | None] | None = None) -> int | None:
    from tune.guard import GuardConfig, collapse_index

    return collapse_index(ratios, GuardConfig(**guard), probs)


def _round(values: list[float | None]) -> list[float | None]:
    return [None if v is None else round(v, 4) for v in values]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="bundled-minilm")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--max-epochs", type=float, default=5)
    p.add_argument("--train-limit", type=int, help="first N train records for the search (default: all)")
    p.add_argument("--space", default=str(Path(__file__).resolve().parent / "collapse_space.yaml"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="parallel re-training processes (1 thread each)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="the search's --gpus-per-trial (0: trials and re-runs train on the CPU; above 0: both on "
                        "the GPU)")
    p.add_argument("--ce-epochs", default="1,3", help="plain-CE transient-collapse check ('' to skip)")
    p.add_argument("--out", help="also write the JSON document here")
    args = p.parse_args(argv)

    bu.private_ray_tmpdir()
    import ray

    from nerkit.config import TrainConfig
    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.settings import SearchSettings
    from tune.stop_reasons import last_per_evaluation, entity_prob_history, ratio_history
    from tune.tables import collect

    doc: dict[str, Any] = bu.document("collapse_guard", vars(args))
    pool = ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn"))
    with tempfile.TemporaryDirectory(prefix="bench-collapse-") as tmp, pool:
        data = DataConfig(path=str(bu.corpus_copy(Path(tmp) / "data", train_limit=args.train_limit)))
        settings = SearchSettings(name="collapse", space=args.space, storage=f"{tmp}/runs", trials=args.trials,
                                  model=args.model, data=data, max_epochs=args.max_epochs,
                                  grace_epochs=args.max_epochs, seed=args.seed, baselines=False,
                                  gpus_per_trial=args.gpus_per_trial)
        device = "auto" if args.gpus_per_trial > 0 else "cpu"
        load = bu.load_avg()
        t = time.perf_counter()
        run_search(settings)
        search_wall = time.perf_counter() - t
        tables = collect(settings.experiment_path)
        ray.shutdown()  # free the cores for the re-training below
        guard = tables.record["space"]["guard"]
        by_trial: dict[str, list[dict[str, Any]]] = {}
        for h in tables.history:
            by_trial.setdefault(h["trial_id"], []).append(h)
        stopped = [r for r in tables.trials if r["stop_reason"] == "collapsed"]
        futures = {r["trial_id"]: pool.submit(_train_history, json.loads(r["config"]), 1, device) for r in stopped}
        ce = {}
        for e in (float(x) for x in args.ce_epochs.split(",") if x):
            cfg = TrainConfig(model=args.model, weight_strategy="none", loss="ce", learning_rate=5e-5,
                              batch_size=16, epochs=e, num_threads=1)
            ce[e] = pool.submit(_train_history, cfg.to_dict(), 1, device)
        reruns = []
        for r in stopped:
            search_ratios = ratio_history(by_trial.get(r["trial_id"], []))
            search_probs = entity_prob_history(by_trial.get(r["trial_id"], []))
            stop_at = _guard_verdict(search_ratios, guard, search_probs)
            full = futures[r["trial_id"]].result()
            after = full["history"][stop_at + 1:] if stop_at is not None else []
            reruns.append({
                "trial_id": r["trial_id"],
                "params": {k[6:]: v for k, v in r.items() if k.startswith("param_")},
                "entity_o_ratio": r["entity_o_ratio"],
                "epochs_in_search": r["epochs_trained"],
                "search_ratios": [round(x, 4) for x in search_ratios],
                "search_entity_probs": _round(search_probs),
                "rerun_ratios": [h["entity_pred_ratio"] for h in full["history"]],
                "rerun_entity_probs": [h.get("gold_entity_prob") for h in full["history"]],
                "rerun_f1": [h["dev_f1"] for h in full["history"]],
                # Losses too: whether a collapsed trial that is still learning can be told
                # from one that is stuck (§5, seventh session).
                "rerun_dev_loss": [h["dev_loss"] for h in full["history"]],
                "rerun_train_loss": [h["train_loss"] for h in full["history"]],
                "replay_matches": [round(x, 4) for x in search_ratios] ==
                                  [h["entity_pred_ratio"] for h in full["history"][:len(search_ratios)]],
                "would_have_recovered": any(not h["collapsed"] for h in after),
                "best_f1_after_stop": max((h["dev_f1"] for h in after), default=None),
                "rerun_wall_s": full["wall_s"],
            })
        ce_runs = {e: f.result() for e, f in ce.items()}

    max_ep = args.max_epochs
    trained = sum(r["epochs_trained"] or 0 for r in tables.trials)
    saved = sum(max_ep - (r["epochs_trained"] or 0) for r in stopped)
    reasons: dict[str, int] = {}
    for r in tables.trials:
        reasons[r["stop_reason"]] = reasons.get(r["stop_reason"], 0) + 1
    recovered = [x["trial_id"] for x in reruns if x["would_have_recovered"]]
    # Trials the ratio alone would have stopped but a rising gold_entity_prob spared
    # (tune.guard): they ran on in the search itself, so their own later evaluations say
    # whether sparing them was right.
    spared = []
    for r in tables.trials:
        hist = by_trial.get(r["trial_id"], [])
        ratios, probs = ratio_history(hist), entity_prob_history(hist)
        evals = last_per_evaluation(hist)  # the rows both histories were built from
        ratio_only = _guard_verdict(ratios, {**guard, "min_rise": None})
        rule = _guard_verdict(ratios, guard, probs) if r["stop_reason"] == "collapsed" else None
        # Spared at the ratio-only verdict: it ran on (perhaps to a later verdict of the rule).
        if ratio_only is not None and ratio_only < len(ratios) - 1 and (rule is None or rule > ratio_only):
            later = evals[ratio_only + 1:]
            spared.append({
                "trial_id": r["trial_id"], "entity_o_ratio": r["entity_o_ratio"], "stop_reason": r["stop_reason"],
                "ratio_only_verdict_at": ratio_only, "ratios": _round(ratios), "entity_probs": _round(probs),
                "f1": _round([h.get("dev_f1") for h in evals]),
                "recovered": any(h["entity_pred_ratio"] >= guard["eps"] for h in later),
                "best_f1_after_verdict": max((h["dev_f1"] for h in later), default=None),
                "epochs_after_verdict": round((r["epochs_trained"] or 0) - evals[ratio_only]["epoch"], 2),
            })
    doc.update({
        "load_avg_1m_before": load, "load_avg_1m_after": bu.load_avg(), "search_wall_s": round(search_wall, 1),
        "guard": guard, "stop_reasons": reasons, "epochs_trained": round(trained, 2),
        "epochs_saved_by_guard": round(saved, 2),
        "share_of_compute_saved": round(saved / (trained + saved), 3) if trained + saved else 0.0,
        "guard_stopped": len(stopped), "would_have_recovered": recovered,
        "share_recovered": round(len(recovered) / len(stopped), 3) if stopped else None,
        "target_met": not recovered,
        "spared_by_rising_entity_prob": spared,
        "spared_that_recovered": [x["trial_id"] for x in spared if x["recovered"]],
        "best_dev_f1_in_search": max((r["best_dev_f1"] or 0.0) for r in tables.trials),
        "trials": [{k: r[k] for k in ("trial_id", "stop_reason", "epochs_trained", "best_dev_f1",
                                      "last_entity_pred_ratio", "entity_o_ratio")}
                   | {"params": {k[6:]: v for k, v in r.items() if k.startswith("param_")}} for r in tables.trials],
        "reruns": reruns,
        "plain_ce_check": {str(e): v for e, v in ce_runs.items()},
    })
    summary = [{k: doc[k] for k in ("guard_stopped", "epochs_trained", "epochs_saved_by_guard",
                                    "share_of_compute_saved", "share_recovered", "best_dev_f1_in_search",
                                    "search_wall_s", "load_avg_1m_before")}
               | {"stop_reasons": reasons, "spared": len(spared), "spared_recovered": len(doc["spared_that_recovered"])}]
    rerun_rows = [{**x, "params": json.dumps(x["params"], default=str)} for x in reruns]
    ce_rows = [{"epochs_budget": e, "epoch": h["epoch"], "entity_pred_ratio": h["entity_pred_ratio"],
                "dev_f1": h["dev_f1"], "collapsed": h["collapsed"]}
               for e, v in ce_runs.items() for h in v["history"]]
    bu.emit(doc, [
        ("Collapse guard", summary, list(summary[0])),
        ("Guard-stopped trials re-trained to the end without the guard", rerun_rows,
         ["trial_id", "entity_o_ratio", "search_ratios", "rerun_ratios", "rerun_entity_probs", "rerun_f1",
          "replay_matches",
          "would_have_recovered"]),
        ("Trials spared by a rising gold_entity_prob (the ratio alone would have stopped them)",
         [{**x, "ratios": str(x["ratios"]), "entity_probs": str(x["entity_probs"]), "f1": str(x["f1"])} for x in spared],
         ["trial_id", "entity_o_ratio", "stop_reason", "ratio_only_verdict_at", "ratios", "entity_probs", "f1",
          "recovered", "epochs_after_verdict"]),
        ("Plain CE (uniform weights, lr 5e-5): 1-epoch vs 3-epoch budget", ce_rows,
         ["epochs_budget", "epoch", "entity_pred_ratio", "dev_f1", "collapsed"]),
    ], args.out)


if __name__ == "__main__":
    main()
