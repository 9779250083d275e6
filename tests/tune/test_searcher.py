"""tune.searcher: resuming when the Optuna study is ahead of Ray's last snapshot."""

from __future__ import annotations

import warnings

import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch

from tune.searcher import ResumableOptunaSearch


def _space(trial: optuna.Trial) -> None:
    trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)


def _searcher(cls, url: str):
    return cls(space=_space, metric="dev_f1", mode="max", study_name="s", storage=optuna.storages.RDBStorage(url),
               sampler=optuna.samplers.RandomSampler(seed=0))


@pytest.mark.parametrize("cls", [OptunaSearch, ResumableOptunaSearch])
def test_a_replayed_result_for_a_finished_study_trial(tmp_path, cls):
    # The driver died after the study recorded trial t1 as COMPLETE (0.7) but before
    # Ray's snapshot did; on resume Ray replays t1's last evaluation. Ray's own
    # OptunaSearch raises (which ends the resumed search); ours keeps the study's
    # value and goes on, and the trial's later completion changes nothing either.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(cls, url)
    assert searcher.suggest("t1") is not None
    searcher.on_trial_result("t1", {"dev_f1": 0.4, "training_iteration": 1})
    optuna.load_study(study_name="s", storage=url).tell(0, 0.7)  # what the dead driver wrote

    replay = {"dev_f1": 0.7, "training_iteration": 2}
    if cls is OptunaSearch:
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            searcher.on_trial_result("t1", replay)
        return
    searcher.on_trial_result("t1", replay)
    searcher.on_trial_complete("t1", {"dev_f1": 0.1, "training_iteration": 2})  # a different value is not told
    (trial,) = optuna.load_study(study_name="s", storage=url).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.7
    assert trial.intermediate_values == {1: 0.4}
    # A new trial is still suggested and reported normally.
    assert searcher.suggest("t2") is not None
    searcher.on_trial_result("t2", {"dev_f1": 0.2, "training_iteration": 1})
    assert optuna.load_study(study_name="s", storage=url).trials[1].intermediate_values == {1: 0.2}


def test_a_replayed_step_of_a_running_study_trial_is_ignored_quietly(tmp_path):
    # Resumed from the checkpoint of evaluation 1, the trial reports step 2 again while its
    # study trial is still running: the first value stays, and Optuna's "already
    # reported" warning (expected after every resume) is not shown.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(ResumableOptunaSearch, url)
    searcher.suggest("t1")
    for step, f1 in ((1, 0.3), (2, 0.5)):
        searcher.on_trial_result("t1", {"dev_f1": f1, "training_iteration": step})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        searcher.on_trial_result("t1", {"dev_f1": 0.5, "training_iteration": 2})
    (trial,) = optuna.load_study(study_name="s", storage=url).trials
    assert trial.state == optuna.trial.TrialState.RUNNING and trial.intermediate_values == {1: 0.3, 2: 0.5}
