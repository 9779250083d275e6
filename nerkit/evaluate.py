"""Run a model over an aligned split and score it."""

from __future__ import annotations

import contextlib

import torch

from nerkit.alignment import AlignedSplit
from nerkit.batching import collate, eval_batches
from nerkit.labels import LabelMap
from nerkit.losses import token_loss
from nerkit.metrics import evaluation_metrics


@torch.no_grad()
def predict_split(
    model, split: AlignedSplit, *, pad_id: int, device: torch.device, batch_size: int = 64,
    weights: torch.Tensor | None = None, gamma: float = 0.0, autocast: contextlib.AbstractContextManager | None = None,
) -> tuple[list[list[int]], float]:
    """Argmax label ids per record (aligned with ``split.labels``) and the mean batch loss."""
    was_training = model.training
    model.eval()
    preds: list[list[int] | None] = [None] * len(split.input_ids)
    losses = []
    lengths = [len(x) for x in split.input_ids]
    for idx in eval_batches(lengths, batch_size):
        batch = collate(split.input_ids, split.labels, idx, pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast or contextlib.nullcontext():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        losses.append(float(token_loss(logits, batch["labels"], weights, gamma)))
        best = logits.argmax(-1).cpu().tolist()
        for row, i in enumerate(idx):
            preds[i] = best[row][: lengths[i]]
    model.train(was_training)
    return preds, (sum(losses) / len(losses) if losses else 0.0)  # type: ignore[return-value]


def evaluate_split(
    model, split: AlignedSplit, label_map: LabelMap, *, pad_id: int, device: torch.device,
    batch_size: int = 64, weights: torch.Tensor | None = None, gamma: float = 0.0,
    collapse_eps: float = 0.005, autocast=None,
) -> dict:
    """Metrics of ``model`` on ``split`` (see nerkit.metrics.evaluation_metrics) plus ``loss``."""
    preds, loss = predict_split(
        model, split, pad_id=pad_id, device=device, batch_size=batch_size,
        weights=weights, gamma=gamma, autocast=autocast,
    )
    out = evaluation_metrics(split.labels, preds, label_map, collapse_eps)
    out["loss"] = loss
    return out
