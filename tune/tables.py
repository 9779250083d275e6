"""Trial tables: one row per trial and one row per trial evaluation.

Built from Ray's own record of the experiment (``ray.tune.ExperimentAnalysis``, read by tune.ray_record:
trial statuses, results, checkpoints) plus ``search.json``; works for a finished, a
running and an interrupted search. The schema is versioned (``SCHEMA_VERSION``) and
documented in docs/TRIAL_TABLES.md; columns:

trials: ``trial_id``, ``status``, ``stop_reason``, ``baseline``, ``param_<name>``
for each searched parameter, ``config`` (the trial's whole resolved TrainConfig as
JSON), ``num_threads``, ``entity_o_ratio``, ``best_dev_f1`` / ``best_eval_index`` / ``best_epoch`` /
``best_entity_pred_ratio`` / ``best_token_accuracy`` / ``best_f1_<TYPE>``,
``last_dev_f1`` / ``last_eval_index`` / ``last_epoch`` / ``last_entity_pred_ratio``,
``evaluations``, ``epochs_trained``, ``tokens_trained``, ``wall_time_s``,
``node_ip``, ``hostname``, ``node_id``, ``gpu_ids``, ``compute_precision``,
``checkpoint`` / ``checkpoint_eval_index`` / ``checkpoint_dev_f1``, ``error``,
``results_incomplete``, ``experiment``,
``schema_version``.

history: ``trial_id``, ``eval_index``, ``training_iteration``, ``step``, ``epoch``, ``tokens_seen``,
``train_loss``, ``dev_loss``, ``dev_f1``, ``dev_precision``, ``dev_recall``,
``dev_macro_f1``, ``dev_token_accuracy``, ``entity_pred_ratio``,
``gold_entity_ratio``, ``gold_entity_prob``, ``collapsed``, ``tokens_per_s``, ``time_total_s``,
``f1_<TYPE>``, ``stop_reason``, ``schema_version``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from tune.guard import GuardConfig
from tune.ray_record import (METRIC, best_checkpoint, checkpoint_uri, checkpointed_results, lacks_evaluations,
                             last_start, log_behind, read_analysis, since_last_start, trial_error,
                             trial_results)
from tune.settings import planned_baselines, read_settings
from tune.stop_reasons import entity_prob_history, last_per_evaluation, ratio_history, stop_reason
from tune.trial_order import trial_number

SCHEMA_VERSION = 1

# The fixed columns of each table, in order, each with a value of its type. The
# Parquet schema takes a column's type from these when no row has a value for it (an
# experiment with no trial yet, a column empty in every row), so filters and sorts on
# such a table still find their columns and every table of one kind has one schema.
# Searched parameters (param_<name>) come from the space, after "baseline"; per-type F1
# (best_f1_<TYPE>, f1_<TYPE>) only once a trial reports it.
_TRIAL_HEAD = {"trial_id": "", "status": "", "stop_reason": "", "baseline": ""}
_TRIAL_TAIL = {
    "config": "", "num_threads": 0, "entity_o_ratio": 0.0, "evaluations": 0, "epochs_trained": 0.0,
    "tokens_trained": 0, "wall_time_s": 0.0, "node_ip": "", "hostname": "", "node_id": "", "gpu_ids": "",
    "compute_precision": "", "checkpoint": "", "checkpoint_eval_index": 0, "checkpoint_dev_f1": 0.0,
    "error": "", "results_incomplete": False, "experiment": "", "schema_version": 0,
    **{f"{prefix}_{name}": kind for prefix in ("best", "last")
       for name, kind in (("dev_f1", 0.0), ("eval_index", 0), ("epoch", 0.0), ("entity_pred_ratio", 0.0))},
    "best_token_accuracy": 0.0,
}
HISTORY_COLUMNS: dict[str, Any] = {
    "trial_id": "", "eval_index": 0, "step": 0, "epoch": 0.0, "tokens_seen": 0, "train_loss": 0.0,
    "dev_loss": 0.0, "dev_f1": 0.0, "dev_precision": 0.0, "dev_recall": 0.0, "dev_macro_f1": 0.0,
    "dev_token_accuracy": 0.0, "entity_pred_ratio": 0.0, "gold_entity_ratio": 0.0, "gold_entity_prob": 0.0,
    "collapsed": False, "tokens_per_s": 0.0, "time_total_s": 0.0, "stop_reason": "", "training_iteration": 0,
    "schema_version": 0,
}
_HISTORY_KEYS = tuple(k for k in HISTORY_COLUMNS if k not in ("trial_id", "schema_version"))


@dataclass
class TrialTables:
    experiment: str
    record: dict[str, Any]          # search.json
    trials: list[dict[str, Any]]
    history: list[dict[str, Any]]
    #: Each table's fixed and searched columns, each with a value of its type (see above).
    trial_columns: dict[str, Any] = field(default_factory=dict)
    history_columns: dict[str, Any] = field(default_factory=lambda: dict(HISTORY_COLUMNS))
    #: When :func:`collect` began reading Ray's state (Unix time; 0: unknown), so that
    #: ``nerkit trials`` does not write its tables over ones read later
    #: (tune.parquet.write_tables).
    collected_at: float = 0.0


def trial_columns(record: dict[str, Any]) -> dict[str, Any]:
    """The trial table's columns for a search (its ``search.json`` record), in order."""
    params = {}
    for p in record["space"]["params"]:
        if p["kind"] == "fixed":
            continue
        # A choice's values themselves (all ints, all text, mixed: the Parquet writer
        # types them as it types rows); a range is float, or int for an int range.
        params[f"param_{p['name']}"] = p["values"] if p["kind"] == "choice" else (0 if p["kind"] == "int" else 0.0)
    return {**_TRIAL_HEAD, **params, **_TRIAL_TAIL}


def _per_type_f1(result: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in result.items():
        if key.startswith("per_type/") and key.endswith("/f1"):
            out[key.split("/")[1]] = float(value)
    return out


def _baseline_name(params: dict[str, Any], baselines: list[dict[str, Any]], named: set[str]) -> str:
    """The baseline a trial ran, by its parameters. Baselines are the first trials Ray
    creates (enqueued), so only the first trial matching each is it: the sampler can
    draw the same point again later (a small choice space), and that one is a trial."""
    for b in baselines:
        if b["name"] not in named and b["params"] and all(params.get(k) == v for k, v in b["params"].items()):
            named.add(b["name"])
            return b["name"]
    return ""


def _config_json(base: dict[str, Any], params: dict[str, Any], num_threads: int | None = None) -> str:
    """The trial's whole TrainConfig as JSON, with the thread count it ran with where the
    config left it to Ray; where its settings do not make one (a space from before they
    were checked together, tune.space_checks), the settings as given: that trial failed on them,
    and its row (with the error) must still be in the table."""
    from tune.trainable import trial_config

    try:
        config = trial_config(base, params).to_dict()
    except (ValueError, TypeError):
        config = {**base, **params}
    if config.get("num_threads") is None and num_threads:
        config["num_threads"] = num_threads
    return json.dumps(config, sort_keys=True, default=str)


def collect(experiment_path: str) -> TrialTables:
    """Read an experiment into trial rows and history rows (see module doc).

    Raises:
        ValueError: Ray's snapshot of the experiment is cut off and there is no complete
            backup of it to read instead (the message says what to do).
    """
    from ray.tune.utils import flatten_dict

    collected_at = time.time()
    record = read_settings(experiment_path)
    guard = GuardConfig(**record["space"]["guard"])
    settings = record["settings"]
    baselines = planned_baselines(record["space"]["baselines"], settings["baselines"], settings["trials"])
    searched = [p["name"] for p in record["space"]["params"] if p["kind"] != "fixed"]
    columns = trial_columns(record)
    analysis = read_analysis(experiment_path)
    if analysis is None:
        return TrialTables(experiment_path, record, [], [], columns, collected_at=collected_at)  # none started

    trials, history = [], []
    named: set[str] = set()
    # A float range's baseline value written as an int (`o_weight: 1`) would make its
    # Parquet column int64 until a sampled trial makes it double.
    floats = {p["name"] for p in record["space"]["params"] if p["kind"] in ("loguniform", "uniform")}
    # In creation order: a tie for best goes to the earlier trial everywhere (tune.trial_order).
    for trial in sorted(analysis.trials, key=lambda t: trial_number(t.experiment_tag)):
        results = trial_results(trial)
        # A result log cut short, damaged or lost (a trial directory deleted, a disk
        # filled) still leaves Ray's own record of the trial's checkpointed evaluations
        # and of its last result: use them, and say so.
        recovered = checkpointed_results(trial, results)
        if recovered:
            results = sorted(results + recovered, key=lambda r: int(r.get("training_iteration") or 0))
        behind = log_behind(results, trial.last_result or {})
        if behind:
            # Ray's own flattening: the one that made the result log's columns.
            results = results + [flatten_dict(dict(trial.last_result), delimiter="/")]
        incomplete = bool(recovered) or behind or lacks_evaluations(results)
        # The row describes the trial's last start: a trial trained again from scratch
        # (its checkpoint damaged) and stopped before the abandoned run's last evaluation
        # would otherwise take that run's later evaluations for its own. The history
        # keeps every report (training_iteration tells the runs apart).
        current = since_last_start(results)
        ratios = ratio_history(current)
        last = results[-1] if results else (trial.last_result or {})
        reason = stop_reason(trial.status, last, ratios, guard, entity_prob_history(current))
        params = {k: float(v) if k in floats and isinstance(v, int) and not isinstance(v, bool) else v
                  for k, v in trial.config.items()}
        # One result per evaluation, its last report: an evaluation redone after a restore
        # replaces the first report (the history and the curves keep the same one).
        evals = last_per_evaluation(current)
        best = max(evals, key=lambda r: r.get(METRIC, -1.0), default=None)
        row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "status": trial.status,
            "stop_reason": reason,
            "baseline": _baseline_name(params, baselines, named),
            **{f"param_{k}": params.get(k) for k in searched},
            # The config as the trial ran it (its checkpoints hold the same): a space leaves
            # num_threads unset, and each trial takes the CPUs Ray gives it (tune.trainable).
            # Reproducing a trial bit for bit takes the same thread count.
            "config": _config_json(record["base_config"], params, _int(last.get("num_threads"))),
            "num_threads": _int(last.get("num_threads")),
            "entity_o_ratio": _f(last.get("entity_o_ratio")),
            "evaluations": len({r["eval_index"] for r in evals}),
            "epochs_trained": _f(last.get("epoch")),
            "tokens_trained": _int(last.get("tokens_seen")),
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
            "error": trial_error(trial),
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
            ckpt, at = best_checkpoint(trial, last_start(results))
            row["checkpoint"] = checkpoint_uri(ckpt, experiment_path) if ckpt is not None else ""
            # With --checkpoint-every above 1 the best evaluation may have no checkpoint:
            # this says which one `checkpoint` holds (promotion scores that one).
            row["checkpoint_eval_index"] = int(at["eval_index"]) if ckpt is not None and "eval_index" in at else None
            row["checkpoint_dev_f1"] = _f(at.get(METRIC)) if ckpt is not None else None
        trials.append(row)
        for r in results:
            if r.get("stop_reason") == "diverged":
                # The stand-in a diverged trial reports (dev F1 0 for ASHA and the searcher,
                # other metrics copied from its last evaluation) is no evaluation.
                continue
            h = {"trial_id": trial.trial_id, **{k: r.get(k) for k in _HISTORY_KEYS}}
            h.update({f"f1_{t}": v for t, v in _per_type_f1(r).items()})
            h["schema_version"] = SCHEMA_VERSION
            history.append(h)
    return TrialTables(experiment_path, record, trials, history, columns, collected_at=collected_at)


def _int(value: Any) -> int | None:
    out = _f(value)
    return int(out) if out is not None else None


def _f(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
