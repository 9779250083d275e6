"""tune.searcher: resuming when the Optuna study is ahead of Ray's last snapshot."""

from __future__ import annotations

import warnings

import optuna
import pytest
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from tune.searcher import RERUN_OF, ResumableConcurrencyLimiter, ResumableOptunaSearch


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


def test_the_study_learns_each_trials_best_evaluation_not_its_last(tmp_path):
    # A trial that peaked at 0.5 and overfitted to 0.3 ships its 0.5 checkpoint (the trial
    # table ranks by best dev F1), so TPE must learn 0.5 too; Ray's class told it 0.3. A
    # diverged trial's stand-in 0 after real evaluations does not hide them; one that
    # diverged before any is 0. An evaluation redone after a restore counts as redone
    # (0.7, then 0.6), as in the table, though the study keeps the first report.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(ResumableOptunaSearch, url)
    runs = {"peaked": [(0, 0.2), (1, 0.5), (2, 0.3)], "diverged": [(0, 0.4), (1, 0.0, "diverged")],
            "at-once": [(0, 0.0, "diverged")], "redone": [(0, 0.1), (1, 0.7), (1, 0.6)], "rising": [(0, 0.1), (1, 0.6)]}
    for trial_id, reports in runs.items():
        searcher.suggest(trial_id)
        for step, (eval_index, f1, *why) in enumerate(reports, 1):
            result = {"dev_f1": f1, "eval_index": eval_index, "training_iteration": step,
                      **({"stop_reason": why[0]} if why else {})}
            searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result)
    searcher.suggest("failed")
    searcher.on_trial_complete("failed", None, error=True)
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.value for t in trials[:5]] == [0.5, 0.4, 0.0, 0.6, 0.6]
    assert trials[5].state == optuna.trial.TrialState.FAIL


def test_the_evaluation_a_scheduler_stopped_the_trial_at_counts(tmp_path):
    # Ray skips the searcher's on_trial_result for the result its scheduler answers STOP
    # (ASHA at a rung or at the budget, the collapse guard) and passes it to
    # on_trial_complete alone: the study learnt every full-budget trial without its
    # final evaluation, often its best (0.7 here, told as 0.5).
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(ResumableOptunaSearch, url)
    searcher.suggest("t1")
    for step, f1 in enumerate((0.2, 0.5), 1):
        searcher.on_trial_result("t1", {"dev_f1": f1, "eval_index": step - 1, "training_iteration": step})
    searcher.on_trial_complete("t1", {"dev_f1": 0.7, "eval_index": 2, "training_iteration": 3})
    assert optuna.load_study(study_name="s", storage=url).trials[0].value == 0.7


def test_a_trial_trained_again_from_scratch_is_valued_by_its_last_start(tmp_path):
    # Its checkpoint damaged, a trial trains again from evaluation 0 and stops earlier:
    # the abandoned run's 0.9, which the trial table leaves out, was told to the study.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(ResumableOptunaSearch, url)
    searcher.suggest("t1")
    reports = [(0, 0.2), (1, 0.3), (2, 0.9), (0, 0.3)]
    for step, (eval_index, f1) in enumerate(reports, 1):
        searcher.on_trial_result("t1", {"dev_f1": f1, "eval_index": eval_index, "training_iteration": step})
    searcher.on_trial_complete("t1", {"dev_f1": 0.4, "eval_index": 1, "training_iteration": 5})  # pruned here
    assert optuna.load_study(study_name="s", storage=url).trials[0].value == 0.4


def test_an_errored_trial_run_again_on_resume_is_not_logged_at_every_result(tmp_path, caplog):
    # --resume runs errored trials again; Ray's class warned "Received additional result"
    # with the whole result at every report of one. It is said once, and the study trial
    # stays as it was (FAIL: Optuna cannot reopen it).
    import logging

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(ResumableOptunaSearch, url)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", None, error=True)
    with caplog.at_level(logging.INFO):
        for step in (1, 2, 3):
            searcher.on_trial_result("t1", {"dev_f1": 0.1 * step, "eval_index": step - 1, "training_iteration": step})
    said = [r for r in caplog.records if "t1" in r.getMessage()]
    assert len(said) == 1 and "runs again on resume" in said[0].getMessage() and said[0].levelno == logging.INFO
    assert optuna.load_study(study_name="s", storage=url).trials[0].state == optuna.trial.TrialState.FAIL


@pytest.mark.parametrize("limiter", [ConcurrencyLimiter, ResumableConcurrencyLimiter])
def test_an_errored_trial_run_again_on_resume_is_learnt_by_the_study(tmp_path, limiter):
    # --resume runs a trial that ended in error again. Its study trial stays FAIL (Optuna
    # cannot reopen it), so TPE never learnt how the rerun ended: Ray's limiter dropped
    # the completion of a trial no longer live. Now the value it ends with (its best
    # evaluation, as the trial table ranks it) goes in as a new trial with its parameters,
    # once, however often the completion is replayed.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = limiter(_searcher(ResumableOptunaSearch, url), max_concurrent=2)
    config = search.suggest("t1")
    search.on_trial_complete("t1", None, error=True)
    for step, f1 in enumerate((0.3, 0.6), 1):
        search.on_trial_result("t1", {"dev_f1": f1, "eval_index": step - 1, "training_iteration": step})
    final = {"dev_f1": 0.5, "eval_index": 2, "training_iteration": 3}
    search.on_trial_complete("t1", final)
    search.on_trial_complete("t1", final)
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    if limiter is ConcurrencyLimiter:
        assert len(trials) == 1  # Ray's limiter: the rerun is never told
        return
    assert len(trials) == 2
    assert trials[1].state == optuna.trial.TrialState.COMPLETE and trials[1].value == 0.6
    assert trials[1].params == trials[0].params == {"learning_rate": config["learning_rate"]}
    assert trials[1].user_attrs[RERUN_OF] == 0
    # A rerun that fails again adds nothing; one more rerun that completes is learnt once.
    search.suggest("t2")
    search.on_trial_complete("t2", None, error=True)
    search.on_trial_result("t2", {"dev_f1": 0.2, "eval_index": 0, "training_iteration": 1})
    search.on_trial_complete("t2", None, error=True)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 3
    search.on_trial_complete("t2", {"dev_f1": 0.4, "eval_index": 1, "training_iteration": 2})
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert len(trials) == 4 and trials[3].value == 0.4 and trials[3].user_attrs[RERUN_OF] == 2


def test_a_trial_whose_study_trial_failed_while_ray_ran_it_is_learnt_when_it_completes(tmp_path, caplog):
    # Its study trial FAIL while Ray's snapshot still had it running (it erred just before
    # the driver died, or erred unheard and the resume failed its study trial:
    # tune.reconcile), the trial runs again as a live one. Each of its results was a
    # warning about a disagreement "not explained", and its completion was dropped as
    # "already FAIL"; now it is said once, and the value it ends with is learnt.
    import logging

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = ResumableConcurrencyLimiter(_searcher(ResumableOptunaSearch, url), max_concurrent=2)
    search.suggest("t1")
    search.on_trial_result("t1", {"dev_f1": 0.3, "eval_index": 0, "training_iteration": 1})
    optuna.load_study(study_name="s", storage=url).tell(0, state=optuna.trial.TrialState.FAIL)
    with caplog.at_level(logging.INFO):
        for step in (2, 3):
            search.on_trial_result("t1", {"dev_f1": 0.2 * step, "eval_index": step - 1, "training_iteration": step})
    said = [r for r in caplog.records if "t1" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO and "study trial failed" in said[0].getMessage()
    search.on_trial_complete("t1", {"dev_f1": 0.5, "eval_index": 3, "training_iteration": 4})
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert trials[1].value == pytest.approx(0.6) and trials[1].user_attrs[RERUN_OF] == 0


def test_a_searcher_pickled_before_it_kept_evaluations_takes_the_studys_values(tmp_path):
    # Resumed from a searcher state written by an earlier nerkit: the study's intermediate
    # values stand in for the evaluations it did not keep.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(ResumableOptunaSearch, url)
    searcher.suggest("t1")
    for step, f1 in enumerate((0.2, 0.5, 0.3), 1):
        searcher.on_trial_result("t1", {"dev_f1": f1, "eval_index": step - 1, "training_iteration": step})
    del searcher._evaluations
    searcher.on_trial_complete("t1", {"dev_f1": 0.3, "eval_index": 2, "training_iteration": 3})
    assert optuna.load_study(study_name="s", storage=url).trials[0].value == 0.5


def _copy_of_experiment(tmp_path, searcher):
    """Ray's two pickles of a searcher (tuner.pkl's object and its state file), and the
    study, copied to another directory as `cp -r` of an experiment would."""
    import shutil

    import ray.cloudpickle as cloudpickle

    state = tmp_path / "searcher-state-2026-01-01_00-00-00.pkl"
    searcher.save(str(state))
    tuner_bytes = cloudpickle.dumps(searcher)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(tmp_path / "optuna.db", copy / "optuna.db")
    return tuner_bytes, state, copy


def test_a_restored_searcher_opens_the_study_where_it_is_now(tmp_path):
    # A copied experiment (or a search resumed on another machine) must not open the
    # study at the path it was pickled with: a resume of the copy used to write into the
    # original's study. Inside study_location both of Ray's pickles open the given study.
    import ray.cloudpickle as cloudpickle

    from tune.searcher import study_location

    original = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(ResumableOptunaSearch, original)
    searcher.suggest("t1")
    tuner_bytes, state, copy = _copy_of_experiment(tmp_path, searcher)
    moved = f"sqlite:///{copy / 'optuna.db'}"
    with study_location(moved):
        from_tuner = cloudpickle.loads(tuner_bytes)
        from_tuner.restore(str(state))
    assert from_tuner._storage.url == moved
    from_tuner.suggest("t2")  # writes: to the copy's study only
    from_tuner.on_trial_complete("t1", {"dev_f1": 0.5, "training_iteration": 1})
    assert len(optuna.load_study(study_name="s", storage=moved).trials) == 2
    assert [t.state for t in optuna.load_study(study_name="s", storage=original).trials] == \
        [optuna.trial.TrialState.RUNNING]  # untouched
    # Without a location, the pickle opens the URL it was made with, as Ray's class does.
    assert cloudpickle.loads(tuner_bytes)._storage.url == original


def test_searchers_pickled_by_rays_own_class_open_the_study_where_it_is_now(tmp_path):
    # Searches started before study_location existed pickled Ray's OptunaSearch (or an
    # earlier ResumableOptunaSearch): relocated all the same, or resuming one on another
    # machine failed to open the recorded path, or created an empty study there.
    import ray.cloudpickle as cloudpickle

    from tune.searcher import study_location

    searcher = _searcher(OptunaSearch, f"sqlite:///{tmp_path / 'optuna.db'}")
    searcher.suggest("t1")
    tuner_bytes, state, copy = _copy_of_experiment(tmp_path, searcher)
    (tmp_path / "optuna.db").unlink()  # the machine that ran it is gone
    moved = f"sqlite:///{copy / 'optuna.db'}"
    with study_location(moved):
        restored = cloudpickle.loads(tuner_bytes)
        restored.restore(str(state))
    restored.on_trial_complete("t1", {"dev_f1": 0.5, "training_iteration": 1})
    assert [t.state for t in optuna.load_study(study_name="s", storage=moved).trials] == \
        [optuna.trial.TrialState.COMPLETE]
    assert not (tmp_path / "optuna.db").exists()


def test_state_files_written_by_rays_own_searcher_still_restore(tmp_path):
    # Searches started before the storage reference existed saved Ray's plain pickle.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    old = _searcher(OptunaSearch, url)
    old.suggest("t1")
    state = tmp_path / "searcher-state-x.pkl"
    old.save(str(state))
    new = _searcher(ResumableOptunaSearch, url)
    new.restore(str(state))
    assert set(new._ot_trials) == {"t1"} and new._storage.url == url


def test_with_study_copies_each_saved_state_has_the_study_copy_it_names(tmp_path):
    # Object storage: the study is copied beside each saved state (Ray uploads both with
    # one snapshot), and the state holds the copy's hash, which tune.state_check compares.
    import hashlib

    from tune.state_check import disagreements, study_copy_hash
    from tune.study_store import is_whole

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(ResumableOptunaSearch, url)
    searcher._study_copies = True
    searcher.suggest("t1")
    # Ray writes the state under a temporary name, then renames it.
    searcher.save(str(tmp_path / ".abc-tmp-searcher-state-S1.pkl"))
    copy = tmp_path / "optuna-study-S1.db"
    data = copy.read_bytes()
    assert is_whole(data) and not is_whole(data[:-100])
    state = (tmp_path / ".abc-tmp-searcher-state-S1.pkl").read_bytes()
    assert study_copy_hash(state) == hashlib.sha256(data).hexdigest()
    assert [t.number for t in optuna.load_study(study_name="s", storage=f"sqlite:///{copy}").trials] == [0]
    assert disagreements({"searcher-state-S1.pkl": state, "optuna-study-S1.db": data}) == []

    searcher.suggest("t2")
    searcher.save(str(tmp_path / "searcher-state-S1.pkl"))  # the next snapshot
    newer = (tmp_path / "searcher-state-S1.pkl").read_bytes()
    assert copy.read_bytes() != data
    found = disagreements({"searcher-state-S1.pkl": newer, "optuna-study-S1.db": data})  # copy from before
    assert found and "not the study copy" in found[0]
    assert "there is none" in disagreements({"searcher-state-S1.pkl": newer})[0]
