"""nerkit's search callbacks meet Ray Tune's ``Callback`` API here, and only here.

Ray's hook signatures change between versions (an ``iteration`` argument came and
went, ``setup`` grew keywords). Each nerkit callback (progress, retention, state backup,
result-log upload) implements the events below with only the arguments it uses, and
:class:`SearchCallback` maps Ray 2.60's hooks (pinned in pyproject.toml) onto them, so a
Ray upgrade touches this file alone.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback


class SearchCallback(Callback):
    """A Ray Tune callback written against nerkit's events (see module doc).

    Every event does nothing unless overridden. ``trials`` is Ray's list of the search's
    trials, ``trial`` one of them; ``saved_state``/``restore_state`` are saved with each of
    Ray's experiment snapshots and given back on resume.
    """

    # ---------------------------------------------------------------- nerkit's events
    def started(self) -> None:
        """The driver set the callback up: a new search, or a resume (a new process)."""

    def trial_started(self, trials: list, trial) -> None:
        """A trial started or restarted (from a checkpoint, after a failure or a resume)."""

    def trial_result(self, trials: list, trial, result: dict[str, Any]) -> None:
        """A trial reported a result."""

    def trial_completed(self, trials: list, trial) -> None:
        """A trial ended (before Ray sets its status to TERMINATED)."""

    def trial_errored(self, trials: list, trial) -> None:
        """A trial failed past its retries."""

    def step_ended(self, trials: list) -> None:
        """One turn of Ray's control loop ended (many times a second)."""

    def experiment_ended(self, trials: list) -> None:
        """The search ended; Ray has written and copied its final snapshot."""

    def saved_state(self) -> dict[str, Any] | None:
        """What to save with Ray's snapshot (None: nothing)."""
        return None

    def restore_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`saved_state` returned, on resume."""

    # ---------------------------------------------------------- Ray 2.60's hooks
    def setup(self, **info: Any) -> None:
        self.started()

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.trial_started(trials, trial)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        self.trial_result(trials, trial, result)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.trial_completed(trials, trial)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.trial_errored(trials, trial)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.step_ended(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.experiment_ended(trials)

    def get_state(self) -> dict | None:
        return self.saved_state()

    def set_state(self, state: dict) -> None:
        self.restore_state(state)
