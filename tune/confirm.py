"""Confirm a search's winners with fresh seeds before promoting one.

The best trial of a search is the maximum of many noisy scores, so its dev F1 is
optimistic (the winner's curse). Re-training the top configurations with seeds the
search never used and ranking them by *mean* dev F1 over those runs removes that
selection bias; the original trial's own score is left out of the mean on purpose.
"""

from __future__ import annotations

import json
import logging
import shutil
import traceback
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


def _discard(run: SeedRun | None) -> None:
    """Delete a re-trained run's model directory once no choice can need it.

    Each is a whole model (about 90 MB for MiniLM, GBs for a large one); keeping all
    top-k × seeds of them filled the temporary directory for a choice that needs two."""
    if run is not None and run.model_dir is not None:
        shutil.rmtree(run.model_dir, ignore_errors=True)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """The error as the manifest and the published model card give it: its type and the
    first line of its message, cut short (a message can hold a long trace or local paths)."""
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def confirm_with_seeds(rows: list[dict[str, Any]], seeds: int, workdir: Path) -> Confirmation:
    """Re-train each of ``rows`` with ``seeds`` new seeds; pick the best mean dev F1.

    A configuration whose re-training raises (out of memory, a base model missing on
    this machine) is left out, its error recorded among the candidates, and the others
    still compete: one bad run must not throw away hours of the others' re-training.
    Only the model directories a choice can still need are kept on disk.

    Args:
        rows: Trial rows, best first (ties in the mean go to the earlier row).
        seeds: Extra seeds per configuration (>= 1): the trial's seed + 1 … + ``seeds``.
        workdir: Where the re-trained model directories are written.

    Returns:
        The chosen row, its best re-trained run, and the scores of every candidate.

    Raises:
        ValueError: no configuration has a model to publish.
        Exception: every configuration failed to re-train: the first failure, as raised.
    """
    if seeds < 1:
        raise ValueError(f"seeds is {seeds}, but confirming needs at least 1 extra seed")
    if not rows:
        raise ValueError("no trials to confirm; the search has no trial with a dev score")
    best: tuple[float, dict[str, Any], SeedRun] | None = None
    table: list[dict[str, Any]] = []
    first_error: Exception | None = None
    for row in rows:
        # All of this machine's threads, not the trial's share of its node (which the row
        # records, for a bit-for-bit re-run): a new seed reproduces nothing anyway.
        cfg = row_config(row).with_overrides(num_threads=None)
        runs: list[SeedRun] = []
        kept: SeedRun | None = None  # this config's best run that saved a model
        candidate: dict[str, Any] = {"trial_id": row["trial_id"], "search_score": row.get("best_dev_f1")}
        out: Path | None = None
        try:
            for seed in range(cfg.seed + 1, cfg.seed + 1 + seeds):
                out = workdir / f"{row['trial_id']}-seed{seed}"
                logger.info("confirming trial %s with seed %d", row["trial_id"], seed)
                result = train(cfg.with_overrides(seed=seed), output_dir=out, evaluate_test=False)
                score = float(result.best["dev_f1"]) if result.best else 0.0
                # A run that diverged before its first evaluation saves no model (nerkit.train).
                run = SeedRun(row["trial_id"], seed, score, dict(result.best or {}),
                              out if result.best is not None else None)
                runs.append(run)
                if run.model_dir is not None and (kept is None or run.dev_f1 > kept.dev_f1):
                    _discard(kept)
                    kept = run
                elif run is not kept:
                    _discard(run)
        except Exception as exc:  # noqa: BLE001 - recorded and reported; the other configs still compete
            # The traceback's frames hold the failed run's model and optimizer (on the GPU,
            # after an out-of-memory error): cleared, they do not crowd the next configs.
            traceback.clear_frames(exc.__traceback__)
            if first_error is None:
                first_error = exc
            logger.warning("re-training trial %s's config failed, so it is left out of the choice: %s: %s",
                           row["trial_id"], type(exc).__name__, exc)
            logger.debug("the failure's traceback", exc_info=exc)
            _discard(kept)
            if out is not None:
                shutil.rmtree(out, ignore_errors=True)  # what the failed run wrote (a full disk fails there)
            table.append({**candidate, "seeds": [r.seed for r in runs], "dev_f1": [r.dev_f1 for r in runs],
                          "mean_dev_f1": None, "error": _one_line(exc)})
            continue
        avg = mean(r.dev_f1 for r in runs)
        table.append({**candidate, "seeds": [r.seed for r in runs], "dev_f1": [r.dev_f1 for r in runs],
                      "mean_dev_f1": avg})
        # Only a config with a model to publish can be chosen: its best run that saved one.
        if kept is not None and (best is None or avg > best[0]):
            if best is not None:
                _discard(best[2])
            best = (avg, row, kept)
        else:
            _discard(kept)
    if best is None:
        ids = [r["trial_id"] for r in rows]
        if first_error is not None and all("error" in c for c in table):
            # Its own type, so the CLI's exit status still tells a bad input (2) from the
            # machine (1: a full disk fails every config alike); each was logged above.
            raise first_error
        errors = "; ".join(f"trial {c['trial_id']}: {c['error']}" for c in table if c.get("error"))
        raise ValueError(f"every re-trained run of trials {ids} diverged before its first evaluation"
                         f"{f' or failed ({errors})' if errors else ''}, so there is no model to promote; promote "
                         "without --confirm-seeds (the search's own checkpoint) or check those configs with "
                         "nerkit train")
    return Confirmation(row=best[1], run=best[2], candidates=table)
