"""The end-of-search summary: best trial, its config, metrics and checkpoint, and the baselines."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tune.settings import experiment_path
from tune.stop_reasons import shown_reason
from tune.tables import TrialTables, collect


def best_row(tables: TrialTables) -> dict[str, Any] | None:
    scored = [t for t in tables.trials if t.get("best_dev_f1") is not None]
    return max(scored, key=lambda t: t["best_dev_f1"], default=None)


def checkpoint_not_best(row: dict[str, Any]) -> str | None:
    """Which evaluation a trial's checkpoint holds, when it is not the trial's best, else None.

    Only with --checkpoint-every above 1 can the best evaluation lack a checkpoint;
    promotion then publishes the one named here. ``row`` is a trial-table row or the
    summary's ``best``.
    """
    held = row.get("checkpoint_eval_index")
    if not row.get("checkpoint") or held in (None, row["best_eval_index"]):
        return None
    # A table row names the trial's best F1 best_dev_f1; the summary's best, dev_f1.
    best_f1 = row["best_dev_f1"] if "best_dev_f1" in row else row["dev_f1"]
    if row.get("checkpoint_dev_f1") is not None and row["checkpoint_dev_f1"] >= best_f1:
        return None  # another evaluation, as good (ties are common while every F1 is 0)
    return f"evaluation {held} (dev F1 {row['checkpoint_dev_f1']:.4f}), not the best one ({row['best_eval_index']})"


def unfinished(tables) -> dict[str, int]:
    """Trials of a search not yet ended: ``stopped`` (created, with a status that has not
    ended: running, or left by an interrupted search) and ``not_started`` (planned, never
    created)."""
    from tune.trial_query import UNENDED_STATUSES

    stopped = sum(1 for t in tables.trials if str(t["status"]).upper() in UNENDED_STATUSES)
    return {"stopped": stopped, "not_started": max(0, tables.record["settings"]["trials"] - len(tables.trials))}


def summarize(name: str, storage: str = "runs") -> dict[str, Any]:
    tables = collect(experiment_path(name, storage))
    searched = [p["name"] for p in tables.record["space"]["params"] if p["kind"] != "fixed"]
    best = best_row(tables)
    out: dict[str, Any] = {
        "name": name,
        "experiment_path": tables.experiment,
        "trials": len(tables.trials),
        "trials_planned": tables.record["settings"]["trials"],
        # A trial not ended has no stop reason: "unfinished", as `nerkit trials` calls it.
        "reasons": dict(Counter(shown_reason(t) for t in tables.trials)),
        "unfinished": unfinished(tables),
        "best": None,
        "baselines": [
            {"name": t["baseline"], "trial_id": t["trial_id"], "dev_f1": t["best_dev_f1"],
             "stop_reason": t["stop_reason"]}
            for t in tables.trials if t["baseline"]
        ],
    }
    if best is not None:
        out["best"] = {
            "trial_id": best["trial_id"],
            "dev_f1": best["best_dev_f1"],
            "epoch": best["best_epoch"],
            "entity_pred_ratio": best["best_entity_pred_ratio"],
            "entity_o_ratio": best["entity_o_ratio"],  # None, never NaN: `--json` must stay JSON
            "params": {k: best.get(f"param_{k}") for k in searched if best.get(f"param_{k}") is not None},
            "config": json.loads(best["config"]),
            "checkpoint": best["checkpoint"],
            "checkpoint_eval_index": best.get("checkpoint_eval_index"),
            "checkpoint_dev_f1": best.get("checkpoint_dev_f1"),
            "best_eval_index": best["best_eval_index"],
            "stop_reason": best["stop_reason"],
        }
    return out
