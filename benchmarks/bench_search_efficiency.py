"""Search efficiency at an equal trial budget: default search vs random search vs the team's recipe.

Command (the scale run for RESULTS.md; full scale drops ``--train-limit``)::

    python benchmarks/bench_search_efficiency.py --model bundled-minilm --trials 12 --max-epochs 3 \
        --train-limit 420 --recipe-epochs 15 --out benchmarks/results/search_efficiency.json

The twenty-first session's arm with ASHA's first rung at half an epoch (trials evaluate
twice per epoch), run before default.yaml shipped that (the same arm now takes no options
past ``--seed``; ``--grace-epochs 1 --evals-per-epoch 1`` gives the space as it was)::

    for s in 0 1 2 3 4 5 6 7; do python benchmarks/bench_search_efficiency.py --trials 24 --max-epochs 3 \
        --grace-epochs 0.5 --evals-per-epoch 2 --seed $s --arms default \
        --out benchmarks/results/search_efficiency_session21_half_s$s.json; done

The eleventh session's seeds (24 trials, full corpus, random arm on its own seed), then
their table (``summarize_search_efficiency.py``)::

    for s in 0 1 2 3 4 5 6 7 8 9; do python benchmarks/bench_search_efficiency.py --trials 24 \
        --max-epochs 3 --seed $s --arms default,random \
        --out benchmarks/results/search_efficiency_indep_24_s$s.json; done

Arms, run one after another on one local Ray (every trial 1 CPU, as many at once as
the machine's CPUs allow):

* ``default`` — ``tune.driver.run_search`` on ``search_spaces/default.yaml`` exactly
  as shipped: Optuna TPE (its two baselines enqueued first), ASHA (the space's grace,
  half an epoch, or ``--grace-epochs``; reduction factor 2 or ``--reduction-factor``), the collapse
  guard; ``--startup-trials`` sets TPE's startup count (default: the driver's rule).
  ``--no-baselines`` leaves the two baselines out, so the arm is the search proper
  (TPE + ASHA + guard) with every trial a searched point: the baselines are reference
  trials for the report, and the team's recipe has its own arm. ``--evals-per-epoch K``
  runs it on a copy of the space whose trials evaluate K times per epoch instead of the
  space's 2 (the guard's grace, patience and min_rise scaled to span the same epochs).
* ``random`` — the same space, trainable (``tune.trainable.run_trial``), base config,
  data and trial count, built here with ``tune.Tuner``: Optuna's ``RandomSampler``
  (seeded with ``--random-seed``), no scheduler (every trial runs its full
  ``--max-epochs``), no guard, no baselines; its trials evaluate as the space says (twice
  per epoch since the twenty-first session, once before, in every stored random arm). Its default seed is independent of
  ``--seed``: with one seed for both, TPE's random startup trials were the random
  arm's first points, and the default arm could reach random's best through a point
  both arms shared (runs before the eleventh session did that; ``--random-seed S`` with
  ``S`` = ``--seed`` repeats them).
* ``recipe`` — ``run_search`` on ``search_spaces/seed_recipe.yaml``: the team's one
  point (seed weights, O 0.5, boost 3.0, lr 3e-5, batch 16) for ``--recipe-epochs``.

Compute is counted in epochs trained (passes over the train split, from the trial
tables), so it does not depend on machine load. For each arm: best dev F1 as a
function of cumulative epochs (trials ordered by end time), wall time, and test F1
of its best checkpoint (``tune.scoring.evaluate_test``: the same scoring as promotion).
Target: ``default`` reaches ``random``'s final best dev F1 within 1/3 of ``random``'s
epochs. Prints one JSON document and markdown tables.

On a GPU machine add ``--gpus-per-trial`` (0.25: four trials per GPU) to every arm's search;
without it, trials train on the CPU there too (a trial with no GPU reserved does not see one).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _benchutil as bu


def _curve(rows: list[dict[str, Any]], ends: dict[str, float]) -> list[dict[str, Any]]:
    """Best dev F1 so far vs cumulative epochs, trials in the order they ended."""
    done = sorted((r for r in rows if r["trial_id"] in ends), key=lambda r: ends[r["trial_id"]])
    points, epochs, best = [], 0.0, 0.0
    t0 = min(ends.values()) if ends else 0.0
    for r in done:
        epochs += r.get("epochs_trained") or 0.0
        best = max(best, r.get("best_dev_f1") or 0.0)
        points.append({"trial_id": r["trial_id"], "cum_epochs": round(epochs, 3), "best_dev_f1": round(best, 4),
                       "trial_dev_f1": r.get("best_dev_f1"), "stop_reason": r["stop_reason"],
                       "epochs": r.get("epochs_trained"), "baseline": r.get("baseline", ""),
                       "ended_s": round(ends[r["trial_id"]] - t0, 1)})
    return points


def _random_search(settings, seed: int):
    """``settings``' space and trainable, random sampling, no scheduler, no guard, no baselines."""
    import optuna
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from nerkit.features import prepare_data
    from tune.cluster_checks import default_concurrency
    from tune.driver import SearchPlan, plan_search, trial_dirname
    from tune.ray_connect import init_ray
    from tune.settings import SETTINGS_FILE
    from tune.space import Sampler
    from tune.storage import write_text
    from tune.trainable import run_trial

    base_plan = plan_search(settings)
    plan = SearchPlan(settings, base_plan.space.with_guard(enabled=False), base_plan.base)
    init_ray(None)
    prepared = prepare_data(plan.base.data, plan.base.model, plan.base.max_length, plan.base.label_all_subwords)
    Path(settings.experiment_path).mkdir(parents=True, exist_ok=True)
    # search.json, so tune.tables.collect reads this experiment like any other.
    write_text(f"{settings.experiment_path}/{SETTINGS_FILE}",
               json.dumps(plan.to_record(), indent=2, sort_keys=True, default=str) + "\n")
    searcher = OptunaSearch(space=Sampler(plan.space), metric="dev_f1", mode="max",
                            sampler=optuna.samplers.RandomSampler(seed=seed))
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=plan.base.to_dict(), prepared=prepared),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, default_concurrency(settings)),
                                    num_samples=settings.trials, trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=settings.name, storage_path=settings.storage_root, verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="dev_f1",
                                                    checkpoint_score_order="max")),
    )
    return tuner.fit()


def _space_evaluating(k: int | None, tmp: Path) -> Path:
    """default.yaml, or a copy whose trials evaluate ``k`` times per epoch, with the guard's
    grace and patience (counted in evaluations) and min_rise (a rise per evaluation) scaled
    so they span the epochs they do in the space."""
    shipped = bu.REPO / "search_spaces/default.yaml"
    import yaml

    space = yaml.safe_load(shipped.read_text())
    own = space["base"].get("evals_per_epoch", 1)
    if k is None or k == own:
        return shipped
    space["base"]["evals_per_epoch"] = k
    guard = space["collapse_guard"]
    for key in ("grace", "patience"):
        if guard[key] * k % own:
            raise ValueError(f"--evals-per-epoch is {k}, but the guard's {key} ({guard[key]} evaluations at {own} "
                             f"an epoch) would not be a whole number of evaluations; give a multiple of {own}, or 1")
        guard[key] = guard[key] * k // own
    if guard.get("min_rise") is not None:
        guard["min_rise"] = guard["min_rise"] * own / k
    path = tmp / f"default_evals{k}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def _test_f1(row: dict[str, Any]) -> dict[str, Any]:
    from tune.confirm import row_config
    from tune.scoring import evaluate_test

    if not row.get("checkpoint"):
        return {"test_f1": None}
    metrics, _ = evaluate_test(Path(row["checkpoint"]), row_config(row))
    return {"test_f1": round(metrics["f1"], 4), "test_entity_pred_ratio": round(metrics["entity_pred_ratio"], 4)}


def _reach(curve: list[dict[str, Any]], target: float) -> float | None:
    """Cumulative epochs at which ``curve`` first reaches dev F1 ``target``.

    Compares each trial's unrounded F1 (the curve's running best is rounded for
    display: an equal point rounded down once read as never reached).
    """
    best = float("-inf")
    for point in curve:
        best = max(best, point["trial_dev_f1"])
        if best >= target - 1e-12:
            return point["cum_epochs"]
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="bundled-minilm")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--max-epochs", type=float, default=3)
    p.add_argument("--grace-epochs", type=float, help="default arm's ASHA grace period (default: the space's, 0.5)")
    p.add_argument("--evals-per-epoch", type=int,
                   help="default arm's evaluations per epoch (default: the space's, 2; the guard's grace, patience "
                        "and min_rise are scaled so they cover the same epochs): 1 with --grace-epochs 1 is "
                        "default.yaml before the twenty-first session")
    p.add_argument("--reduction-factor", type=float, help="default arm's ASHA reduction factor (default: the space's, 2)")
    p.add_argument("--startup-trials", type=int,
                   help="default arm's TPE startup trials, baselines included (default: the driver's rule, 8 at 24 trials)")
    p.add_argument("--no-baselines", action="store_true",
                   help="default arm without the space's two baselines (the search proper; the recipe has its own arm)")
    p.add_argument("--recipe-epochs", type=float, default=15, help="the team trained 15 epochs")
    p.add_argument("--train-limit", type=int, help="first N train records (default: all)")
    p.add_argument("--seed", type=int, default=0, help="TPE sampler seed; trials train with the spaces' seed (13) in every arm, so the recipe arm "
                        "gives the same run whatever this is")
    p.add_argument("--random-seed", type=int,
                   help="random arm's sampler seed (default: --seed + 1000, so no point is shared with TPE's startup)")
    p.add_argument("--arms", default="default,random,recipe")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="every arm's --gpus-per-trial (0: trials train on the CPU, also on a GPU machine)")
    p.add_argument("--storage", help="where the experiments go (default: a temp dir, deleted)")
    p.add_argument("--out", help="also write the JSON document here")
    args = p.parse_args(argv)
    if args.random_seed is None:
        args.random_seed = args.seed + 1000

    bu.private_ray_tmpdir()
    import ray

    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.ray_connect import init_ray
    from tune.settings import SearchSettings
    from tune.tables import collect

    doc: dict[str, Any] = {**bu.document("search_efficiency", vars(args)), "arms": {}}
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        storage = args.storage or f"{tmp}/runs"
        data = DataConfig(path=str(bu.corpus_copy(Path(tmp) / "data", train_limit=args.train_limit)))
        t = time.perf_counter()
        init_ray(None)
        doc["ray_start_s"] = round(time.perf_counter() - t, 1)
        common = dict(storage=storage, model=args.model, data=data, seed=args.seed, gpus_per_trial=args.gpus_per_trial)
        for arm in args.arms.split(","):
            load = bu.load_avg()
            t = time.perf_counter()
            if arm == "default":
                space = _space_evaluating(args.evals_per_epoch, Path(tmp))
                s = SearchSettings(name="default", space=str(space),
                                   trials=args.trials, max_epochs=args.max_epochs, grace_epochs=args.grace_epochs,
                                   reduction_factor=args.reduction_factor, startup_trials=args.startup_trials,
                                   baselines=not args.no_baselines, **common)
                run_search(s)
            elif arm == "random":
                s = SearchSettings(name="random", space=str(bu.REPO / "search_spaces/default.yaml"),
                                   trials=args.trials, max_epochs=args.max_epochs, baselines=False, **common)
                _random_search(s, args.random_seed)
            elif arm == "recipe":
                s = SearchSettings(name="recipe", space=str(bu.REPO / "search_spaces/seed_recipe.yaml"), trials=1,
                                   max_epochs=args.recipe_epochs, grace_epochs=args.recipe_epochs, **common)
                run_search(s)
            else:
                raise ValueError(f"arm is {arm!r}, but must be one of default, random, recipe")
            wall = time.perf_counter() - t
            tables = collect(s.experiment_path)
            curve = _curve(tables.trials, bu.trial_end_times(s.experiment_path))
            best = max(tables.trials, key=lambda r: r.get("best_dev_f1") or -1.0)
            reasons: dict[str, int] = {}
            for r in tables.trials:
                reasons[r["stop_reason"]] = reasons.get(r["stop_reason"], 0) + 1
            doc["arms"][arm] = {
                "wall_s": round(wall, 1), "load_avg_1m_before": load, "load_avg_1m_after": bu.load_avg(),
                "trials": len(tables.trials), "epochs": curve[-1]["cum_epochs"] if curve else 0.0,
                "best_dev_f1": best.get("best_dev_f1"), "best_trial": best["trial_id"],
                "best_config": {k[6:]: v for k, v in best.items() if k.startswith("param_")},
                "best_baseline": best.get("baseline", ""), "stop_reasons": reasons,
                **_test_f1(best), "curve": curve,
            }
            print(f"[{arm}] wall {wall:.0f}s best dev F1 {best.get('best_dev_f1')}", file=sys.stderr, flush=True)
    ray.shutdown()

    arms = doc["arms"]
    if "default" in arms and "random" in arms:
        target = arms["random"]["best_dev_f1"]
        need = _reach(arms["default"]["curve"], target)
        doc["target"] = {
            "random_final_best_dev_f1": target, "random_epochs": arms["random"]["epochs"],
            "default_epochs_to_reach_it": need,
            "share_of_random_compute": round(need / arms["random"]["epochs"], 3) if need is not None else None,
            "met": need is not None and need <= arms["random"]["epochs"] / 3,
        }
        for arm in arms.values():
            arm["epochs_to_reach_random_best"] = _reach(arm["curve"], target)
    rows = [{"arm": k, **{c: v[c] for c in v if c != "curve"}} for k, v in arms.items()]
    cols = ["arm", "trials", "epochs", "wall_s", "best_dev_f1", "test_f1", "epochs_to_reach_random_best",
            "stop_reasons", "best_baseline", "load_avg_1m_before"]
    curve_rows = [{"arm": k, **pt} for k, v in arms.items() for pt in v["curve"]]
    bu.emit(doc, [("Search efficiency", rows, cols),
                  ("Best dev F1 vs cumulative epochs (trials by end time)", curve_rows,
                   ["arm", "cum_epochs", "best_dev_f1", "trial_dev_f1", "epochs", "stop_reason", "baseline"])],
            args.out)


if __name__ == "__main__":
    main()
