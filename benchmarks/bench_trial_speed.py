"""Per-trial training speed: nerkit's loop vs the team's Hugging Face ``Trainer`` recipe.

Command (defaults: bundled MiniLM, bundled corpus, 2 epochs, batch 16, lr 3e-5)::

    python benchmarks/bench_trial_speed.py --epochs 2 --seeds 13,14 --threads 1 --profile-steps 12 \
        --experiments fused,freeze_emb,fused+freeze_emb --out benchmarks/results/trial_speed.json

``--warmup`` (one unrecorded run first) and ``--rotate`` (the variants' order moved one
place per seed) keep a cold machine and a fixed order out of the paired ratios
(RESULTS.md §1, GPU, twenty-third session).

Variants, each in its own fresh process (peak RSS from ``os.wait4``):

* ``nerkit`` — ``nerkit.train.train`` unmodified (length-grouped batches, dynamic
  padding, seed weights with O 0.5 / boost 3.0, dev evaluation every epoch, precision
  ``auto``: bf16 on CUDA and on CPUs with bf16 units, else fp32).
* ``trainer`` — the team's recipe re-created: ``transformers.Trainer`` with a
  ``compute_loss`` override using ``torch.nn.CrossEntropyLoss(weight=seed weights,
  ignore_index=-100)``, ``DataCollatorForTokenClassification``, the same model, the
  same aligned ``input_ids``/``labels`` from ``prepare_data`` as a ``datasets.Dataset``,
  batch 16, same epochs, lr, warmup (0.1), weight decay (0.01), clipping (1.0), dev
  evaluation every epoch (``eval_strategy="epoch"``, Trainer defaults otherwise:
  random sampler, eval batch 8, its default optimizer), no checkpoint saving (nerkit's
  ``train`` without ``report`` writes none either).
* ``trainer_grouped`` — the same with the Trainer's own length grouping
  (``train_sampling_strategy="group_by_length"``).
* ``trainer_bf16``, ``trainer_grouped_bf16`` — the two above with ``bf16=True`` on CPU
  too (not run by default; ``--variants``): like for like with nerkit where its
  ``precision: auto`` resolves to bf16 (CPUs with AVX512-BF16/AMX).
* ``trainer_fp32``, ``trainer_grouped_fp32`` — on CUDA, the two without ``bf16`` and
  with TF32 matmuls allowed, as nerkit's ``train`` allows them on CUDA (before the
  twenty-sixth session these ran without TF32);
  ``trainer_nocudnn``, ``trainer_grouped_nocudnn`` — with PyTorch's cuDNN attention
  kernel turned off in the process, like nerkit's bf16 context on CUDA (RESULTS.md §1, GPU).
* ``exp_*`` — EXPERIMENTS, not nerkit's defaults: nerkit's loop with one setting
  changed: ``freeze_emb`` (``freeze_embeddings``: word-embedding matrix out of
  backward, clipping and the optimizer), ``bf16`` / ``fp32`` (``precision`` forced
  either way; ``auto`` picks bf16 on CUDA and on CPUs with AVX512-BF16/AMX, fp32
  elsewhere), ``compile`` (``torch.compile(dynamic=True)`` patched into the model
  factory in the child process; slow to warm up on CPU, not run by default), and
  ``fused`` (AdamW ``fused=True``: nerkit's default since the first profile, so now
  the same as ``nerkit``), ``dense_emb`` (``embedding_update: dense``: torch's AdamW over the
  whole word-embedding matrix, as before the row-sparse update; ``auto`` is sparse on CPU),
  ``nogroup`` (``length_grouping: false``: random batches, dynamic padding), ``pool4`` /
  ``pool8`` / ``pool16`` (length grouping within pools of that many batches instead of
  ``nerkit.batching.POOL_BATCHES``), ``nocudnn`` (``torch.backends.cuda.enable_cudnn_sdp(False)`` in the
  child process: what nerkit's bf16 context on CUDA now does, through ``sdpa_kernel``). Combine
  with ``+``.

Measured per run: real (non-padding) training tokens per second of training time,
wall time per epoch (training + that epoch's dev evaluation), total wall (model load to
end), peak RSS (and peak CUDA memory on a GPU), dev F1 of the final model scored by
``nerkit.evaluate.evaluate_split`` for every variant in the same way, in fp32 arithmetic
(before the twenty-eighth session nerkit's was its last in-loop evaluation, under bf16
autocast where it trained in bf16; now ``dev_f1_in_loop``). ``--profile-steps N`` adds a
profile of nerkit's loop: per-phase times (a timed replica of nerkit's step, with and
without the experiments) and torch.profiler's top operators over N real steps.

Runs on CPU or, unchanged, on CUDA (device auto; bf16 autocast via precision
``auto`` for nerkit and ``bf16=True`` for the Trainer where CUDA supports it).
Prints one JSON document and markdown tables.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _benchutil as bu

CORE_VARIANTS = ("nerkit", "trainer", "trainer_grouped")
# The Trainer with bf16=True on CPU too (like nerkit's bf16 experiment): like-for-like
# when nerkit runs bf16 on a CPU with native bf16 (on CUDA both use bf16 already).
BF16_VARIANTS = ("trainer_bf16", "trainer_grouped_bf16")
# On CUDA: the Trainer without bf16 (fp32 like nerkit's fp32 experiment), and with
# PyTorch's cuDNN attention backend off (like nerkit's nocudnn experiment).
CUDA_VARIANTS = ("trainer_fp32", "trainer_grouped_fp32", "trainer_nocudnn", "trainer_grouped_nocudnn")
EXPERIMENTS = ("fused", "freeze_emb", "compile", "bf16", "fp32", "nocudnn", "dense_emb", "nogroup", "pool4", "pool8",
               "pool16")


# ------------------------------------------------------------------ child: shared


def _config(args):
    from nerkit.config import TrainConfig

    # The team's recipe in nerkit terms: seed weights, O 0.5, entity boost 3.0.
    return TrainConfig(
        model=args.model, max_length=args.max_length, weight_strategy="seed", o_weight=0.5,
        entity_boost=3.0, loss="ce", learning_rate=args.lr, batch_size=args.batch_size,
        epochs=args.epochs, seed=args.seed, warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0,
        num_threads=args.threads or None,
    )


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _cuda_peak_mib() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


# Experiments that are nerkit settings now: each is a config override. `fused` shipped
# as nerkit's default (AdamW fused=True), so it changes nothing; the name is still
# accepted so the first-session commands in RESULTS.md run as written.
EXPERIMENT_OVERRIDES: dict[str, dict[str, Any]] = {
    "fused": {}, "freeze_emb": {"freeze_embeddings": True}, "dense_emb": {"embedding_update": "dense"},
    "bf16": {"precision": "bf16"}, "fp32": {"precision": "fp32"}, "nogroup": {"length_grouping": False},
}


def _apply_experiments(cfg, names: list[str]):
    """``cfg`` with the EXPERIMENT settings in ``names``; ``compile`` patches the model
    factory and ``nocudnn`` turns PyTorch's cuDNN attention backend off, in this process only."""
    for name in names:
        cfg = cfg.with_overrides(**EXPERIMENT_OVERRIDES.get(name, {}))
    if "nocudnn" in names:
        _no_cudnn_attention()
    for name in names:
        if name.startswith("pool"):
            import nerkit.batching

            # Pools of N batches instead of POOL_BATCHES: batches mix lengths more (more
            # padding), and the order is more random.
            nerkit.batching.POOL_BATCHES = int(name[4:])
    if "compile" in names:
        import torch

        import nerkit.train as nt

        base_load = nt.load_model
        nt.load_model = lambda name, label_map: torch.compile(base_load(name, label_map), dynamic=True)
    return cfg


def _padded_tokens(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def _no_cudnn_attention() -> None:
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


# ------------------------------------------------------------------ child: nerkit


def _run_nerkit(args, experiments: list[str]) -> dict[str, Any]:
    import nerkit.train as nt
    import nerkit.training_run as ntr
    from nerkit.batching import epoch_batches
    from nerkit.device import resolve_device
    from nerkit.features import prepare_data

    cfg = _apply_experiments(_config(args), experiments)
    prepared = prepare_data(cfg.data, cfg.model, cfg.max_length, cfg.label_all_subwords)
    eval_seconds = []
    base_eval = ntr.evaluate_split

    def timed_eval(*a, **kw):
        # Timing only: the same evaluation nerkit runs.
        _sync()
        t = time.perf_counter()
        out = base_eval(*a, **kw)
        _sync()
        eval_seconds.append(time.perf_counter() - t)
        return out

    ntr.evaluate_split = timed_eval  # the dev evaluations (the loop runs them)
    built = []
    base_load = nt.load_model
    nt.load_model = lambda *a: built.append(base_load(*a)) or built[-1]  # the model trained, to score it below
    history = []
    t0 = time.perf_counter()
    result = nt.train(cfg, prepared=prepared, report=lambda m, save: history.append(m))
    total = time.perf_counter() - t0
    last = history[-1]
    # The final model scored as every Trainer variant's is (_run_trainer): the same call, in
    # fp32 arithmetic. nerkit's own last evaluation ran under its training precision (bf16
    # autocast where the CPU or GPU has bf16), which the Trainer's scoring did not: kept
    # beside it as dev_f1_in_loop.
    dev = base_eval(built[-1], prepared.dev, prepared.label_map, pad_id=prepared.pad_token_id,
                    device=resolve_device(cfg.device))
    lengths = [len(x) for x in prepared.train.input_ids]
    epochs_done = math.ceil(cfg.epochs)
    padded = sum(_padded_tokens(lengths, epoch_batches(lengths, cfg.batch_size, cfg.seed, e, cfg.length_grouping))
                 for e in range(epochs_done))
    train_s = last["train_seconds"]
    return {
        "status": result.status, "steps": last["step"], "real_tokens": last["tokens_seen"],
        "padded_tokens": padded, "train_s": train_s, "eval_s": sum(eval_seconds), "total_s": total,
        "dev_f1": dev["f1"], "entity_pred_ratio": dev["entity_pred_ratio"], "dev_f1_in_loop": last["dev_f1"],
        "f1_by_epoch": [round(m["dev_f1"], 4) for m in history], "cuda_peak_mib": _cuda_peak_mib(),
    }


# ------------------------------------------------------------------ child: Trainer


def _run_trainer(args, grouped: bool, cpu_bf16: bool = False, fp32: bool = False,
                 nocudnn: bool = False) -> dict[str, Any]:
    import datasets
    import torch
    from transformers import DataCollatorForTokenClassification, Trainer, TrainerCallback, TrainingArguments
    from transformers.utils import logging as hf_logging

    from nerkit.alignment import load_tokenizer
    from nerkit.evaluate import evaluate_split
    from nerkit.features import prepare_data
    from nerkit.metrics import evaluation_metrics
    from nerkit.model import load_model, resolve_model
    from nerkit.device import resolve_device
    from nerkit.weights import class_weights

    hf_logging.set_verbosity_error()
    cfg = _config(args)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)  # as nerkit.train does with num_threads
    prepared = prepare_data(cfg.data, cfg.model, cfg.max_length, cfg.label_all_subwords)
    lm = prepared.label_map
    device = resolve_device("auto")
    # Native bf16 only, as nerkit's precision "auto" decides (nerkit.precision): with
    # emulation counted, a T4 or V100 ran the Trainer in slow emulated bf16 against
    # nerkit's fp32.
    bf16 = ((device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)) or cpu_bf16) \
        and not fp32
    if device.type == "cuda" and not bf16:
        # TF32 matmuls, as nerkit's train() allows them on CUDA: fp32 like for like.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if nocudnn:
        _no_cudnn_attention()
    weights = class_weights(prepared.train_counts, "seed", o_weight=0.5, entity_boost=3.0)
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(resolve_model(cfg.model))
    torch.manual_seed(cfg.seed)
    model = load_model(cfg.model, lm)
    split = prepared.train
    train_ds = datasets.Dataset.from_dict({
        "input_ids": [list(x) for x in split.input_ids],
        "attention_mask": [[1] * len(x) for x in split.input_ids],
        "labels": [list(y) for y in split.labels],
    })
    dev_ds = datasets.Dataset.from_dict({
        "input_ids": [list(x) for x in prepared.dev.input_ids],
        "attention_mask": [[1] * len(x) for x in prepared.dev.input_ids],
        "labels": [list(y) for y in prepared.dev.labels],
    })
    counts = {"real": 0, "padded": 0}

    class WeightedTrainer(Trainer):
        """The recipe: weighted CrossEntropyLoss in a compute_loss override."""

        def __init__(self, *a, class_weight: torch.Tensor, **kw):
            super().__init__(*a, **kw)
            self.loss_fct = torch.nn.CrossEntropyLoss(weight=class_weight.to(self.args.device), ignore_index=-100)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            if model.training:
                counts["real"] += int(inputs["attention_mask"].sum())
                counts["padded"] += inputs["attention_mask"].numel()
            outputs = model(**inputs)
            logits = outputs.logits
            loss = self.loss_fct(logits.view(-1, logits.shape[-1]).float(), labels.view(-1))
            return (loss, outputs) if return_outputs else loss

    times = {"train": 0.0, "eval": 0.0, "mark": 0.0}

    class Clock(TrainerCallback):
        # Epoch begin → end is training only; the epoch's evaluation runs right after.
        def on_epoch_begin(self, a, state, control, **kw):
            _sync()
            times["mark"] = time.perf_counter()

        def on_epoch_end(self, a, state, control, **kw):
            _sync()
            now = time.perf_counter()
            times["train"] += now - times["mark"]
            times["mark"] = now

        def on_evaluate(self, a, state, control, **kw):
            times["eval"] += time.perf_counter() - times["mark"]

    def compute_metrics(p):
        logits = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        # Rows come in the eval sampler's order (length-grouped too, with group_by_length),
        # so pair predictions with the Trainer's label_ids; -100 positions are dropped.
        preds = logits.argmax(-1)
        m = evaluation_metrics(p.label_ids.tolist(), preds.tolist(), lm)
        return {"f1": m["f1"], "entity_pred_ratio": m["entity_pred_ratio"]}

    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        targs = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=cfg.batch_size, num_train_epochs=cfg.epochs,
            learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio,
            lr_scheduler_type="linear", max_grad_norm=cfg.max_grad_norm, seed=cfg.seed,
            eval_strategy="epoch", save_strategy="no", logging_strategy="epoch", report_to="none",
            disable_tqdm=True, bf16=bf16, use_cpu=device.type == "cpu",
            train_sampling_strategy="group_by_length" if grouped else "random",
        )
        trainer = WeightedTrainer(
            model=model, args=targs, train_dataset=train_ds, eval_dataset=dev_ds,
            data_collator=DataCollatorForTokenClassification(tokenizer), processing_class=tokenizer,
            compute_metrics=compute_metrics, callbacks=[Clock()],
            class_weight=torch.tensor(weights, dtype=torch.float32),
        )
        out = trainer.train()
        total = time.perf_counter() - t0
        f1_by_epoch = [round(h["eval_f1"], 4) for h in trainer.state.log_history if "eval_f1" in h]
        # The final model scored as nerkit's final model is (_run_nerkit), in fp32 arithmetic
        # whatever precision it trained in.
        dev = evaluate_split(trainer.model, prepared.dev, lm, pad_id=prepared.pad_token_id, device=device)
    return {
        "status": "completed", "steps": out.global_step, "real_tokens": counts["real"],
        "padded_tokens": counts["padded"], "train_s": times["train"], "eval_s": times["eval"], "total_s": total,
        "dev_f1": dev["f1"], "entity_pred_ratio": dev["entity_pred_ratio"], "f1_by_epoch": f1_by_epoch,
        "optimizer": str(targs.optim), "cuda_peak_mib": _cuda_peak_mib(),
    }


# ------------------------------------------------------------------ child: profile


def _profile(args) -> dict[str, Any]:
    """Where a nerkit step's time goes: phase timings of a replica, then torch.profiler on the real loop."""
    import torch

    import nerkit.train as nt
    from nerkit.optim import build_optimizer
    from nerkit.batching import collate, epoch_batches
    from nerkit.device import resolve_device
    from nerkit.features import prepare_data
    from nerkit.losses import token_loss
    from nerkit.precision import autocast_for
    from nerkit.weights import class_weights

    cfg = _config(args)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    prepared = prepare_data(cfg.data, cfg.model, cfg.max_length, cfg.label_all_subwords)
    device = resolve_device("auto")
    autocast = autocast_for(cfg, device)
    split = prepared.train
    lengths = [len(x) for x in split.input_ids]
    batches = epoch_batches(lengths, cfg.batch_size, cfg.seed, 0, True)
    w = torch.tensor(class_weights(prepared.train_counts, "seed", 0.5, 3.0), device=device)
    n, warm = args.profile_steps, 3
    phases_by_variant = {}
    for variant in ("unfused", "fused", "freeze_emb", "fused+freeze_emb"):
        torch.manual_seed(0)
        model = nt.load_model(cfg.model, prepared.label_map).to(device)
        model.train()
        if "freeze_emb" in variant:
            model.get_input_embeddings().weight.requires_grad_(False)
        # Its groups only, from the dense optimizer: these variants profile torch's AdamW.
        groups = build_optimizer(model, cfg.with_overrides(embedding_update="dense"), device).param_groups
        opt = torch.optim.AdamW([{k: v for k, v in g.items() if k in ("params", "weight_decay")} for g in groups],
                                lr=cfg.learning_rate, fused="fused" in variant)
        acc: dict[str, float] = {}
        for step, idx in enumerate(batches[: warm + n]):
            marks = []

            def mark(name):
                _sync()
                marks.append((name, time.perf_counter()))

            mark("start")
            batch = {k: v.to(device) for k, v in collate(split.input_ids, split.labels, idx, prepared.pad_token_id).items()}
            mark("collate")
            with autocast:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            mark("forward")
            loss = token_loss(logits, batch["labels"], w, 0.0)
            mark("loss")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            mark("backward")
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            mark("clip")
            opt.step()
            mark("optimizer")
            if step >= warm:
                for (_, a), (name, b) in zip(marks, marks[1:]):
                    acc[name] = acc.get(name, 0.0) + (b - a) * 1000 / n
        acc["step_total"] = sum(acc.values())
        phases_by_variant[variant] = {k: round(v, 1) for k, v in acc.items()}
        del model, opt

    # torch.profiler over real nerkit.train steps (steps warm+1 .. warm+n), then stop.
    from torch.profiler import ProfilerActivity, profile, schedule

    class _Done(Exception):
        pass

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    prof = profile(activities=activities, schedule=schedule(wait=warm - 1, warmup=1, active=n, repeat=1))

    def on_step(step, total):
        prof.step()
        if step >= warm + n + 1:
            raise _Done

    prof.start()
    try:
        nt.train(cfg.with_overrides(epochs=1), prepared=prepared, on_step=on_step)
    except _Done:
        pass
    prof.stop()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total_self = sum(getattr(e, key) for e in events) or 1.0
    top = [{"op": e.key, "ms_per_step": round(getattr(e, key) / 1000 / n, 2),
            "share": round(getattr(e, key) / total_self, 3), "calls_per_step": round(e.count / n, 1)}
           for e in events[:12]]
    named = {e.key: e for e in prof.key_averages()}
    opt_event = next((e for k, e in named.items() if k.startswith("Optimizer.step#")), None)
    return {"phases_ms": phases_by_variant, "top_ops": top,
            "optimizer_step_ms": round(opt_event.cpu_time_total / 1000 / n, 1) if opt_event else None,
            "steps_profiled": n, "device": str(device)}


# ------------------------------------------------------------------ parent


def _child_argv(args, worker: str, seed: int) -> list[str]:
    return [str(Path(__file__).resolve()), "--worker", worker, "--seed", str(seed), "--epochs", str(args.epochs),
            "--model", args.model, "--lr", str(args.lr), "--batch-size", str(args.batch_size),
            "--max-length", str(args.max_length), "--profile-steps", str(args.profile_steps),
            "--threads", str(args.threads)]


def _summarise(runs: list[dict[str, Any]], epochs: float) -> dict[str, Any]:
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    tps = [r["real_tokens"] / r["train_s"] for r in runs]
    epoch_wall = [(r["train_s"] + r["eval_s"]) / epochs for r in runs]
    f1 = [r["dev_f1"] for r in runs]
    return {
        "runs": len(runs),
        "real_tok_per_s": round(statistics.median(tps), 1),
        "real_tok_per_s_all": [round(x, 1) for x in tps],
        "s_per_step": round(statistics.median(r["train_s"] / r["steps"] for r in runs), 4),
        "epoch_wall_s": round(statistics.median(epoch_wall), 2),
        "epoch_wall_s_all": [round(x, 2) for x in epoch_wall],
        "eval_s_per_epoch": round(med("eval_s") / epochs, 2),
        "total_s": round(med("total_s"), 1),
        "padding_efficiency": round(med("real_tokens") / med("padded_tokens"), 3),
        "peak_rss_mib": med("peak_rss_mib"),
        "cuda_peak_mib": runs[0].get("cuda_peak_mib"),
        "dev_f1": round(statistics.mean(f1), 4),
        "dev_f1_all": [round(x, 4) for x in f1],
        "load_avg_1m": [r["load_avg_1m"] for r in runs],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--model", default="bundled-minilm")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seeds", default="13", help="comma-separated seeds; every variant runs once per seed and repeat")
    p.add_argument("--repeats", type=int, default=1, help="rounds of all variants (interleaved: A B C A B C)")
    p.add_argument("--warmup", action="store_true",
                   help="first run the first variant once, unrecorded (a GPU machine's first process ran "
                        "2.3-2.6x slower on the H200, 9%% slower on an H100: RESULTS.md §1 GPU)")
    p.add_argument("--rotate", action="store_true",
                   help="rotate the variants' order by one place per seed (A B C, B C A, ...), so no variant "
                        "always runs first or right after another")
    p.add_argument("--variants", default=",".join(CORE_VARIANTS))
    p.add_argument("--experiments", default="freeze_emb,fp32",
                   help=f"EXPERIMENT variants of nerkit's loop ('' for none): {', '.join(EXPERIMENTS)}, joined with +")
    p.add_argument("--profile-steps", type=int, default=12, help="0 to skip the profile")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads in every variant (0: torch's default, all cores); see RESULTS.md on "
                        "why 1 on a shared 2-core machine")
    p.add_argument("--experiments-every-seed", action="store_true",
                   help="run the experiments at every seed, not only the first (to compare their dev F1)")
    p.add_argument("--experiment-rounds", type=int, default=1,
                   help="rounds (of --repeats) that include the experiment variants (first seed only)")
    p.add_argument("--out", help="also write the JSON document here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=13, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        if args.worker == "nerkit":
            out = _run_nerkit(args, [])
        elif args.worker.startswith("exp_"):
            out = _run_nerkit(args, args.worker[4:].split("+"))
        elif args.worker in ("trainer", "trainer_grouped", *BF16_VARIANTS, *CUDA_VARIANTS):
            out = _run_trainer(args, grouped=args.worker.startswith("trainer_grouped"),
                               cpu_bf16=args.worker.endswith("_bf16"), fp32=args.worker.endswith("_fp32"),
                               nocudnn=args.worker.endswith("_nocudnn"))
        elif args.worker == "profile":
            out = _profile(args)
        else:
            raise ValueError(f"worker is {args.worker!r}, but must be a variant name or 'profile'")
        bu.write_result(args.result, out)
        return

    variants = [v for v in args.variants.split(",") if v]
    for exp in (e for e in args.experiments.split(",") if e):
        bad = [x for x in exp.split("+") if x not in EXPERIMENTS]
        if bad:
            raise ValueError(f"experiment {exp!r} has unknown part(s) {bad}; use {list(EXPERIMENTS)} joined with +")
        variants.append(f"exp_{exp}")
    seeds = [int(s) for s in args.seeds.split(",")]
    doc: dict[str, Any] = bu.document(
        "trial_speed", {k: v for k, v in vars(args).items() if k not in ("worker", "result", "seed")})
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    if args.warmup:
        res, _ = bu.run_child(_child_argv(args, variants[0], seeds[0]))
        doc["warmup"] = {"variant": variants[0], "seed": seeds[0],
                         "real_tok_per_s": round(res["real_tokens"] / res["train_s"], 1)}
        print(f"[warm-up {variants[0]} seed {seeds[0]}] tok/s {doc['warmup']['real_tok_per_s']:.0f} "
              "(not recorded)", file=sys.stderr, flush=True)
    for rep in range(args.repeats):
        for i, seed in enumerate(seeds):
            # Paired ratios below still pair by (repeat, seed): each variant runs once per pair.
            order = variants[i % len(variants):] + variants[:i % len(variants)] if args.rotate else variants
            for v in order:
                if v.startswith("exp_") and (rep >= args.experiment_rounds
                                             or (seed != seeds[0] and not args.experiments_every_seed)):
                    continue
                load = bu.load_avg()
                res, peak = bu.run_child(_child_argv(args, v, seed))
                res.update(peak_rss_mib=peak, load_avg_1m=load, repeat=rep, seed=seed, position=order.index(v))
                runs[v].append(res)
                print(f"[{v} rep {rep} seed {seed}] load {load} tok/s {res['real_tokens'] / res['train_s']:.0f} "
                      f"F1 {res['dev_f1']:.3f}", file=sys.stderr, flush=True)
    summary = {v: _summarise(r, args.epochs) for v, r in runs.items()}
    ref = summary.get("nerkit")
    for v, s in summary.items():
        if ref:
            s["nerkit_speedup_vs_this"] = round(ref["real_tok_per_s"] / s["real_tok_per_s"], 2)
            s["this_speedup_vs_nerkit"] = round(s["real_tok_per_s"] / ref["real_tok_per_s"], 2)
    # Paired ratios (same repeat and seed ran back to back, under similar load).
    paired = {}
    for other in ("trainer", "trainer_grouped"):
        if "nerkit" in runs and other in runs:
            paired[f"nerkit_over_{other}"] = [
                round((a["real_tokens"] / a["train_s"]) / (b["real_tokens"] / b["train_s"]), 2)
                for a, b in zip(runs["nerkit"], runs[other])]
    doc.update(runs=runs, summary=summary, paired_speedups=paired)
    if args.profile_steps:
        doc["profile"], _ = bu.run_child(_child_argv(args, "profile", seeds[0]))
        doc["profile"]["load_avg_1m"] = bu.load_avg()
    doc["machine"]["load_avg_1m_at_end"] = bu.load_avg()

    rows = [{"variant": v, **s, "dev_f1_all": " ".join(map(str, s["dev_f1_all"]))} for v, s in summary.items()]
    cols = ["variant", "real_tok_per_s", "s_per_step", "epoch_wall_s", "eval_s_per_epoch", "total_s",
            "padding_efficiency", "peak_rss_mib", "dev_f1", "dev_f1_all", "nerkit_speedup_vs_this"]
    tables = [("Per-trial speed (medians over runs)", rows, cols)]
    if "profile" in doc:
        ph = doc["profile"]["phases_ms"]
        names = list(next(iter(ph.values())).keys())
        tables.append(("nerkit step phases, ms per step (timed replica)",
                       [{"variant": k, **v} for k, v in ph.items()], ["variant", *names]))
        tables.append(("torch.profiler top operators (real nerkit loop)", doc["profile"]["top_ops"],
                       ["op", "ms_per_step", "share", "calls_per_step"]))
    bu.emit(doc, tables, args.out)


if __name__ == "__main__":
    main()
