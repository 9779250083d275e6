"""Trial tables: one row per trial and one row per trial evaluation.

Built from Ray's own record of the experiment (``ray.tune.ExperimentAnalysis``:
trial statuses, results, checkpoints) plus ``search.json``; works for a finished, a
running and an interrupted search. The schema is versioned (``SCHEMA_VERSION``) and
documented in docs/TRIAL_TABLES.md; columns:

trials: ``trial_id``, ``status``, ``stop_reason``, ``baseline``, ``param_<name>``
for each searched parameter, ``config`` (the trial's whole resolved TrainConfig as
JSON), ``entity_o_ratio``, ``best_dev_f1`` / ``best_eval_index`` / ``best_epoch`` /
``best_entity_pred_ratio`` / ``best_token_accuracy`` / ``best_f1_<TYPE>``,
``last_dev_f1`` / ``last_eval_index`` / ``last_epoch`` / ``last_entity_pred_ratio``,
``evaluations``, ``epochs_trained``, ``tokens_trained``, ``wall_time_s``,
``node_ip``, ``hostname``, ``node_id``, ``gpu_ids``, ``compute_precision``,
``checkpoint`` / ``checkpoint_eval_index`` / ``checkpoint_dev_f1``, ``error``,
``results_incomplete``, ``experiment``,
``schema_version``.

history: ``trial_id``, ``eval_index``, ``step``, ``epoch``, ``tokens_seen``,
``train_loss``, ``dev_loss``, ``dev_f1``, ``dev_precision``, ``dev_recall``,
``dev_macro_f1``, ``dev_token_accuracy``, ``entity_pred_ratio``,
``gold_entity_ratio``, ``gold_entity_prob``, ``collapsed``, ``tokens_per_s``, ``time_total_s``,
``f1_<TYPE>``, ``stop_reason``, ``schema_version``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from tune.guard import GuardConfig
from tune.settings import read_settings
from tune.stop_reasons import entity_prob_history, ratio_history, stop_reason

SCHEMA_VERSION = 1
METRIC = "dev_f1"
_HISTORY_KEYS = (
    "eval_index", "step", "epoch", "tokens_seen", "train_loss", "dev_loss", "dev_f1", "dev_precision",
    "dev_recall", "dev_macro_f1", "dev_token_accuracy", "entity_pred_ratio", "gold_entity_ratio",
    "gold_entity_prob", "collapsed", "tokens_per_s", "time_total_s", "stop_reason",
)


@dataclass
class TrialTables:
    experiment: str
    record: dict[str, Any]          # search.json
    trials: list[dict[str, Any]]
    history: list[dict[str, Any]]


def _results(df) -> list[dict[str, Any]]:
    """Rows of a trial's result DataFrame as dicts (NaN cells dropped; nested keys stay
    flattened as ``per_type/<TYPE>/<metric>``)."""
    rows = []
    for row in df.to_dict("records"):
        clean = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        rows.append(clean)
    return rows


def _per_type_f1(result: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in result.items():
        if key.startswith("per_type/") and key.endswith("/f1"):
            out[key.split("/")[1]] = float(value)
    return out


def _baseline_name(params: dict[str, Any], baselines: list[dict[str, Any]]) -> str:
    for b in baselines:
        if b["params"] and all(params.get(k) == v for k, v in b["params"].items()):
            return b["name"]
    return ""


def collect(experiment_path: str) -> TrialTables:
    """Read an experiment into trial rows and history rows (see module doc)."""
    from ray.tune import ExperimentAnalysis
    from ray.tune.utils import flatten_dict

    from tune.trainable import trial_config

    record = read_settings(experiment_path)
    guard = GuardConfig(**record["space"]["guard"])
    baselines = record["space"]["baselines"] if record["settings"]["baselines"] else []
    searched = [p["name"] for p in record["space"]["params"] if p["kind"] != "fixed"]
    try:
        analysis = ExperimentAnalysis(experiment_path, default_metric=METRIC, default_mode="max")
    except ValueError:
        return TrialTables(experiment_path, record, [], [])  # no trial has started yet

    trials, history = [], []
    for trial in analysis.trials:
        results = _results(analysis.trial_dataframes.get(trial.trial_id))
        # A result log cut short or lost (a trial directory deleted, a disk filled) still
        # leaves Ray's own record of the trial's last result: use it, and say so.
        incomplete = _log_behind(results, trial.last_result or {})
        if incomplete:
            # Ray's own flattening: the one that made the result log's columns.
            results = results + [flatten_dict(dict(trial.last_result), delimiter="/")]
        ratios = ratio_history(results)
        last = results[-1] if results else (trial.last_result or {})
        reason = stop_reason(trial.status, last, ratios, guard, entity_prob_history(results))
        params = {k: v for k, v in trial.config.items()}
        evals = [r for r in results if "eval_index" in r and r.get("stop_reason") != "diverged"]
        best = max(evals, key=lambda r: r.get(METRIC, -1.0), default=None)
        row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "status": trial.status,
            "stop_reason": reason,
            "baseline": _baseline_name(params, baselines),
            **{f"param_{k}": params.get(k) for k in searched},
            "config": json.dumps(trial_config(record["base_config"], params).to_dict(), sort_keys=True, default=str),
            "entity_o_ratio": _f(last.get("entity_o_ratio")),
            "evaluations": len({r["eval_index"] for r in evals}),
            "epochs_trained": _f(last.get("epoch")),
            "tokens_trained": int(last.get("tokens_seen", 0) or 0),
            "wall_time_s": _f(last.get("time_total_s")),
            "node_ip": str(last.get("node_ip", "")),
            "hostname": str(last.get("hostname", "")),
            "node_id": str(last.get("node_id", "")),
            "gpu_ids": str(last.get("gpu_ids", "")),
            # bf16 or fp32 as the trial's hardware resolved precision "auto": a mixed
            # cluster can run trials of one search in different precisions.
            "compute_precision": str(last.get("compute_precision", "")),
            "checkpoint": "",
            "checkpoint_eval_index": None,
            "checkpoint_dev_f1": None,
            "error": _error(trial),
            "results_incomplete": incomplete,
            "experiment": experiment_path,
            "schema_version": SCHEMA_VERSION,
        }
        for prefix, r in (("best", best), ("last", evals[-1] if evals else None)):
            row[f"{prefix}_dev_f1"] = _f(r.get(METRIC)) if r else None
            row[f"{prefix}_eval_index"] = int(r["eval_index"]) if r else None
            row[f"{prefix}_epoch"] = _f(r.get("epoch")) if r else None
            row[f"{prefix}_entity_pred_ratio"] = _f(r.get("entity_pred_ratio")) if r else None
        row["best_token_accuracy"] = _f(best.get("dev_token_accuracy")) if best else None
        for etype, f1 in (_per_type_f1(best) if best else {}).items():
            row[f"best_f1_{etype}"] = f1
        if best is not None:
            ckpt, at = _best_checkpoint(trial)
            row["checkpoint"] = _uri(ckpt) if ckpt is not None else ""
            # With --checkpoint-every above 1 the best evaluation may have no checkpoint:
            # this says which one `checkpoint` holds (promotion scores that one).
            row["checkpoint_eval_index"] = int(at["eval_index"]) if ckpt is not None and "eval_index" in at else None
            row["checkpoint_dev_f1"] = _f(at.get(METRIC)) if ckpt is not None else None
        trials.append(row)
        for r in results:
            h = {"trial_id": trial.trial_id, **{k: r.get(k) for k in _HISTORY_KEYS}}
            h.update({f"f1_{t}": v for t, v in _per_type_f1(r).items()})
            h["schema_version"] = SCHEMA_VERSION
            history.append(h)
    return TrialTables(experiment_path, record, trials, history)


def _log_behind(results: list[dict[str, Any]], last: dict[str, Any]) -> bool:
    """Whether Ray's last result of a trial is an evaluation its result log lacks."""
    if "eval_index" not in last:
        return False
    logged = [int(r["eval_index"]) for r in results if "eval_index" in r]
    return not logged or max(logged) < int(last["eval_index"])


def _best_checkpoint(trial) -> tuple[Any, dict[str, Any]]:
    """The trial's checkpoint with the highest dev F1 and the result it came with.

    The same choice as Ray's ``ExperimentAnalysis.get_best_checkpoint`` (NaN left out,
    the first of equals), which returns the checkpoint alone.
    """
    scored = [(r.checkpoint, r.metrics) for r in trial.run_metadata.checkpoint_manager.best_checkpoint_results
              if _f(r.metrics.get(METRIC)) is not None]
    return max(scored, key=lambda c: c[1][METRIC], default=(None, {}))


def _f(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _uri(checkpoint) -> str:
    """A checkpoint's full location: Ray keeps object-store paths without their scheme."""
    scheme = {"s3": "s3://", "gcs": "gs://", "hdfs": "hdfs://"}.get(checkpoint.filesystem.type_name, "")
    return f"{scheme}{checkpoint.path}"


def _error(trial) -> str:
    if trial.status != "ERROR":
        return ""
    # The tail of the trace: the exception line is what a reader of the table needs.
    return str(trial.get_error() or "")[-2000:]
