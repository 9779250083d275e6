"""tune.ray_hooks: Ray's Callback hooks reach nerkit's events, and Ray still has those hooks."""

from __future__ import annotations

import inspect

from ray.tune import Callback

from tune.ray_hooks import SearchCallback

RAY_HOOKS = {  # the hooks SearchCallback maps, with the arguments Ray passes before **info
    "setup": [],
    "on_trial_start": ["iteration", "trials", "trial"],
    "on_trial_result": ["iteration", "trials", "trial", "result"],
    "on_trial_complete": ["iteration", "trials", "trial"],
    "on_trial_error": ["iteration", "trials", "trial"],
    "on_step_end": ["iteration", "trials"],
    "on_experiment_end": ["trials"],
}


def test_rays_callback_still_has_the_hooks_mapped():
    # A Ray upgrade that renames a hook or reorders its arguments fails here, not by a
    # callback that silently stops being called in a search.
    for name, args in RAY_HOOKS.items():
        params = [p.name for p in inspect.signature(getattr(Callback, name)).parameters.values()
                  if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"]
        assert params[: len(args)] == args, (name, params)
    assert callable(Callback.get_state) and callable(Callback.set_state)


class _Recorder(SearchCallback):
    def __init__(self):
        self.seen = []

    def started(self):
        self.seen.append(("started",))

    def trial_started(self, trials, trial):
        self.seen.append(("trial_started", trials, trial))

    def trial_result(self, trials, trial, result):
        self.seen.append(("trial_result", trials, trial, result))

    def trial_completed(self, trials, trial):
        self.seen.append(("trial_completed", trials, trial))

    def trial_errored(self, trials, trial):
        self.seen.append(("trial_errored", trials, trial))

    def step_ended(self, trials):
        self.seen.append(("step_ended", trials))

    def experiment_ended(self, trials):
        self.seen.append(("experiment_ended", trials))

    def saved_state(self):
        return {"n": len(self.seen)}

    def restore_state(self, state):
        self.seen.append(("restored", state))


def test_each_ray_hook_reaches_its_event_as_ray_calls_it():
    cb, trials, result = _Recorder(), ["t0", "t1"], {"dev_f1": 0.5}
    cb.setup(stop=None, num_samples=2, total_num_samples=2, metric="dev_f1")
    cb.on_trial_start(iteration=3, trials=trials, trial="t1")
    cb.on_trial_result(iteration=3, trials=trials, trial="t1", result=result)
    cb.on_trial_complete(iteration=4, trials=trials, trial="t1")
    cb.on_trial_error(iteration=4, trials=trials, trial="t0")
    cb.on_step_end(iteration=5, trials=trials)
    cb.on_experiment_end(trials=trials)
    assert cb.get_state() == {"n": 7}
    cb.set_state({"n": 1})
    assert cb.seen == [("started",), ("trial_started", trials, "t1"), ("trial_result", trials, "t1", result),
                       ("trial_completed", trials, "t1"), ("trial_errored", trials, "t0"), ("step_ended", trials),
                       ("experiment_ended", trials), ("restored", {"n": 1})]


def test_events_not_overridden_do_nothing_and_save_nothing():
    # Ray skips a callback whose get_state is None: one without state adds nothing to snapshots.
    cb = SearchCallback()
    cb.on_trial_result(0, [], "t", {})
    cb.on_experiment_end([])
    assert cb.get_state() is None
