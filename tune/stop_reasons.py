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
FINISHED = ("TERMINATED", "ERROR")


def stop_reason(status: str, last: dict | None, ratios: Sequence[float], guard: GuardConfig) -> str:
    """The stop reason of a trial from its Ray status, last result and ratio history."""
    if status == "ERROR":
        return "error"
    if status != "TERMINATED":
        return ""
    last = last or {}
    if last.get("stop_reason") == "diverged":
        return "diverged"
    if last.get("final"):
        return "completed"
    if collapse_index(ratios, guard) is not None:
        return "collapsed"
    return "asha"


def ratio_history(results: Sequence[dict]) -> list[float]:
    """entity_pred_ratio per evaluation, later reports of an evaluation winning (resume)."""
    by_eval: dict[int, float] = {}
    for r in results:
        if "eval_index" in r and "entity_pred_ratio" in r and r.get("stop_reason") != "diverged":
            by_eval[int(r["eval_index"])] = float(r["entity_pred_ratio"])
    return [by_eval[i] for i in sorted(by_eval)]
