"""Search overhead: wall time x trial slots / the trials' own training time, and where the rest goes.

Command (tiny random BERT: the search machinery, not the model, is measured)::

    python benchmarks/bench_overhead.py --trials 16 --max-epochs 3 --out benchmarks/results/overhead.json

``--model bundled-minilm`` measures the same with MiniLM (slow on 2 cores).
``--data-scale 4`` runs it on the train split four times over (as ``bench_scaling.py``
scales it): epochs four times longer, the same per-evaluation and per-search costs.

The search is ``search_spaces/default.yaml`` as ``tune.driver.run_search`` runs it
(TPE, ASHA, guard, one checkpoint per evaluation unless ``--checkpoint-every``), on local Ray with 1 CPU per
trial (``--cpus-per-trial``; ``--gpus-per-trial 0.25`` puts four trials on each GPU, as the
search's flag does). Each trial's function is ``tune.trainable.run_trial`` wrapped here so it
appends wall-clock timestamps (model/tokenizer load, each dev evaluation, each
checkpoint write, each ``tune.report`` — which persists the checkpoint into the
experiment) to a per-trial event file; nothing in ``nerkit/`` or ``tune/`` is edited.
A trial's *own training time* is nerkit's ``train_seconds`` (optimizer steps only).

    overhead = (search wall) x (concurrent trial slots) / sum(own training time)

Reported both for ``run_search`` alone and end to end (Ray start + data preparation
+ search). ``--ckpt-probe-model`` also times one training-checkpoint write of that
model (optimizer state included), since per-evaluation checkpoints dominate with a
real model. Prints one JSON document and markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import _benchutil as bu

EVENTS = ("imports", "model_load", "tokenizer_load", "eval", "ckpt_write", "report")


def _timed_trial(config: dict[str, Any], *, base: dict[str, Any], prepared, events_dir: str,
                 checkpoint_every: int = 1) -> None:
    """``run_trial`` with timestamps appended to ``events_dir/<trial_id>.jsonl`` (runs in a Ray worker)."""
    import time as _time

    import ray.tune as rtune

    import nerkit.train as nt
    import nerkit.training_run as ntr
    from tune.trainable import run_trial

    path = Path(events_dir) / f"{rtune.get_context().get_trial_id()}.jsonl"

    def log(kind: str, start: float, end: float) -> None:
        # Appended at once: a trial ASHA stops never returns from run_trial.
        with open(path, "a") as f:
            f.write(json.dumps({"kind": kind, "start": start, "end": end, "pid": os.getpid()}) + "\n")

    nt._bench_log = log  # the wrappers below look it up per call (worker processes may be reused)

    def timed(owner, name: str, kind: str) -> None:
        fn = getattr(owner, name)
        if getattr(fn, "_bench_kind", None):
            return

        def wrapper(*a, **kw):
            t = _time.time()
            try:
                return fn(*a, **kw)
            finally:
                nt._bench_log(kind, t, _time.time())

        wrapper._bench_kind = kind
        setattr(owner, name, wrapper)

    timed(nt, "load_model", "model_load")
    timed(nt, "load_tokenizer", "tokenizer_load")
    timed(ntr, "evaluate_split", "eval")
    timed(ntr, "save_training_checkpoint", "ckpt_write")
    timed(rtune, "report", "report")
    start = _time.time()
    log("fn_start", start, start)
    # Import transformers' model classes up front, so `model_load` below is the load
    # alone and `imports` shows what a fresh worker process pays first.
    import importlib

    from transformers import AutoConfig

    from nerkit.model import resolve_model

    kind = AutoConfig.from_pretrained(resolve_model(base["model"])).model_type
    importlib.import_module("transformers.models.auto.modeling_auto")
    importlib.import_module(f"transformers.models.{kind}.modeling_{kind}")
    log("imports", start, _time.time())
    try:
        run_trial(config, base=base, prepared=prepared, checkpoint_every=checkpoint_every)
    finally:
        log("fn_end", _time.time(), _time.time())


def _search(settings, events_dir: str):
    """``run_search`` with the timed trainable in place of the plain one."""
    from ray import tune

    import tune.driver as driver

    def trainable(plan, prepared):
        fn = tune.with_parameters(_timed_trial, base=plan.base.to_dict(), prepared=prepared, events_dir=events_dir,
                                  checkpoint_every=plan.settings.checkpoint_every)
        return tune.with_resources(fn, driver.trial_resources(plan.settings))

    original = driver._trainable
    driver._trainable = trainable  # benchmark instrumentation only; restored below
    try:
        return driver.run_search(settings)
    finally:
        driver._trainable = original


def _trial_events(events_dir: Path) -> dict[str, list[dict[str, float]]]:
    out = {}
    for f in events_dir.glob("*.jsonl"):
        out[f.stem] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def _ckpt_probe(model_name: str, tmp: Path, repeats: int = 3) -> dict[str, Any]:
    """Seconds and MiB of one training checkpoint of ``model_name`` (model + AdamW state + tokenizer)."""
    import torch

    from nerkit.alignment import load_tokenizer
    from nerkit.checkpoint import TrainingState, save_training_checkpoint
    from nerkit.config import TrainConfig
    from nerkit.features import prepare_data
    from nerkit.model import load_model, resolve_model
    from nerkit.optim import build_optimizer, build_scheduler

    cfg = TrainConfig(model=model_name)
    prepared = prepare_data(cfg.data, cfg.model, cfg.max_length, cfg.label_all_subwords)
    model = load_model(model_name, prepared.label_map)
    opt = build_optimizer(model, cfg, torch.device("cpu"))
    sched = build_scheduler(opt, 1, 10)
    ids = torch.tensor([prepared.train.input_ids[0]])
    model(input_ids=ids).logits.sum().backward()
    opt.step()  # AdamW moments exist, as in every real checkpoint
    tok = load_tokenizer(resolve_model(model_name))
    times = []
    for i in range(repeats):
        d = tmp / f"ckpt{i}"
        t = time.perf_counter()
        save_training_checkpoint(d, model=model, tokenizer=tok, optimizer=opt, scheduler=sched,
                                 state=TrainingState(), config=cfg.to_dict(), metrics={"dev_f1": 0.0})
        times.append(round(time.perf_counter() - t, 2))
    size = sum(f.stat().st_size for f in (tmp / "ckpt0").rglob("*") if f.is_file()) / 2**20
    return {"model": model_name, "write_s": times, "size_mib": round(size, 1),
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny", help="'tiny' (2-layer random BERT) or a nerkit model name")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--max-epochs", type=float, default=3)
    p.add_argument("--train-limit", type=int)
    p.add_argument("--data-scale", type=float, default=1.0,
                   help="train split scaled (2 = the records twice, the copy in another order; dev/test as bundled): "
                        "longer epochs at the same per-evaluation costs")
    p.add_argument("--checkpoint-every", type=int, default=1,
                   help="the search's --checkpoint-every: checkpoint every Nth evaluation and the final one")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="the search's --cpus-per-trial")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="the search's --gpus-per-trial (0.25: four trials share a GPU)")
    p.add_argument("--ckpt-probe-model", default="bundled-minilm", help="'' to skip")
    p.add_argument("--out", help="also write the JSON document here")
    args = p.parse_args(argv)

    bu.private_ray_tmpdir()
    import ray

    from nerkit.data import DataConfig
    from nerkit.features import prepare_data
    from tune.cluster_checks import default_concurrency
    from tune.driver import plan_search
    from tune.ray_connect import init_ray
    from tune.settings import SearchSettings

    doc: dict[str, Any] = bu.document("overhead", vars(args))
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        tmp_path = Path(tmp)
        model = str(bu.tiny_model(tmp_path / "tiny")) if args.model == "tiny" else args.model
        data = DataConfig(path=str(bu.corpus_copy(tmp_path / "data", train_limit=args.train_limit,
                                                         scale=args.data_scale, seed=1)))
        settings = SearchSettings(name="overhead", space=str(bu.REPO / "search_spaces/default.yaml"),
                                  storage=str(tmp_path / "runs"), trials=args.trials, model=model, data=data,
                                  max_epochs=args.max_epochs, checkpoint_every=args.checkpoint_every,
                                  cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial)
        events_dir = tmp_path / "events"
        events_dir.mkdir()
        load = bu.load_avg()
        t0 = time.time()
        init_ray(None)
        t_ray = time.time()
        plan = plan_search(settings)
        prepare_data(plan.base.data, plan.base.model, plan.base.max_length, plan.base.label_all_subwords)
        t_prep = time.time()
        slots = default_concurrency(settings)
        _search(settings, str(events_dir))
        t_end = time.time()
        events = _trial_events(events_dir)

        from ray.tune import ExperimentAnalysis

        frames = ExperimentAnalysis(settings.experiment_path).trial_dataframes
        train_s = {tid: float(df["train_seconds"].max()) for tid, df in frames.items()
                   if df is not None and "train_seconds" in df}
        ray.shutdown()
        if args.ckpt_probe_model:
            doc["checkpoint_probe"] = _ckpt_probe(args.ckpt_probe_model, tmp_path / "probe")

    per_kind = {k: 0.0 for k in EVENTS}
    spans, first_start, last_end = 0.0, t_end, t_prep
    for evs in events.values():
        for e in evs:
            if e["kind"] in per_kind:
                per_kind[e["kind"]] += e["end"] - e["start"]
        start = min(e["start"] for e in evs)
        end = max(e["end"] for e in evs)
        spans += end - start
        first_start, last_end = min(first_start, start), max(last_end, end)
    own = sum(train_s.values())
    # The tail: each worker process (a slot, with actor reuse) idles from its last trial's
    # end until the search ends; a slot that never ran a trial idles from the first start.
    slot_ends = {}
    for evs in events.values():
        for e in evs:
            slot_ends[e["pid"]] = max(slot_ends.get(e["pid"], 0.0), e["end"])
    ends = sorted(slot_ends.values(), reverse=True)[:slots]
    tail = sum(t_end - end for end in ends) + (slots - len(ends)) * (t_end - first_start)
    search_wall, e2e_wall = t_end - t_prep, t_end - t0
    # Slot-seconds, end to end: where (wall x slots) went.
    in_trial_other = spans - own - sum(per_kind.values())
    breakdown = {
        "own_training (optimizer steps)": own,
        "dev evaluation": per_kind["eval"],
        "transformers model-class imports (fresh worker)": per_kind["imports"],
        "model + tokenizer load": per_kind["model_load"] + per_kind["tokenizer_load"],
        "checkpoint write (save_training_checkpoint)": per_kind["ckpt_write"],
        "tune.report (persist checkpoint, send result)": per_kind["report"],
        "other inside trial fn (setup, batching, Ray calls)": in_trial_other,
        "ray start (x slots)": (t_ray - t0) * slots,
        "data preparation (x slots)": (t_prep - t_ray) * slots,
        "driver setup until first trial starts (x slots)": (first_start - t_prep) * slots,
        "slots idle between trials (actor reset, scheduling, trial start)":
            search_wall * slots - spans - (first_start - t_prep) * slots - tail,
        "slots idle at the end (waiting for the last trials)": tail,
    }
    total = e2e_wall * slots
    doc.update({
        "load_avg_1m_before": load, "load_avg_1m_after": bu.load_avg(), "slots": slots,
        "trials_finished": len(train_s), "ray_start_s": round(t_ray - t0, 2), "data_prep_s": round(t_prep - t_ray, 2),
        "search_wall_s": round(search_wall, 1), "end_to_end_wall_s": round(e2e_wall, 1),
        "sum_own_training_s": round(own, 1),
        "overhead_search": round(search_wall * slots / own, 2) if own else None,
        "overhead_end_to_end": round(total / own, 2) if own else None,
        "overhead_search_eval_as_own": round(search_wall * slots / (own + per_kind["eval"]), 2) if own else None,
        "breakdown_slot_s": {k: round(v, 1) for k, v in breakdown.items()},
        "per_trial_mean_s": {k: round(v / max(1, len(events)), 3) for k, v in per_kind.items()},
        "evaluations": sum(1 for evs in events.values() for e in evs if e["kind"] == "eval"),
        "checkpoints": sum(1 for evs in events.values() for e in evs if e["kind"] == "ckpt_write"),
        "worker_processes": len({e["pid"] for evs in events.values() for e in evs}),
        "per_trial": [{"imports_s": round(sum(e["end"] - e["start"] for e in evs if e["kind"] == "imports"), 2),
                       "model_load_s": round(sum(e["end"] - e["start"] for e in evs if e["kind"] == "model_load"), 2),
                       "train_s": round(train_s.get(tid, 0.0), 2), "pid": evs[0]["pid"]}
                      for tid, evs in sorted(events.items(), key=lambda kv: kv[1][0]["start"])],
    })
    rows = [{"where": k, "slot_s": round(v, 1), "share": round(v / total, 3)} for k, v in breakdown.items()]
    rows.append({"where": "total (end-to-end wall x slots)", "slot_s": round(total, 1), "share": 1.0})
    summary = [{k: doc[k] for k in ("trials_finished", "slots", "search_wall_s", "end_to_end_wall_s",
                                    "sum_own_training_s", "overhead_search", "overhead_end_to_end",
                                    "load_avg_1m_before")}]
    tables = [("Overhead", summary, list(summary[0])), ("Where the slot-seconds went", rows, ["where", "slot_s", "share"])]
    if "checkpoint_probe" in doc:
        tables.append(("One training checkpoint write", [doc["checkpoint_probe"]],
                       ["model", "params_m", "size_mib", "write_s"]))
    bu.emit(doc, tables, args.out)


if __name__ == "__main__":
    main()
