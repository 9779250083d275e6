"""Training: one importable function for ``nerkit train`` and every search trial.

It sets a run up (data, class weights, model, optimizer, a resumed state), hands it to
the loop (nerkit.training_run), and finishes it (the best model tested and saved).

``train(config, report=...)`` fine-tunes a token-classification model with the
configured class weights and loss, evaluates on dev ``evals_per_epoch`` times per
epoch, evenly spaced (or every ``eval_every_steps`` steps), and calls
``report(metrics, save_checkpoint)`` at each evaluation. The search's trainable
passes a callback that writes a checkpoint and hands both to Ray; the CLI passes one
that prints a metrics line. A run resumes exactly from any checkpoint written
through ``save_checkpoint`` (model, optimizer, scheduler, step, data order and RNG
states).

Statuses: ``completed`` (the epoch budget ran out), ``early_stopped`` (no dev-F1
gain for ``early_stopping_patience`` evaluations), ``diverged`` (a non-finite loss or gradient;
the run stops cleanly and reports finite metrics, never NaN).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerkit import batching
from nerkit.alignment import load_tokenizer
from nerkit.checkpoint import (CONFIG_FILE, TrainingState, foreign_entries, is_model_dir_of_nerkit,
                               load_training_checkpoint, replace_model_dir)
from nerkit.config import TrainConfig
from nerkit.device import resolve_device
from nerkit.evaluate import evaluate_split
from nerkit.features import PreparedData, prepare_data
from nerkit.model import check_max_length, load_model, resolve_model
from nerkit.optim import build_optimizer, build_scheduler, embedding_update
from nerkit.precision import compute_precision, precision_context
from nerkit.training_run import ReportFn, RunParts, SaveFn, StepFn, TrainingRun, cpu_copy, step_budget
from nerkit.weights import config_weights, entity_o_ratio

logger = logging.getLogger(__name__)

# embedding_update: importable from here as before the loop moved (nerkit.optim has it now).
__all__ = ["ReportFn", "SaveFn", "StepFn", "TrainResult", "embedding_update", "set_seed", "train"]


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


def _check_output_dir(path: Path) -> None:
    """Fail before training, not after it, when the model could not be saved there."""
    # Checked, not created: a run that saves no model leaves no empty directory behind.
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"output_dir {str(path)!r}: {str(existing)!r} is a file; give a directory for the model")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"output_dir {str(path)!r}: {str(existing)!r} is not writable; give a directory you can "
                         "write to")
    if path.is_dir() and any(path.iterdir()) and not is_model_dir_of_nerkit(path):
        # An earlier run's model directory is replaced whole; any other is not ours to
        # empty (a project folder's config.json once passed for a model's, and a note
        # left beside a model was deleted with it).
        foreign = foreign_entries(path)
        why = (f"it holds {', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}, which a model save does not "
               "write" if foreign else f"it has no {CONFIG_FILE} beside a config.json")
        raise ValueError(f"output_dir {str(path)!r} is not empty and is not a model directory nerkit wrote ({why}); "
                         "give a new or empty directory, or an earlier run's model directory to replace")


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
    # TF32 matmuls on CUDA for this run only: promote --confirm-seeds trains and then
    # scores the published copy in one process, and that score must not depend on it.
    with _tf32(device.type == "cuda"):
        precision = compute_precision(config, device)
        logger.info("training on %s in %s", device, precision)
        prepared = _checked_data(config, prepared)
        # Every config this run saves (checkpoints, the model directory) names its data.
        config = config.with_overrides(data=replace(config.data, fingerprint=prepared.fingerprint))
        tokenizer = load_tokenizer(resolve_model(config.model))
        if not any(prepared.train_counts[1:]):
            # All 'O': no entity to learn, and every entity:O ratio would be NaN.
            raise ValueError("the train split has no entity tokens (every counted tag is 'O'), so there is nothing "
                             "to learn; check the data with `nerkit doctor`")
        weights = config_weights(config, prepared.train_counts)
        model = load_model(config.model, prepared.label_map).to(device)
        check_max_length(config.max_length, tokenizer, model.config)  # positions the tokenizer did not state
        model.train()
        train_ids = prepared.train.input_ids
        if not train_ids:
            raise ValueError("the training split is empty; give training records")
        used_rows = len({t for ids in train_ids for t in ids} | {prepared.pad_token_id})
        optimizer = build_optimizer(model, config, device, used_rows)
        _, total_steps = step_budget(len(train_ids), config.batch_size, config.epochs)
        scheduler = build_scheduler(optimizer, int(config.warmup_ratio * total_steps), total_steps)
        parts = RunParts(
            config=config, prepared=prepared, model=model, tokenizer=tokenizer, optimizer=optimizer,
            scheduler=scheduler, device=device, autocast=precision_context(precision, device), precision=precision,
            weights=torch.tensor(weights, dtype=torch.float32, device=device),
            entity_o_ratio=entity_o_ratio(weights, prepared.train_counts),
        )
        keep_best = output_dir is not None or evaluate_test
        state, best_state = TrainingState(pool_batches=batching.POOL_BATCHES), None
        if resume_from is not None:
            state, best_state = _resume(parts, resume_from, keep_best)
        run = TrainingRun(parts, state, keep_best=keep_best, best_state=best_state, report=report, on_step=on_step)
        status = run.run()
        run.materialize()
        return _finish(run, status, weights, output_dir, evaluate_test)


@contextlib.contextmanager
def _tf32(on: bool):
    """Allow TF32 matmuls (CUDA) inside, and put the process's settings back after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if on:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _checked_data(config: TrainConfig, prepared: PreparedData | None) -> PreparedData:
    """The run's data: ``prepared`` when it fits ``config``, else prepared from it."""
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
    return prepared


def _resume(parts: RunParts, resume_from: str | Path,
            keep_best: bool) -> tuple[TrainingState, dict[str, torch.Tensor] | None]:
    """The state loaded from ``resume_from`` into ``parts``, and the best weights if they are its own."""
    state = load_training_checkpoint(resume_from, model=parts.model, optimizer=parts.optimizer,
                                     scheduler=parts.scheduler)
    logger.info("resumed from %s at step %d", resume_from, state.step)
    if not keep_best or not state.history:
        return state, None
    # A training checkpoint holds its own weights, not the best evaluation's: the best
    # model can be saved (or tested) only if it is this checkpoint or a later one.
    if state.best_step != state.step:
        raise ValueError(
            f"{resume_from} is at step {state.step}, but the run's best evaluation was at step "
            f"{state.best_step}, whose weights this checkpoint does not hold, so the best model could "
            "not be saved or tested; resume from that step's checkpoint, or resume without "
            "output_dir/evaluate_test")
    return state, cpu_copy(parts.model)


def _finish(run: TrainingRun, status: str, weights: list[float], output_dir: str | Path | None,
            evaluate_test: bool) -> TrainResult:
    """The run's result; the best model tested and saved when asked."""
    parts, history = run.parts, run.state.history
    prepared, lm = parts.prepared, parts.prepared.label_map
    result = TrainResult(
        status=status,
        best=_best(history),
        last=run.last_metrics,
        history=list(history),
        weights=weights,
        entity_o_ratio=parts.entity_o_ratio,
        compute_precision=parts.precision,
        data_report=prepared.dataset.report.to_dict(),
    )
    if run.best_state is not None:
        parts.model.load_state_dict(run.best_state)
    if evaluate_test and prepared.test is not None and history:
        result.test = evaluate_split(
            parts.model, prepared.test, lm, pad_id=prepared.pad_token_id, device=parts.device,
            weights=parts.weights, gamma=run.config.focal_gamma, collapse_eps=run.config.collapse_eps,
            autocast=parts.autocast,
        )
    if output_dir is not None and history:
        # No evaluation (a run that diverged at once) means no model chosen: nothing is saved.
        summary = {"status": status, "best": result.best, "last": _drop_nested(run.last_metrics),
                   "test": result.test, **run.model_record,  # class weights and package versions
                   "entity_o_ratio": parts.entity_o_ratio, "fingerprint": prepared.fingerprint,
                   "data_report": result.data_report,
                   # Every evaluation, to compare with a trial's history row by row.
                   "history": [_drop_nested(m) for m in history]}
        result.output_dir = replace_model_dir(output_dir, parts.model, parts.tokenizer, run.config_dict, summary)
    return result


def _data_source(data) -> str:
    given = [f"{k} {getattr(data, k)}" for k in ("path", "train", "dev", "test") if getattr(data, k)]
    return ", ".join(given) or "the bundled corpus"


def _best(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(history, key=lambda m: m["dev_f1"]) if history else None


def _drop_nested(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if metrics is None else {k: v for k, v in metrics.items() if k != "per_type"}
