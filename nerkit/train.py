"""The training loop: one importable function for ``nerkit train`` and every search trial.

``train(config, report=...)`` fine-tunes a token-classification model with the
configured class weights and loss, evaluates on dev every epoch (or every N steps)
and calls ``report(metrics, save_checkpoint)`` at each evaluation. The search's
trainable passes a callback that writes a checkpoint and hands both to Ray; the CLI
passes one that prints a metrics line. A run resumes exactly from any checkpoint
written through ``save_checkpoint`` (model, optimizer, scheduler, step, data order
and RNG states).

Statuses: ``completed`` (the epoch budget ran out), ``early_stopped`` (no dev-F1
gain for ``early_stopping_patience`` evaluations), ``diverged`` (a non-finite loss or gradient;
the run stops cleanly and reports finite metrics, never NaN).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerkit import batching
from nerkit.batching import collate, epoch_batches
from nerkit.checkpoint import TrainingState, load_training_checkpoint, save_model_dir, save_training_checkpoint
from nerkit.config import EPOCH_DECIMALS, TrainConfig
from nerkit.device import resolve_device
from nerkit.evaluate import evaluate_split
from nerkit.features import PreparedData, prepare_data
from nerkit.losses import token_loss
from nerkit.precision import compute_precision, precision_context
from nerkit.model import check_max_length, load_model, resolve_model
from nerkit.sparse_embedding import SPARSE_MAX_ROW_SHARE, RowSparseAdamW, clip_grad_norm, row_sparse_embedding
from nerkit.alignment import load_tokenizer
from nerkit.weights import class_weights, entity_o_ratio

logger = logging.getLogger(__name__)

SaveFn = Callable[[str | Path], Path]
ReportFn = Callable[[dict[str, Any], SaveFn], None]
StepFn = Callable[[int, int], None]


@dataclass
class TrainResult:
    status: str                                  # completed | early_stopped | diverged
    best: dict[str, Any] | None                  # metrics of the best dev-F1 evaluation
    last: dict[str, Any] | None                  # metrics of the last evaluation
    history: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, Any] | None = None           # test metrics of the best model, if asked
    output_dir: Path | None = None
    weights: list[float] = field(default_factory=list)
    entity_o_ratio: float = float("nan")
    compute_precision: str = "fp32"              # what ran: bf16 (autocast) or fp32
    # What loading the data read, repaired and skipped (nerkit.bio.LoadReport.to_dict):
    # --on-invalid repair/skip change data, and that is never silent.
    data_report: dict[str, Any] | None = None


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def embedding_update(config: TrainConfig, model, device: torch.device, used_rows: int | None = None) -> str:
    """``sparse`` or ``dense``: how the word-embedding matrix is updated (nerkit.sparse_embedding).

    ``auto`` is sparse on CPU when the training split's distinct tokens (``used_rows``,
    the rows the sparse update will keep active) are few, where the dense update was
    about a fifth of a step; dense on GPUs, where the dense update is cheap and the
    sparse one is not measured. Dense, whatever asked, where the model's embedding
    cannot be updated sparsely.
    """
    emb = row_sparse_embedding(model)
    wanted = config.embedding_update
    if wanted == "auto":
        few = emb is not None and used_rows is not None and used_rows <= SPARSE_MAX_ROW_SHARE * emb.num_embeddings
        wanted = "sparse" if device.type == "cpu" and few else "dense"
    return "sparse" if wanted == "sparse" and emb is not None else "dense"


def _optimizer(model, config: TrainConfig, device: torch.device, used_rows: int | None = None) -> torch.optim.Optimizer:
    if config.freeze_embeddings:
        # The word-embedding matrix is half of a small encoder's parameters (11.7M of
        # MiniLM's 22.7M): frozen, its gradient and AdamW update disappear.
        model.get_input_embeddings().weight.requires_grad_(False)
    # No weight decay on biases and LayerNorm weights (standard BERT fine-tuning).
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused: one kernel over all parameters instead of a Python loop per tensor; the
    # AdamW step fell from 157 ms to 21 ms per MiniLM step on CPU (benchmarks/RESULTS.md).
    if embedding_update(config, model, device, used_rows) == "sparse":
        return RowSparseAdamW(groups, embedding=row_sparse_embedding(model), lr=config.learning_rate, fused=True)
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        # 1) linear warmup  2) linear decay to 0 at the last step
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _check_output_dir(path: Path) -> None:
    """Fail before training, not after it, when the model could not be saved there."""
    # Checked, not created: a run that saves no model leaves no empty directory behind.
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"output_dir {str(path)!r}: {str(existing)!r} is a file; give a directory for the model")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"output_dir {str(path)!r}: {str(existing)!r} is not writable; give a directory you can "
                         "write to")
    if path.is_dir() and any(path.iterdir()) and not (path / "config.json").is_file():
        # A directory holding a model (an earlier run) is replaced; any other is not ours to write into.
        raise ValueError(f"output_dir {str(path)!r} is not empty and holds no model (config.json); give a new or "
                         "empty directory, or an earlier run's model directory to replace")


def train(
    config: TrainConfig,
    *,
    prepared: PreparedData | None = None,
    report: ReportFn | None = None,
    on_step: StepFn | None = None,
    output_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    evaluate_test: bool = False,
) -> TrainResult:
    """Fine-tune per ``config`` (see module doc).

    Args:
        config: The resolved training config.
        prepared: Tokenised data (from :func:`nerkit.features.prepare_data`); built
            from ``config`` when omitted.
        report: Called at each evaluation with the metrics and a function that writes
            a resumable checkpoint into a given directory.
        on_step: Called after each optimizer step with ``(step, total_steps)``.
        output_dir: Where the best model directory is written at the end (optional).
        resume_from: A checkpoint directory written through ``report``'s save function.
        evaluate_test: Score the best model on the test split at the end.
    """
    if output_dir is not None:
        _check_output_dir(Path(output_dir))
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    set_seed(config.seed)
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    precision = compute_precision(config, device)
    autocast = precision_context(precision, device)
    logger.info("training on %s in %s", device, precision)
    if prepared is None:
        prepared = prepare_data(config.data, config.model, config.max_length, config.label_all_subwords)
    elif (prepared.max_length, prepared.label_all_subwords) != (config.max_length, config.label_all_subwords):
        # Data prepared for other settings (a search prepares once, from its base config):
        # training on it would record settings the run did not use.
        raise ValueError(f"the prepared data is for max_length={prepared.max_length}, label_all_subwords="
                         f"{prepared.label_all_subwords}, but the config says max_length={config.max_length}, "
                         f"label_all_subwords={config.label_all_subwords}; prepare the data with the config's "
                         "settings (nerkit.features.prepare_data)")
    expected = config.data.fingerprint
    if expected is not None and expected != prepared.fingerprint:
        raise ValueError(f"the data ({_data_source(config.data)}) is not the data this config was run on: its "
                         f"fingerprint is {prepared.fingerprint[:12]}…, the config's data.fingerprint "
                         f"{expected[:12]}…. Fix: restore that data, or remove data.fingerprint from the config "
                         "(or give the data options again) to train on the data as it is now")
    # Every config this run saves (checkpoints, the model directory) names its data.
    config = config.with_overrides(data=replace(config.data, fingerprint=prepared.fingerprint))
    lm = prepared.label_map
    tokenizer = load_tokenizer(resolve_model(config.model))
    if not any(prepared.train_counts[1:]):
        # All 'O': no entity to learn, and every entity:O ratio would be NaN.
        raise ValueError("the train split has no entity tokens (every counted tag is 'O'), so there is nothing "
                         "to learn; check the data with `nerkit doctor`")

    weights = class_weights(
        prepared.train_counts, config.weight_strategy, config.o_weight, config.entity_boost,
        config.smoothing, config.beta, config.max_weight, config.entity_o_ratio,
    )
    ratio = entity_o_ratio(weights, prepared.train_counts)
    weight_t = torch.tensor(weights, dtype=torch.float32, device=device)
    gamma = config.focal_gamma

    model = load_model(config.model, lm).to(device)
    check_max_length(config.max_length, tokenizer, model.config)  # positions the tokenizer did not state
    model.train()
    train_split = prepared.train
    lengths = [len(x) for x in train_split.input_ids]
    if not lengths:
        raise ValueError("the training split is empty; give training records")
    used_rows = len({t for ids in train_split.input_ids for t in ids} | {prepared.pad_token_id})
    optimizer = _optimizer(model, config, device, used_rows)
    per_epoch = math.ceil(len(lengths) / config.batch_size)
    total_steps = max(1, math.ceil(config.epochs * per_epoch))
    warmup = int(config.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(warmup, total_steps))

    state = TrainingState(pool_batches=batching.POOL_BATCHES)
    best_state: dict[str, torch.Tensor] | None = None
    if resume_from is not None:
        state = load_training_checkpoint(resume_from, model=model, optimizer=optimizer, scheduler=scheduler)
        logger.info("resumed from %s at step %d", resume_from, state.step)
        if output_dir is not None or evaluate_test:
            # A training checkpoint holds its own weights, not the best evaluation's: the
            # best model can be saved (or tested) only if it is this checkpoint or a later one.
            if state.history and state.best_step != state.step:
                raise ValueError(
                    f"{resume_from} is at step {state.step}, but the run's best evaluation was at step "
                    f"{state.best_step}, whose weights this checkpoint does not hold, so the best model could "
                    "not be saved or tested; resume from that step's checkpoint, or resume without "
                    "output_dir/evaluate_test")
            if state.history:
                best_state = _cpu_copy(model)
    config_dict = config.to_dict()
    status = "completed"
    window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()

    def materialize() -> None:
        # The row-sparse optimizer owes untouched embedding rows their weight decay
        # until something reads them (nerkit.sparse_embedding).
        if isinstance(optimizer, RowSparseAdamW):
            optimizer.materialize()

    def save_checkpoint(path: str | Path, metrics: dict | None = None) -> Path:
        return save_training_checkpoint(
            path, model=model, tokenizer=tokenizer, optimizer=optimizer, scheduler=scheduler,
            state=state, config=config_dict, metrics=metrics,
        )

    def run_eval() -> dict[str, Any]:
        nonlocal window_loss, window_steps, window_tokens
        elapsed = time.perf_counter() - window_start
        state.train_seconds += elapsed
        materialize()  # the weights an evaluation reads are also the ones best_state copies
        dev = evaluate_split(
            model, prepared.dev, lm, pad_id=prepared.pad_token_id, device=device,
            weights=weight_t, gamma=gamma, collapse_eps=config.collapse_eps, autocast=autocast,
        )
        metrics = {
            "eval_index": len(state.history),  # 0-based; survives resume (history is checkpointed)
            "step": state.step,
            "epoch": round(state.step / per_epoch, EPOCH_DECIMALS),
            "tokens_seen": state.tokens_seen,
            "train_loss": window_loss / max(1, window_steps),
            "dev_loss": dev["loss"],
            "dev_f1": dev["f1"],
            "dev_precision": dev["precision"],
            "dev_recall": dev["recall"],
            "dev_macro_f1": dev["macro_f1"],
            "dev_token_accuracy": dev["token_accuracy"],
            "entity_pred_ratio": dev["entity_pred_ratio"],
            "gold_entity_ratio": dev["gold_entity_ratio"],
            "gold_entity_prob": dev["gold_entity_prob"],
            "collapsed": bool(dev["collapsed"]),
            "per_type": dev["per_type"],
            "tokens_per_s": window_tokens / elapsed if elapsed > 0 else 0.0,
            "train_seconds": state.train_seconds,
            "entity_o_ratio": ratio,
            "compute_precision": precision,
        }
        window_loss, window_steps, window_tokens = 0.0, 0, 0
        return metrics

    def after_eval(metrics: dict[str, Any]) -> bool:
        """Book-keep one evaluation and report it; return True when early stopping fires."""
        nonlocal best_state, window_start
        improved = metrics["dev_f1"] > state.best_f1
        if improved:
            state.best_f1, state.best_step, state.evals_since_best = metrics["dev_f1"], state.step, 0
            if output_dir is not None or evaluate_test:
                best_state = _cpu_copy(model)
        else:
            state.evals_since_best += 1
        patience = config.early_stopping_patience
        early_stop = patience is not None and state.evals_since_best >= patience
        # `final` tells a caller (the search's stop-reason logic) that the run ends
        # here on its own: budget spent or early stopping.
        metrics["final"] = early_stop or state.step >= total_steps
        state.history.append(dict(metrics))
        if report is not None:
            report(metrics, lambda path: save_checkpoint(path, metrics))
        # The next throughput window starts after evaluation and checkpointing.
        window_start = time.perf_counter()
        return early_stop

    last_metrics: dict[str, Any] | None = state.history[-1] if state.history else None
    stop = False
    while state.step < total_steps and not stop:
        batches = epoch_batches(lengths, config.batch_size, config.seed, state.epoch, config.length_grouping,
                                state.pool_batches)
        while state.batch_in_epoch < len(batches) and state.step < total_steps:
            idx = batches[state.batch_in_epoch]
            batch = collate(train_split.input_ids, train_split.labels, idx, prepared.pad_token_id)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with autocast:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = token_loss(logits, batch["labels"], weight_t, gamma)
            if not torch.isfinite(loss):
                status, stop = "diverged", True
                logger.warning("non-finite loss at step %d: run stopped as diverged", state.step)
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = clip_grad_norm(model.parameters(), config.max_grad_norm)
            if not torch.isfinite(grad_norm):
                # A finite loss can still have a non-finite gradient (an inf derivative times
                # 0); stepping would put NaN in every weight, and the run would end one step
                # later with its last update already applied.
                status, stop = "diverged", True
                logger.warning("non-finite gradient at step %d: run stopped as diverged", state.step)
                break
            optimizer.step()
            scheduler.step()
            state.step += 1
            state.batch_in_epoch += 1
            ntok = int(batch["attention_mask"].sum())
            state.tokens_seen += ntok
            window_tokens += ntok
            window_loss += float(loss.detach())
            window_steps += 1
            if on_step is not None:
                on_step(state.step, total_steps)
            end_of_epoch = state.batch_in_epoch == len(batches)
            if end_of_epoch:
                state.epoch += 1
                state.batch_in_epoch = 0
            due = (
                state.step % config.eval_every_steps == 0
                if config.eval_every_steps
                else end_of_epoch
            )
            if due or state.step == total_steps:
                metrics = run_eval()
                if not all(math.isfinite(metrics[k]) for k in ("train_loss", "dev_loss")):
                    # A finite train loss can still leave weights that give a NaN/inf
                    # dev loss: that is divergence too, and NaN is never reported.
                    status, stop = "diverged", True
                    logger.warning("non-finite evaluation loss at step %d: run stopped as diverged", state.step)
                    break
                last_metrics = metrics
                if after_eval(last_metrics):
                    status, stop = "early_stopped", True
                    break
            if end_of_epoch:
                break

    materialize()
    result = TrainResult(
        status=status,
        best=_best(state.history),
        last=last_metrics,
        history=list(state.history),
        weights=weights,
        entity_o_ratio=ratio,
        compute_precision=precision,
        data_report=prepared.dataset.report.to_dict(),
    )
    if best_state is not None:
        model.load_state_dict(best_state)
    if evaluate_test and prepared.test is not None and state.history:
        result.test = evaluate_split(
            model, prepared.test, lm, pad_id=prepared.pad_token_id, device=device,
            weights=weight_t, gamma=gamma, collapse_eps=config.collapse_eps, autocast=autocast,
        )
    if output_dir is not None and state.history:
        # No evaluation (a run that diverged at once) means no model chosen: nothing is saved.
        summary = {"status": status, "best": result.best, "last": _drop_nested(last_metrics),
                   "test": result.test, "class_weights": dict(zip(lm.labels, weights)),
                   "entity_o_ratio": ratio, "fingerprint": prepared.fingerprint,
                   "data_report": result.data_report,
                   # Every evaluation, to compare with a trial's history row by row.
                   "history": [_drop_nested(m) for m in state.history]}
        result.output_dir = save_model_dir(output_dir, model, tokenizer, config_dict, summary)
    return result


def _data_source(data) -> str:
    given = [f"{k} {getattr(data, k)}" for k in ("path", "train", "dev", "test") if getattr(data, k)]
    return ", ".join(given) or "the bundled corpus"


def _cpu_copy(model) -> dict[str, torch.Tensor]:
    """The model's weights copied to the CPU (the best evaluation's, kept for the end)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _best(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(history, key=lambda m: m["dev_f1"]) if history else None


def _drop_nested(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if metrics is None else {k: v for k, v in metrics.items() if k != "per_type"}
