"""Confirm a search's winners with fresh seeds before promoting one.

The best trial of a search is the maximum of many noisy scores, so its dev F1 is
optimistic (the winner's curse). Re-training the top configurations with seeds the
search never used and ranking them by *mean* dev F1 over those runs removes that
selection bias; the original trial's own score is left out of the mean on purpose.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from nerkit.config import TrainConfig
from nerkit.train import train

logger = logging.getLogger(__name__)


@dataclass
class SeedRun:
    trial_id: str
    seed: int
    dev_f1: float
    best: dict[str, Any]        # metrics of the run's best dev evaluation
    model_dir: Path | None      # the run's best model (a model directory); None: it saved none


@dataclass
class Confirmation:
    row: dict[str, Any]                       # the chosen trial's row
    run: SeedRun                              # the chosen config's best re-trained run
    candidates: list[dict[str, Any]] = field(default_factory=list)  # per config: seeds, scores, mean


def row_config(row: dict[str, Any]) -> TrainConfig:
    """The trial's whole resolved training config (its ``config`` column)."""
    return TrainConfig.from_dict(json.loads(row["config"]))


def confirm_with_seeds(rows: list[dict[str, Any]], seeds: int, workdir: Path) -> Confirmation:
    """Re-train each of ``rows`` with ``seeds`` new seeds; pick the best mean dev F1.

    Args:
        rows: Trial rows, best first (ties in the mean go to the earlier row).
        seeds: Extra seeds per configuration (>= 1): the trial's seed + 1 … + ``seeds``.
        workdir: Where the re-trained model directories are written.

    Returns:
        The chosen row, its best re-trained run, and the scores of every candidate.
    """
    if seeds < 1:
        raise ValueError(f"seeds is {seeds}, but confirming needs at least 1 extra seed")
    if not rows:
        raise ValueError("no trials to confirm; the search has no trial with a dev score")
    best: tuple[float, dict[str, Any], SeedRun] | None = None
    table = []
    for row in rows:
        # All of this machine's threads, not the trial's share of its node (which the row
        # records, for a bit-for-bit re-run): a new seed reproduces nothing anyway.
        cfg = row_config(row).with_overrides(num_threads=None)
        runs = []
        for seed in range(cfg.seed + 1, cfg.seed + 1 + seeds):
            out = workdir / f"{row['trial_id']}-seed{seed}"
            logger.info("confirming trial %s with seed %d", row["trial_id"], seed)
            result = train(cfg.with_overrides(seed=seed), output_dir=out, evaluate_test=False)
            score = float(result.best["dev_f1"]) if result.best else 0.0
            # A run that diverged before its first evaluation saves no model (nerkit.train).
            runs.append(SeedRun(row["trial_id"], seed, score, dict(result.best or {}),
                                out if result.best is not None else None))
        avg = mean(r.dev_f1 for r in runs)
        table.append({"trial_id": row["trial_id"], "search_score": row.get("best_dev_f1"),
                      "seeds": [r.seed for r in runs], "dev_f1": [r.dev_f1 for r in runs], "mean_dev_f1": avg})
        # Only a config with a model to publish can be chosen: its best run that saved one.
        saved = [r for r in runs if r.model_dir is not None]
        if saved and (best is None or avg > best[0]):
            best = (avg, row, max(saved, key=lambda r: r.dev_f1))
    if best is None:
        raise ValueError(f"every re-trained run of trials {[r['trial_id'] for r in rows]} diverged before its "
                         "first evaluation, so there is no model to promote; promote without --confirm-seeds "
                         "(the search's own checkpoint) or check those configs with nerkit train")
    return Confirmation(row=best[1], run=best[2], candidates=table)
