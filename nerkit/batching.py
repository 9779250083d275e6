"""Length-grouped batches with dynamic padding.

Records are shuffled per epoch, grouped into pools of ``batch_size * POOL_BATCHES``,
sorted by length inside each pool and cut into batches, and the batch order is
shuffled again. Batches then hold records of similar length, so padding (wasted
compute on every token of every layer) stays small, while the pools keep the order
random enough for SGD. The order is a pure function of ``(seed, epoch)``, which is
what lets an interrupted run resume mid-epoch exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

IGNORE = -100
#: Batches per pool. Pools of 50 (Hugging Face's group_by_length uses 50 too) sorted the
#: bundled corpus's whole epoch by length, and cost dev F1: at 6 epochs, 5 seeds, pools of
#: 8 scored 0.774 against 0.736 (higher at every seed) at the same tokens/s, where the
#: padding still wasted only 10% (benchmarks/RESULTS.md §1, update 6).
POOL_BATCHES = 8


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, group_by_length: bool = True,
    pool_batches: int | None = None,
) -> list[list[int]]:
    """Index batches for one epoch (deterministic in ``seed``, ``epoch`` and the pool
    size: ``pool_batches``, by default :data:`POOL_BATCHES`)."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    pool = batch_size * (pool_batches or POOL_BATCHES)
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches for evaluation: sorted by length (order does not matter, padding does)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(
    input_ids: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]] | None,
    indices: Sequence[int],
    pad_id: int,
) -> dict[str, torch.Tensor]:
    """Pad the chosen records to the longest among them."""
    width = max(len(input_ids[i]) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    lab = torch.full((len(indices), width), IGNORE, dtype=torch.long)
    for row, i in enumerate(indices):
        n = len(input_ids[i])
        ids[row, :n] = torch.tensor(input_ids[i], dtype=torch.long)
        mask[row, :n] = 1
        if labels is not None:
            lab[row, :n] = torch.tensor(labels[i], dtype=torch.long)
    batch = {"input_ids": ids, "attention_mask": mask}
    if labels is not None:
        batch["labels"] = lab
    return batch
