"""tune.driver: what it refuses before any Ray starts, and the searcher it builds."""

from __future__ import annotations

import pytest


def test_an_unusable_address_is_refused_before_the_data_is_prepared(monkeypatch):
    # A ray:// address used to be refused only after the whole corpus was tokenised.
    import tune.driver
    from tune.settings import SearchSettings
    from tune.space import resolve_space

    def prepare(*_a, **_k):
        raise AssertionError("the data was read before the address check")

    monkeypatch.setattr(tune.driver, "load_dataset", prepare)
    with pytest.raises(ValueError, match="Ray Client"):
        tune.driver.run_search(SearchSettings(name="s", space=str(resolve_space("default"))), "ray://head:10001")


def test_each_trial_reserves_its_cpus_and_only_a_gpu_share_it_asks_for():
    # Ray places trials by these resources: a CPU search must not ask for a GPU (it would
    # never start on a CPU cluster), and --gpus-per-trial 0.25 must put four trials on a GPU.
    from tune.driver import trial_resources
    from tune.settings import SearchSettings

    cpu_only = SearchSettings(name="s", space="default", cpus_per_trial=2)
    gpu_share = SearchSettings(name="s", space="default", cpus_per_trial=2, gpus_per_trial=0.25)
    assert trial_resources(cpu_only) == {"cpu": 2}
    assert trial_resources(gpu_share) == {"cpu": 2, "gpu": 0.25}


def test_the_searcher_is_seeded_multivariate_tpe_with_constant_liar(tmp_path):
    # What the README promises of the searcher: TPE, seeded by --seed, modelling parameters
    # jointly (o_weight × entity_boost), with running trials as pessimistic observations so
    # parallel slots do not sample one point, behind a limit of the slots there are.
    import os

    import optuna

    from tune.driver import _searcher, plan_search
    from tune.settings import SearchSettings
    from tune.space import DEFAULT_SPACE

    made = []

    def sampler(seed: int, trials: int, startup: int | None = None):
        made.append(seed)
        settings = SearchSettings(name=f"s{len(made)}", space=str(DEFAULT_SPACE), storage=str(tmp_path),
                                  trials=trials, seed=seed, max_concurrent=3, startup_trials=startup)
        os.makedirs(settings.experiment_path)  # where run_search keeps the study
        limiter = _searcher(plan_search(settings), "id")
        assert limiter.max_concurrent == 3
        return limiter.searcher._sampler

    tpe = sampler(7, 24)
    assert isinstance(tpe, optuna.samplers.TPESampler)
    assert tpe._multivariate and tpe._constant_liar and tpe._n_startup_trials == 8
    assert sampler(7, 6)._n_startup_trials == 4 and sampler(7, 90)._n_startup_trials == 10
    assert sampler(7, 24, startup=3)._n_startup_trials == 3  # --startup-trials overrides the rule
    draws = [sampler(seed, 24)._rng.rng.random_sample() for seed in (7, 7, 8)]
    assert draws[0] == draws[1] != draws[2]


def test_a_search_that_fails_before_starting_leaves_no_directory(tmp_path, tiny_model_dir):
    # Bad data is refused before Ray starts; the experiment directory the driver made for
    # its lock goes with it, so the name is free and no empty search is listed.
    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.settings import SearchSettings
    from tune.space import DEFAULT_SPACE

    settings = SearchSettings(name="bad", space=str(DEFAULT_SPACE), storage=str(tmp_path), trials=2,
                              model=str(tiny_model_dir), data=DataConfig(path=str(tmp_path / "missing.jsonl")))
    with pytest.raises((ValueError, FileNotFoundError)):
        run_search(settings)
    assert not (tmp_path / "bad").exists()


def test_a_search_on_data_without_a_test_split_is_warned_about_before_it_runs(tmp_path, small_data_dir, caplog):
    # Promotion scores a search's model on test and refuses without one: that was said only
    # after the whole search had run, and no option of promote could add the split.
    import shutil

    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.settings import SearchSettings
    from tune.space import DEFAULT_SPACE

    data = tmp_path / "data"
    shutil.copytree(small_data_dir, data)
    (test_file,) = data.glob("test.*")
    test_file.unlink()
    settings = SearchSettings(name="s", space=str(DEFAULT_SPACE), storage=str(tmp_path / "runs"),
                              data=DataConfig(path=str(data)), model=str(tmp_path / "nosuch"))
    # Said before Ray starts: here the search stops at the model path, right after.
    with caplog.at_level("WARNING", logger="tune.driver"), pytest.raises(ValueError, match="nosuch"):
        run_search(settings)
    assert "the data has no test split, so `nerkit promote` will refuse every model of this search" in caplog.text


def test_the_data_is_tokenised_while_ray_starts_and_either_failure_is_reported(tiny_model_dir, small_data_dir,
                                                                              tmp_path):
    # The tokenizer's load (transformers' and torch's imports) runs beside Ray's start, not
    # after it. A model path that does not exist is refused before Ray starts; Ray's failure
    # is the one raised when both fail; a tokenizer that will not load is still reported.
    import threading

    from nerkit.config import TrainConfig
    from nerkit.data import DataConfig, load_dataset
    from tune.driver import _tokenise_while

    base = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)))
    dataset = load_dataset(base.data)
    seen = []
    prepared = _tokenise_while(lambda: seen.append({t.name for t in threading.enumerate()}), dataset, base)
    assert any(name.startswith("nerkit-tokenise") for name in seen[0])
    assert prepared.fingerprint == dataset.fingerprint and len(prepared.train.input_ids) == 160

    def ray_fails():
        raise RuntimeError("no raylet")

    starts = []
    with pytest.raises(ValueError, match="does not exist"):
        _tokenise_while(lambda: starts.append(1), dataset, base.with_overrides(model=str(tmp_path / "no-model")))
    assert starts == []
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (damaged / "tokenizer.json").write_text((tiny_model_dir / "tokenizer.json").read_text()[:1000])
    with pytest.raises(RuntimeError, match="no raylet"):
        _tokenise_while(ray_fails, dataset, base.with_overrides(model=str(damaged)))
    with pytest.raises(ValueError, match="could not load the model"):
        _tokenise_while(lambda: starts.append(1), dataset, base.with_overrides(model=str(damaged)))
    assert starts == [1]


def test_trials_flag_collapse_at_the_guards_eps(tmp_path):
    # A space's guard stopped a trial at ratio 0.27 (eps 0.3) while every history row said
    # collapsed=False: the trials flagged collapse at TrainConfig's default 0.005.
    from tune.driver import plan_search
    from tune.settings import SearchSettings

    space = tmp_path / "space.yaml"
    space.write_text("collapse_guard: {eps: 0.3}\nparams:\n  o_weight: {type: uniform, low: 0.1, high: 0.5}\n")
    plan = plan_search(SearchSettings(name="e", space=str(space), storage=str(tmp_path)))
    assert plan.base.collapse_eps == 0.3 == plan.space.guard.eps


def test_a_resumed_plan_is_the_plan_the_search_started_with(tmp_path):
    # search.json (JSON: lists for tuples) rebuilds the very plan, conditional and choice
    # parameters, guard, budget and baselines included: resume runs on it.
    import json

    from tune.driver import plan_from_record, plan_search
    from tune.settings import SearchSettings
    from tune.space import resolve_space

    plan = plan_search(SearchSettings(name="p", space=str(resolve_space("default")), storage=str(tmp_path)))
    assert any(p.when for p in plan.space.params) and any(p.values for p in plan.space.params)
    record = json.loads(json.dumps(plan.to_record(), default=str))
    again = plan_from_record(record)
    assert (again.space, again.base, again.settings) == (plan.space, plan.base, plan.settings)


def test_a_resume_of_a_directory_that_is_no_search_leaves_it_as_it_was(tmp_path):
    # No search.json: nothing to hold, so no lock file is left in someone's directory.
    from tune.driver import resume_search

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises((ValueError, FileNotFoundError)):
        resume_search("notes", str(tmp_path))
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["a.txt"]


def test_a_lock_won_on_a_removed_lock_file_is_taken_again_on_the_new_one(tmp_path, monkeypatch):
    # A driver that failed before its search began removes its directory, lock file
    # included, while it holds the lock. Another driver that opened the old file just before
    # then locks a file no one else will open: it must lock the file at the path instead.
    import fcntl
    import os
    import shutil

    from tune.driver_lock import LOCK_FILE, driver_lock

    exp = tmp_path / "s"
    real_flock, removed = fcntl.flock, []

    def flock_after_removal(f, op):
        if not removed and op & fcntl.LOCK_EX:
            removed.append(True)
            shutil.rmtree(exp)  # the failed driver's clean-up, between this one's open and lock
        return real_flock(f, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_removal)
    with driver_lock(str(exp), "s"):
        assert removed and (exp / LOCK_FILE).is_file()
        held = os.stat(exp / LOCK_FILE).st_ino
        with open(exp / LOCK_FILE) as other, pytest.raises(BlockingIOError):
            real_flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the file at the path is the one held
    assert os.stat(exp / LOCK_FILE).st_ino == held


def test_a_new_search_under_an_ended_searchs_name_is_pointed_to_its_tables(finished_search):
    # "continue it with --resume" sent the user to a resume that only printed the ended
    # search's summary again (after starting Ray).
    from tune.driver import run_search
    from tune.settings import SearchSettings
    from tune.space import DEFAULT_SPACE

    settings = SearchSettings(name=finished_search.name, space=str(DEFAULT_SPACE), storage=finished_search.storage)
    with pytest.raises(ValueError, match=r"already exists at .* and has ended \(every trial did\); read it with "
                                         rf"`nerkit trials {finished_search.name} --storage "):
        run_search(settings)


def test_a_search_whose_driver_has_not_written_its_settings_yet_is_starting_not_missing(tmp_path):
    # For the seconds between a driver taking its search and writing search.json (data
    # checked and tokenised, Ray started), `nerkit trials` said it was no nerkit search.
    from tune.driver_lock import driver_lock
    from tune.settings import read_settings

    exp = str(tmp_path / "s")
    with driver_lock(exp, "s"):
        with pytest.raises(ValueError, match=r"the search is starting \(its driver: pid \d+ on .*\) and has not "
                                             r"written search.json yet; try again in a few seconds"):
            read_settings(exp)
    # Its driver gone with no search.json written (killed): nothing to continue.
    with pytest.raises(ValueError, match="the search 's' was stopped before it was set up"):
        read_settings(exp)


def test_a_reader_probing_the_lock_does_not_make_a_starting_driver_refuse(tmp_path):
    # `nerkit trials` asks who holds a starting search (a shared lock for a moment); a driver
    # taking its lock in that moment refused to start, as if another driver ran the search.
    import fcntl
    import threading

    from tune.driver_lock import LOCK_FILE, driver_lock

    exp = tmp_path / "s"
    exp.mkdir()
    (exp / LOCK_FILE).write_text("")
    held, release = threading.Event(), threading.Event()

    def probe():
        with open(exp / LOCK_FILE, encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            held.set()
            release.wait(0.1)  # a slow probe (NFS): 0.1 s
            fcntl.flock(f, fcntl.LOCK_UN)

    reader = threading.Thread(target=probe)
    reader.start()
    held.wait(5)
    try:
        with driver_lock(str(exp), "s"):
            assert "pid" in (exp / LOCK_FILE).read_text()
    finally:
        release.set()
        reader.join()


def test_a_new_search_under_a_name_whose_record_is_unreadable_is_still_refused_in_one_line(tmp_path):
    # Telling an ended search from one to resume reads its tables; a record they cannot
    # interpret (older, or edited by hand) turned the refusal into a KeyError traceback.
    import json

    from tune.driver import run_search
    from tune.settings import SearchSettings
    from tune.space import DEFAULT_SPACE

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "search.json").write_text(json.dumps({"settings": {"trials": 4}, "space": {"params": []}}))
    with pytest.raises(ValueError, match=r"search 's' already exists at .*; continue it with `nerkit search --resume s"):
        run_search(SearchSettings(name="s", space=str(DEFAULT_SPACE), storage=str(tmp_path)))
