"""Live search progress as a Ray Tune callback that publishes snapshots.

The callback prints nothing (library code never does): it publishes a
:class:`Progress` snapshot to the listeners registered in this process with
:func:`add_listener` — the CLI's live view is one. Listeners are looked up at call
time, not stored on the callback, because Ray pickles callbacks with the experiment
state and a resumed search must reach the new process's listeners.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from tune.ray_hooks import SearchCallback

from tune.guard import GuardConfig
from tune.stop_reasons import stop_reason
from tune.trial_order import trial_number

_LISTENERS: list[Callable[["Progress"], None]] = []


def add_listener(fn: Callable[["Progress"], None]) -> None:
    _LISTENERS.append(fn)


def remove_listener(fn: Callable[["Progress"], None]) -> None:
    if fn in _LISTENERS:
        _LISTENERS.remove(fn)


@dataclass
class Progress:
    total: int
    pending: int = 0
    running: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # finished trials by stop reason
    best_f1: float | None = None
    best_trial: str = ""
    best_epoch: float | None = None


class SearchProgress(SearchCallback):
    def __init__(self, total: int, guard: GuardConfig) -> None:
        self.total = total
        self.guard = guard
        self.ratios: dict[str, dict[int, float]] = {}
        self.entity_probs: dict[str, dict[int, float | None]] = {}
        self.best: tuple[float, str, float] | None = None
        self.best_number = math.inf  # the best trial's creation counter (tune.trial_order)

    def trial_result(self, trials, trial, result) -> None:
        if "eval_index" in result and "entity_pred_ratio" in result:
            index = int(result["eval_index"])
            ratios = self.ratios.setdefault(trial.trial_id, {})
            probs = self._probs().setdefault(trial.trial_id, {})
            # A trial that trains again (from its last checkpoint, or from the start) reports
            # from there on: the evaluations after it belong to the run it replaces, as the
            # scheduler's own history drops them (tune.scheduler).
            for history in (ratios, probs):
                for later in [i for i in history if i > index]:
                    del history[later]
            ratios[index] = result["entity_pred_ratio"]
            probs[index] = result.get("gold_entity_prob")
        f1 = result.get("dev_f1")
        # A diverged trial's stand-in F1 0 is no evaluation (the summary leaves it out too).
        # A tie goes to the trial created first, as in the tables and the summary
        # (tune.trial_order), not to whichever reported first.
        number = trial_number(getattr(trial, "experiment_tag", None))
        if (isinstance(f1, (int, float)) and result.get("stop_reason") != "diverged"
                and (self.best is None or f1 > self.best[0]
                     or (f1 == self.best[0] and number < self._best_number()))):
            self.best = (float(f1), trial.trial_id, float(result.get("epoch", 0.0)))
            self.best_number = number
        self._publish(trials)

    def _best_number(self) -> float:
        # A callback pickled before the number was kept (a resumed search) has none.
        return getattr(self, "best_number", math.inf)

    def trial_completed(self, trials, trial) -> None:
        # Ray calls this before it sets the trial's status to TERMINATED (TuneController.stop_trial),
        # so counted by its status the trial would still be running: the last trial of a
        # search would stay "running" in the view the search leaves on screen.
        self._publish(trials, ended=trial)

    def _probs(self) -> dict[str, dict[int, float | None]]:
        # A callback pickled before gold_entity_prob existed (a resumed search) lacks it.
        if not hasattr(self, "entity_probs"):
            self.entity_probs = {}
        return self.entity_probs

    def trial_errored(self, trials, trial) -> None:
        self._publish(trials)

    def trial_started(self, trials, trial) -> None:
        self._publish(trials)

    # Saved with each of Ray's experiment snapshots and restored with it: a resumed search
    # gets this callback as pickled when the search started (empty), and without its
    # histories would count the collapsed trials that ended before as stopped by ASHA, and
    # show only the best dev F1 reported since the resume.
    def saved_state(self) -> dict:
        return {"ratios": self.ratios, "entity_probs": self._probs(), "best": self.best,
                "best_number": self._best_number()}

    def restore_state(self, state: dict) -> None:
        self.ratios = {k: dict(v) for k, v in state.get("ratios", {}).items()}
        self.entity_probs = {k: dict(v) for k, v in state.get("entity_probs", {}).items()}
        self.best = state.get("best")
        self.best_number = state.get("best_number", math.inf)

    def snapshot(self, trials, ended=None) -> Progress:
        """The counts now; ``ended`` is a trial that has ended but whose status Ray has not set yet."""
        p = Progress(total=max(self.total, len(trials)))
        for t in trials:
            status = "TERMINATED" if t is ended else t.status
            if status == "PENDING":
                p.pending += 1
            elif status == "RUNNING":
                p.running += 1
            else:
                hist = self.ratios.get(t.trial_id, {})
                probs = self._probs().get(t.trial_id, {})
                order = sorted(hist)
                reason = stop_reason(status, t.last_result, [hist[i] for i in order], self.guard,
                                     [probs.get(i) for i in order])
                if reason:
                    p.reasons[reason] = p.reasons.get(reason, 0) + 1
        if self.best is not None:
            p.best_f1, p.best_trial, p.best_epoch = self.best
        return p

    def _publish(self, trials, ended=None) -> None:
        if not _LISTENERS:
            return
        snap = self.snapshot(trials, ended)
        for fn in list(_LISTENERS):
            fn(snap)
