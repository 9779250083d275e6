"""The collapse guard: stop trials whose predictions *stay* all-'O'.

A trial has collapsed at an evaluation when its ``entity_pred_ratio`` (share of
counted dev tokens predicted non-'O') is below ``eps``. Collapse at the first epoch
is often transient: on a real 94%-'O' set a plain-CE MiniLM was all-'O' after epoch 1
(F1 0.00) and reached F1 0.42 by epoch 3. So the guard ignores the first ``grace``
evaluations and then stops a trial only after ``patience`` consecutive collapsed
evaluations.

A collapsed evaluation is *spared* (it does not count, and the run of collapsed ones
starts again) when the trial's ``gold_entity_prob`` — the mean probability the model
puts on entity labels at the dev tokens that are entities — rose by at least
``min_rise`` since the previous evaluation. The argmax can sit at all-'O' for epochs
while the model moves towards entities. At the edge of collapse (benchmarks/RESULTS.md
§5, ninth session) every trial that came back over ``eps`` after the old verdict had risen
by 0.03-0.28 at the evaluation judged; of the trials that stayed all-'O', those the guard
now stops had fallen, or risen by at most 0.008, and plateaued ones drift by 0.0001-0.001.
A trial still learning entities is not one that *stays* collapsed.

The verdict is a pure function of the ratio and probability histories, so the
scheduler that acts on it and the trial tables that explain it afterwards cannot
disagree.
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
    # A collapsed evaluation whose gold_entity_prob rose by at least this since the
    # previous evaluation is spared; None judges the ratio alone (the rule before
    # gold_entity_prob existed). Plateaued trials moved by 0.0001-0.001 between
    # evaluations, so 0.01 is above noise and far below the rises of trials that came back.
    min_rise: float | None = 0.01

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            # A quoted "false" is a string, and would leave the guard on.
            raise ValueError(f"collapse_guard.enabled is {self.enabled!r}, but must be true or false (unquoted)")
        if not (isinstance(self.eps, (int, float)) and not isinstance(self.eps, bool)) or not 0 <= self.eps < 1:
            raise ValueError(f"collapse_guard.eps is {self.eps}, but must be in [0, 1)")
        if not (isinstance(self.grace, int) and not isinstance(self.grace, bool) and self.grace >= 0):
            raise ValueError(f"collapse_guard.grace is {self.grace!r}, but must be an integer >= 0")
        if not (isinstance(self.patience, int) and not isinstance(self.patience, bool) and self.patience >= 1):
            raise ValueError(f"collapse_guard.patience is {self.patience!r}, but must be an integer >= 1")
        if self.min_rise is not None and not (
            isinstance(self.min_rise, (int, float)) and not isinstance(self.min_rise, bool) and 0 < self.min_rise < 1
        ):
            raise ValueError(f"collapse_guard.min_rise is {self.min_rise!r}, but must be a number in (0, 1), "
                             "or null to judge entity_pred_ratio alone")


def collapse_index(
    ratios: Sequence[float], guard: GuardConfig, entity_probs: Sequence[float | None] | None = None,
) -> int | None:
    """0-based index of the evaluation at which the guard fires, or ``None``.

    ``entity_probs`` is the ``gold_entity_prob`` of each evaluation, aligned with
    ``ratios``; missing or ``None`` entries (results from before the metric existed)
    spare nothing.

    >>> g = GuardConfig(eps=0.01, grace=1, patience=2)
    >>> collapse_index([0.0, 0.0, 0.2], g) is None   # epoch-1 collapse, then recovery
    True
    >>> collapse_index([0.0, 0.0, 0.0], g)
    2
    >>> collapse_index([0.0, 0.0, 0.0], g, [0.4, 0.2, 0.45]) is None   # all-'O', but learning entities
    True
    """
    if not guard.enabled:
        return None
    run = 0
    for i, ratio in enumerate(ratios):
        if i < guard.grace:
            continue
        stuck = ratio < guard.eps and not _rising(entity_probs, i, guard.min_rise)
        run = run + 1 if stuck else 0
        if run >= guard.patience:
            return i
    return None


def _rising(probs: Sequence[float | None] | None, i: int, min_rise: float | None) -> bool:
    """Whether ``probs[i]`` rose by at least ``min_rise`` since ``probs[i - 1]``."""
    if min_rise is None or probs is None or not 1 <= i < len(probs):
        return False
    now, before = probs[i], probs[i - 1]
    # The tolerance keeps a rise of exactly min_rise (0.21 - 0.20) from missing by rounding.
    return now is not None and before is not None and now - before >= min_rise - 1e-9
