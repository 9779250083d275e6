"""Why a trial ended: one function, used by the live progress view and the trial tables.

Precedence: ``error`` (the trial raised past its retries) > ``diverged`` (non-finite
loss) > ``completed`` (its own budget or early stopping ended it) > ``collapsed`` (the
collapse guard's verdict on its entity_pred_ratio history) > ``asha`` (stopped by
ASHA at a rung). Trials still pending or running have reason ``""``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tune.guard import GuardConfig, collapse_index

REASONS = ("completed", "asha", "collapsed", "diverged", "error")
#: What a trial that has not ended (no stop reason yet) is called in summaries and reports.
UNFINISHED = "unfinished"


def shown_reason(row: dict) -> str:
    """A trial row's stop reason, or :data:`UNFINISHED` where it has none yet."""
    return row.get("stop_reason") or UNFINISHED


#: Ray statuses of a trial that has ended.
FINISHED = ("TERMINATED", "ERROR")


def stop_reason(
    status: str, last: dict | None, ratios: Sequence[float], guard: GuardConfig,
    entity_probs: Sequence[float | None] | None = None,
) -> str:
    """The stop reason of a trial from its Ray status, last result and guard histories."""
    if status == "ERROR":
        return "error"
    if status != "TERMINATED":
        return ""
    last = last or {}
    if last.get("stop_reason") == "diverged":
        return "diverged"
    if last.get("final"):
        return "completed"
    if collapse_index(ratios, guard, entity_probs) is not None:
        return "collapsed"
    return "asha"


def ratio_history(results: Sequence[dict]) -> list[float]:
    """entity_pred_ratio per evaluation, later reports of an evaluation winning (resume)."""
    return [float(r["entity_pred_ratio"]) for r in last_per_evaluation(results)]


def entity_prob_history(results: Sequence[dict]) -> list[float | None]:
    """gold_entity_prob per evaluation, aligned with ``ratio_history`` (None where not reported)."""
    return [_prob(r.get("gold_entity_prob")) for r in last_per_evaluation(results)]


def last_per_evaluation(results: Sequence[dict]) -> list[dict]:
    """One result per evaluation (its last report), in evaluation order; diverged reports left out."""
    by_eval: dict[int, dict] = {}
    for r in results:
        if "eval_index" in r and "entity_pred_ratio" in r and r.get("stop_reason") != "diverged":
            by_eval[int(r["eval_index"])] = r
    return [by_eval[i] for i in sorted(by_eval)]


def _prob(value) -> float | None:
    # Result logs read back through pandas hold NaN where a row lacks the column.
    return None if value is None or value != value else float(value)
