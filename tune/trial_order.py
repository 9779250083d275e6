"""The order trials were created in: the one order the trial tables, the summary, promotion
and the live view share (Ray's trial ids are random, and its snapshot lists trials in no
fixed order, not even the same one before and after a resume)."""

from __future__ import annotations

import math


def trial_number(experiment_tag: str | None) -> float:
    """The creation counter Ray puts at the start of a trial's ``experiment_tag``
    (``"3_batch_size=16,…"`` → 3); infinity where there is none (such trials sort last)."""
    head = (experiment_tag or "").split("_", 1)[0]
    return int(head) if head.isdigit() else math.inf
