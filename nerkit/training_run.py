"""One training run from its first step to its end: steps, evaluations, checkpoints.

:func:`nerkit.train.train` sets a run up (data, weights, model, optimizer, a resumed
state) and hands it to :class:`TrainingRun`, whose ``run()`` trains until the step
budget is spent, early stopping fires or the run diverges. Every evaluation is
reported with a function that writes a checkpoint the run can resume from exactly.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nerkit.batching import collate, epoch_batches
from nerkit.checkpoint import TrainingState, save_training_checkpoint
from nerkit.config import EPOCH_DECIMALS, TrainConfig
from nerkit.evaluate import evaluate_split
from nerkit.features import PreparedData
from nerkit.losses import token_loss
from nerkit.sparse_embedding import RowSparseAdamW, clip_grad_norm
from nerkit.versions import package_versions

logger = logging.getLogger(__name__)

SaveFn = Callable[[str | Path], Path]
ReportFn = Callable[[dict[str, Any], SaveFn], None]
StepFn = Callable[[int, int], None]


def step_budget(n_records: int, batch_size: int, epochs: float) -> tuple[int, int]:
    """``(steps per epoch, total steps)``: a fractional epoch budget ends mid-epoch."""
    per_epoch = math.ceil(n_records / batch_size)
    return per_epoch, max(1, math.ceil(epochs * per_epoch))


@dataclass
class _Window:
    """Training since the last evaluation: the train loss and tokens/s it reports."""

    start: float
    loss: float = 0.0
    steps: int = 0
    tokens: int = 0

    def add(self, tokens: int, loss: float) -> None:
        self.tokens += tokens
        self.loss += loss
        self.steps += 1


@dataclass
class RunParts:
    """What :func:`nerkit.train.train` built for a run."""

    config: TrainConfig
    prepared: PreparedData
    model: torch.nn.Module
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    autocast: AbstractContextManager
    precision: str                    # what runs: bf16 (autocast) or fp32
    weights: torch.Tensor             # class weights on the device
    entity_o_ratio: float


class TrainingRun:
    """The loop over one run's steps (see module doc).

    ``state`` (resumed or fresh) is updated in place; ``best_state`` holds a CPU copy
    of the best evaluation's weights when ``keep_best`` (the caller saves or tests
    the best model), and ``last_metrics`` the last evaluation's metrics.
    """

    def __init__(self, parts: RunParts, state: TrainingState, *, keep_best: bool,
                 best_state: dict[str, torch.Tensor] | None = None,
                 report: ReportFn | None = None, on_step: StepFn | None = None):
        self.parts, self.state = parts, state
        self.config = parts.config
        self.config_dict = parts.config.to_dict()
        self.keep_best, self.best_state = keep_best, best_state
        self.report, self.on_step = report, on_step
        self.lengths = [len(x) for x in parts.prepared.train.input_ids]
        self.per_epoch, self.total_steps = step_budget(len(self.lengths), self.config.batch_size, self.config.epochs)
        self.last_metrics: dict[str, Any] | None = state.history[-1] if state.history else None
        self._window = _Window(start=time.perf_counter())
        # What trained the model, written beside each checkpoint's metrics (not reported):
        # a model published from it records these, not what the publishing machine has.
        self.model_record = {
            "class_weights": dict(zip(parts.prepared.label_map.labels, parts.weights.tolist())),
            "versions": package_versions(),
        }

    def run(self) -> str:
        """Train to the end; return the status: ``completed``, ``early_stopped`` or ``diverged``."""
        if self._stopped_early():
            # Resumed from the checkpoint of the evaluation that stopped it (a Ray retry after a
            # failure past a trial's final report): the run had ended there, and training on
            # would report evaluations, and perhaps a best model, the run never had.
            return "early_stopped"
        while self.state.step < self.total_steps:
            status = self._run_epoch()
            if status is not None:
                return status
        return "completed"

    def _stopped_early(self) -> bool:
        patience = self.config.early_stopping_patience
        return patience is not None and bool(self.state.history) and self.state.evals_since_best >= patience

    def materialize(self) -> None:
        """Bring the weights up to date before anything reads them."""
        # The row-sparse optimizer owes untouched embedding rows their weight decay
        # until something reads them (nerkit.sparse_embedding).
        if isinstance(self.parts.optimizer, RowSparseAdamW):
            self.parts.optimizer.materialize()

    def save_checkpoint(self, path: str | Path, metrics: dict | None = None) -> Path:
        """Write a checkpoint this run can resume from exactly into ``path``."""
        p = self.parts
        return save_training_checkpoint(
            path, model=p.model, tokenizer=p.tokenizer, optimizer=p.optimizer, scheduler=p.scheduler,
            state=self.state, config=self.config_dict,
            metrics=None if metrics is None else {**metrics, **self.model_record},
        )

    def _run_epoch(self) -> str | None:
        """The rest of the current epoch; the status when the run ends in it, else None."""
        s = self.state
        batches = epoch_batches(self.lengths, self.config.batch_size, self.config.seed, s.epoch,
                                self.config.length_grouping, s.pool_batches)
        while s.batch_in_epoch < len(batches) and s.step < self.total_steps:
            batch = self._batch(batches[s.batch_in_epoch])
            loss = self._step(batch)
            if loss is None:
                return "diverged"
            end_of_epoch = self._count(batch, loss, len(batches))
            if self._eval_due(end_of_epoch, len(batches)):
                status = self._evaluate_and_report()
                if status is not None:
                    return status
            if end_of_epoch:
                break
        return None

    def _batch(self, idx: list[int]) -> dict[str, torch.Tensor]:
        split = self.parts.prepared.train
        batch = collate(split.input_ids, split.labels, idx, self.parts.prepared.pad_token_id)
        return {k: v.to(self.parts.device, non_blocking=True) for k, v in batch.items()}

    def _step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """One optimizer step on ``batch``; its loss, or None when the loss or gradient is not finite."""
        p = self.parts
        with p.autocast:
            logits = p.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = token_loss(logits, batch["labels"], p.weights, self.config.focal_gamma)
        if not torch.isfinite(loss):
            logger.warning("non-finite loss at step %d: run stopped as diverged", self.state.step)
            return None
        p.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_grad_norm(p.model.parameters(), self.config.max_grad_norm)
        if not torch.isfinite(grad_norm):
            # A finite loss can still have a non-finite gradient (an inf derivative times
            # 0); stepping would put NaN in every weight, and the run would end one step
            # later with its last update already applied.
            logger.warning("non-finite gradient at step %d: run stopped as diverged", self.state.step)
            return None
        p.optimizer.step()
        p.scheduler.step()
        return loss

    def _count(self, batch: dict[str, torch.Tensor], loss: torch.Tensor, n_batches: int) -> bool:
        """Book-keep a step taken; True when it ended the epoch."""
        s = self.state
        s.step += 1
        s.batch_in_epoch += 1
        ntok = int(batch["attention_mask"].sum())
        s.tokens_seen += ntok
        self._window.add(ntok, float(loss.detach()))
        if self.on_step is not None:
            self.on_step(s.step, self.total_steps)
        end_of_epoch = s.batch_in_epoch == n_batches
        if end_of_epoch:
            s.epoch += 1
            s.batch_in_epoch = 0
        return end_of_epoch

    def _eval_due(self, end_of_epoch: bool, n_batches: int) -> bool:
        every, k = self.config.eval_every_steps, self.config.evals_per_epoch
        if every:
            due = self.state.step % every == 0
        else:
            # The j-th of k evaluations comes at the first batch b with b/n >= j/k, so the
            # epoch it reports is at least j/k (an ASHA rung there is met, never early).
            b = self.state.batch_in_epoch
            due = end_of_epoch or (b * k) // n_batches > ((b - 1) * k) // n_batches
        return due or self.state.step == self.total_steps

    def _evaluate_and_report(self) -> str | None:
        """Evaluate, book-keep and report; the status when the run ends here, else None."""
        metrics = self.evaluate()
        if not all(math.isfinite(metrics[k]) for k in ("train_loss", "dev_loss")):
            # A finite train loss can still leave weights that give a NaN/inf dev loss:
            # that is divergence too, and NaN is never reported.
            logger.warning("non-finite evaluation loss at step %d: run stopped as diverged", self.state.step)
            return "diverged"
        self.last_metrics = metrics
        return "early_stopped" if self._after_eval(metrics) else None

    def evaluate(self) -> dict[str, Any]:
        """Score the model on dev; the metrics an evaluation reports (the window's training included)."""
        p, s, w = self.parts, self.state, self._window
        elapsed = time.perf_counter() - w.start
        s.train_seconds += elapsed
        self.materialize()  # the weights an evaluation reads are also the ones best_state copies
        dev = evaluate_split(
            p.model, p.prepared.dev, p.prepared.label_map, pad_id=p.prepared.pad_token_id, device=p.device,
            weights=p.weights, gamma=self.config.focal_gamma, collapse_eps=self.config.collapse_eps,
            autocast=p.autocast,
        )
        metrics = {
            "eval_index": len(s.history),  # 0-based; survives resume (history is checkpointed)
            "step": s.step,
            "epoch": round(s.step / self.per_epoch, EPOCH_DECIMALS),
            "tokens_seen": s.tokens_seen,
            "train_loss": w.loss / max(1, w.steps),
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
            "tokens_per_s": w.tokens / elapsed if elapsed > 0 else 0.0,
            "train_seconds": s.train_seconds,
            "entity_o_ratio": p.entity_o_ratio,
            "compute_precision": p.precision,
        }
        w.loss, w.steps, w.tokens = 0.0, 0, 0
        return metrics

    def _after_eval(self, metrics: dict[str, Any]) -> bool:
        """Book-keep one evaluation and report it; True when early stopping fires."""
        s = self.state
        if metrics["dev_f1"] > s.best_f1:
            s.best_f1, s.best_step, s.evals_since_best = metrics["dev_f1"], s.step, 0
            if self.keep_best:
                self.best_state = cpu_copy(self.parts.model)
        else:
            s.evals_since_best += 1
        patience = self.config.early_stopping_patience
        early_stop = patience is not None and s.evals_since_best >= patience
        # `final` tells a caller (the search's stop-reason logic) that the run ends
        # here on its own: budget spent or early stopping.
        metrics["final"] = early_stop or s.step >= self.total_steps
        s.history.append(dict(metrics))
        if self.report is not None:
            self.report(metrics, functools.partial(self.save_checkpoint, metrics=metrics))
        # The next throughput window starts after evaluation and checkpointing.
        self._window.start = time.perf_counter()
        return early_stop


def cpu_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights copied to the CPU (the best evaluation's, kept for the end)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
