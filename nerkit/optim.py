"""The optimizer and learning-rate schedule of a training run.

AdamW with decoupled weight decay (none on biases and LayerNorm weights), fused into
one kernel over all parameters, and on CPU a row-sparse update of the word-embedding
matrix (nerkit.sparse_embedding); a linear warmup, then a linear decay to zero.
"""

from __future__ import annotations

import functools

import torch

from nerkit.config import TrainConfig
from nerkit.sparse_embedding import SPARSE_MAX_ROW_SHARE, RowSparseAdamW, row_sparse_embedding


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


def build_optimizer(model, config: TrainConfig, device: torch.device,
                    used_rows: int | None = None) -> torch.optim.Optimizer:
    """AdamW over ``model``'s trainable parameters, as ``config`` sets it.

    ``used_rows``: how many distinct token ids the training split holds (see
    :func:`embedding_update`).
    """
    if config.freeze_embeddings:
        # The word-embedding matrix is half of a small encoder's parameters (11.7M of
        # MiniLM's 22.7M): frozen, its gradient and AdamW update disappear.
        model.get_input_embeddings().weight.requires_grad_(False)
    # No weight decay on biases and LayerNorm weights (standard BERT fine-tuning).
    decay, no_decay = [], []
    for p in model.parameters():
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


def lr_factor(step: int, warmup: int, total: int) -> float:
    """The learning rate at optimizer step ``step`` (0-based), as a share of the configured one."""
    # 1) linear warmup over `warmup` steps  2) linear decay to 0 at step `total`
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def build_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`lr_factor`'s schedule over ``total`` steps, ``warmup`` of them warming up."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, warmup=warmup, total=total))
