"""The collapse guard: stop trials whose predictions *stay* all-'O'.

A trial has collapsed at an evaluation when its ``entity_pred_ratio`` (share of
counted dev tokens predicted non-'O') is below ``eps``. Collapse at the first epoch
is often transient: on a real 94%-'O' set a plain-CE MiniLM was all-'O' after epoch 1
(F1 0.00) and reached F1 0.42 by epoch 3. So the guard ignores the first ``grace``
evaluations and then stops a trial only after ``patience`` consecutive collapsed
evaluations. The verdict is a pure function of the ratio history, so the scheduler
that acts on it and the trial tables that explain it afterwards cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GuardConfig:
    eps: float = 0.005     # entity_pred_ratio below this counts as collapsed
    grace: int = 1         # evaluations never judged (transient early collapse)
    patience: int = 2      # consecutive collapsed evaluations, after grace, to stop
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.eps < 1:
            raise ValueError(f"collapse_guard.eps is {self.eps}, but must be in [0, 1)")
        if not (isinstance(self.grace, int) and self.grace >= 0):
            raise ValueError(f"collapse_guard.grace is {self.grace!r}, but must be an integer >= 0")
        if not (isinstance(self.patience, int) and self.patience >= 1):
            raise ValueError(f"collapse_guard.patience is {self.patience!r}, but must be an integer >= 1")


def collapse_index(ratios: Sequence[float], guard: GuardConfig) -> int | None:
    """0-based index of the evaluation at which the guard fires, or ``None``.

    >>> g = GuardConfig(eps=0.01, grace=1, patience=2)
    >>> collapse_index([0.0, 0.0, 0.2], g) is None   # epoch-1 collapse, then recovery
    True
    >>> collapse_index([0.0, 0.0, 0.0], g)
    2
    """
    if not guard.enabled:
        return None
    run = 0
    for i, ratio in enumerate(ratios):
        if i < guard.grace:
            continue
        run = run + 1 if ratio < guard.eps else 0
        if run >= guard.patience:
            return i
    return None
