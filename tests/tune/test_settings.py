"""Search settings are checked before anything is written or started."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nerkit.cli import build_app
from tune.settings import SearchSettings


@pytest.mark.parametrize("kwargs, needle", [
    ({"seed": -1}, r"seed is -1, but must be an integer in \[0, 2\*\*32\)"),
    ({"storage": "file:///x"}, "a URI must start with one of"),
    ({"storage": "http://host/x"}, "a URI must start with one of"),
    ({"storage": " "}, "storage is ' ', but must be a directory or a URI"),
    ({"cpus_per_trial": float("inf")}, "cpus_per_trial is inf, but must be a finite number"),
    ({"max_epochs": float("inf")}, "max_epochs is inf, but must be a finite number or unset"),
    ({"reduction_factor": -2.0}, "reduction_factor is -2.0"),
    # The space's rule (>= 2): accepted here, it failed later naming budget.reduction_factor.
    ({"reduction_factor": 1.5}, r"reduction_factor is 1.5, but must be >= 2"),
    ({"startup_trials": 0}, r"startup_trials is 0, but must be an integer >= 1 or unset"),
    # Types, for callers of the library (benchmarks, pipelines): "no" read as true, and
    # 1.5 retries or "1" CPU passed or failed on `<` with a TypeError naming no setting.
    ({"baselines": "no"}, "baselines is 'no', but must be true or false"),
    ({"max_failures": 1.5}, "max_failures is 1.5, but must be an integer"),
    ({"max_concurrent": 2.5}, r"max_concurrent is 2.5, but must be an integer or unset"),
    ({"cpus_per_trial": "1"}, "cpus_per_trial is '1', but must be a finite number"),
    ({"trials": True}, "trials is True, but must be an integer"),
])
def test_bad_settings_are_refused(kwargs, needle):
    # A bad seed used to pass here and fail inside Optuna after search.json was written,
    # using up the name; a file:// storage became a local folder named "file:".
    with pytest.raises(ValueError, match=needle):
        SearchSettings(name="s", space="x.yaml", **kwargs)


def test_resume_refuses_options_it_would_ignore(tmp_path):
    # A resumed search runs on its saved settings: --trials beside --resume is an error,
    # not silently dropped.
    result = CliRunner().invoke(build_app(), ["search", "--resume", "s", "--trials", "50", "--storage", str(tmp_path)])
    assert result.exit_code != 0
    assert "--resume s continues the search with its saved settings, but --trials was given" in str(result.exception)


def test_local_model_and_data_paths_are_stored_absolute(tmp_path, monkeypatch):
    # Trials run in their own directories and search.json is read from anywhere: a
    # relative path typed on the command line must not be stored as typed. Hub names
    # and paths that do not exist here stay as given.
    from nerkit.data import DataConfig
    from tune.settings import SearchSettings

    (tmp_path / "tiny").mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    s = SearchSettings(name="s", space="x.yaml", model="tiny", data=DataConfig(path="data", test="elsewhere.jsonl"))
    assert s.model == str(tmp_path / "tiny") and s.data.path == str(tmp_path / "data")
    assert s.data.test == "elsewhere.jsonl"
    assert SearchSettings(name="s", space="x.yaml", model="bert-base-cased").model == "bert-base-cased"


def test_an_unknown_uri_scheme_is_refused_by_every_reader():
    from tune.settings import experiment_path

    with pytest.raises(ValueError, match="a URI must start with one of"):
        experiment_path("s1", "foo://bucket/x")


def test_max_epochs_below_the_spaces_grace_names_the_flag_to_add(tmp_path):
    # `--max-epochs 0.25` with default.yaml's half-epoch grace: the error says which flag fixes it.
    from tune.driver import plan_search
    from tune.space import resolve_space

    s = SearchSettings(name="s", space=str(resolve_space("default")), storage=str(tmp_path), max_epochs=0.25)
    with pytest.raises(ValueError, match=r"the space's grace period, 0.5 is above --max-epochs 0.25 .* "
                                         r"pass --grace-epochs 0.25 or less too"):
        plan_search(s)
    with pytest.raises(ValueError, match=r"--grace-epochs 3 is above --max-epochs 2 .* lower --grace-epochs to 2"):
        plan_search(SearchSettings(name="s", space=s.space, storage=str(tmp_path), max_epochs=2, grace_epochs=3))
    with pytest.raises(ValueError, match=r"--grace-epochs 5 is above the space's budget, 4 epochs .* "
                                         r"or raise --max-epochs to 5"):
        plan_search(SearchSettings(name="s", space=s.space, storage=str(tmp_path), grace_epochs=5))
    assert plan_search(SearchSettings(name="s", space=s.space, storage=str(tmp_path), max_epochs=0.25,
                                      grace_epochs=0.25)).space.budget.max_epochs == 0.25


def _default_space_evaluating(tmp_path: Path, k: int, grace: float) -> str:
    """default.yaml with its trials evaluating ``k`` times per epoch and ASHA's grace ``grace``."""
    import yaml

    from tune.space import resolve_space

    values = yaml.safe_load(resolve_space("default").read_text())
    values["base"]["evals_per_epoch"] = k
    values["budget"]["grace_epochs"] = grace
    path = tmp_path / f"evals{k}_grace{grace:g}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return str(path)


def test_the_collapse_guard_with_evaluations_at_other_epochs_per_trial_is_refused(tmp_path):
    # The guard counts grace and patience in evaluations. Every 50 steps with batch_size
    # searched, its earliest stop fell at epoch 0.6 for batch 8 and 2.4 for batch 32: inside
    # the first epoch default.yaml says is never judged. Refused at the guard's line; with
    # the guard off, or the batch size fixed, the space loads.
    import yaml

    from tune.space import resolve_space
    from tune.space_file import load_space

    values = yaml.safe_load(resolve_space("default").read_text())
    values["base"] = {**{k: v for k, v in values["base"].items() if k != "evals_per_epoch"}, "eval_every_steps": 50}
    values["budget"]["grace_epochs"] = 1
    path = tmp_path / "steps.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("collapse_guard:"))
    with pytest.raises(ValueError, match=rf"steps.yaml:{line}: collapse_guard: the collapse guard counts grace and "
                                         r"patience in evaluations, but trials evaluate every 50 steps and batch_size "
                                         r"is searched.*Fix: evaluate by epochs"):
        load_space(path)
    fixed = {**values, "params": {k: v for k, v in values["params"].items() if k != "batch_size"}}
    path.write_text(yaml.safe_dump(fixed, sort_keys=False))
    assert load_space(path).guard.enabled
    values["collapse_guard"]["enabled"] = False
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    assert not load_space(path).guard.enabled


def test_a_grace_period_below_one_epoch_needs_an_evaluation_there(tmp_path):
    # ASHA's first rung at half an epoch means nothing if trials evaluate once per epoch
    # (it would judge them at epoch 1): refused, naming the base setting that fixes it;
    # in the space file at the grace period's line, and on the command line by its flag.
    from tune.driver import plan_search
    from tune.space_file import load_space

    bad = _default_space_evaluating(tmp_path, 1, 0.5)
    line = next(i for i, text in enumerate(Path(bad).read_text().splitlines(), 1) if "grace_epochs:" in text)
    with pytest.raises(ValueError, match=rf"evals1_grace0.5.yaml:{line}: budget.grace_epochs: grace_epochs is 0.5, "
                                         r"but trials evaluate first at epoch 1 .* Fix: set `evals_per_epoch: 2` "
                                         r"\(or more\) under base, or grace_epochs: 1"):
        load_space(bad)
    once = _default_space_evaluating(tmp_path, 1, 1)
    with pytest.raises(ValueError, match=r"--grace-epochs is 0.5, but trials evaluate first at epoch 1 .*"
                                         r"base.evals_per_epoch: 2 or more"):
        plan_search(SearchSettings(name="s", space=once, storage=str(tmp_path), grace_epochs=0.5))
    plan = plan_search(SearchSettings(name="s", space=once, storage=str(tmp_path)))
    assert (plan.space.budget.grace_epochs, plan.base.evals_per_epoch) == (1, 1)
    halves = _default_space_evaluating(tmp_path, 2, 0.5)
    plan = plan_search(SearchSettings(name="s", space=halves, storage=str(tmp_path)))
    assert (plan.space.budget.grace_epochs, plan.base.evals_per_epoch) == (0.5, 2)
    with pytest.raises(ValueError, match=r"--grace-epochs is 0.25, .* base.evals_per_epoch: 4 or more"):
        plan_search(SearchSettings(name="s", space=halves, storage=str(tmp_path), grace_epochs=0.25))


def test_a_search_that_is_not_there_lists_the_ones_that_are(tmp_path):
    # `--resume nosuch` (or trials/report/promote of a typo) names the searches in storage.
    from tune.settings import experiment_path, read_settings

    for name in ("sweep-a", "sweep-b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "search.json").write_text("{}")
    (tmp_path / "not-a-search").mkdir()
    with pytest.raises(ValueError, match=r"no search.json.*searches in .*: sweep-a, sweep-b\)"):
        read_settings(experiment_path("sweep-c", str(tmp_path)))


def test_a_search_killed_before_it_was_set_up_says_to_start_it_again(tmp_path):
    # SIGKILL before search.json was written leaves the driver's lock file alone; --resume
    # said "not a nerkit search", as if the name were mistyped.
    from tune.driver_lock import LOCK_FILE
    from tune.settings import experiment_path, read_settings

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / LOCK_FILE).write_text("")
    with pytest.raises(ValueError, match=r"the search 't' was stopped before it was set up .* nothing to continue; "
                                         rf"start it again with: nerkit search --name t --storage {tmp_path} "):
        read_settings(experiment_path("t", str(tmp_path)))


@pytest.mark.parametrize("name", ["", "../other", "a/b", ".hidden"])
def test_readers_refuse_a_name_no_search_can_have(name):
    # `nerkit trials ''` listed the storage's parent as if it were the search; `../x` read
    # a directory outside the storage. Every reader goes through experiment_path.
    from tune.settings import experiment_path

    with pytest.raises(ValueError, match="search name is"):
        experiment_path(name, "runs")


def test_a_trailing_slash_names_the_same_search():
    # A shell completes a directory name with "/": `nerkit trials demo/` reads demo.
    from tune.settings import experiment_path

    assert experiment_path("demo/", "/r") == experiment_path("demo", "/r") == "/r/demo"


@pytest.mark.parametrize(("storage", "path"), [
    # An endpoint or region in the query stays after the path: the name went into it.
    ("s3://b/runs?region=us-east-1", "s3://b/runs/demo?region=us-east-1"),
    ("s3://b/runs/?endpoint_override=127.0.0.1:9000&scheme=http",
     "s3://b/runs/demo?endpoint_override=127.0.0.1:9000&scheme=http"),
    ("gs://b/runs", "gs://b/runs/demo"),
])
def test_a_search_lives_under_its_storage_with_the_storages_query_kept(storage, path):
    from tune.settings import experiment_path

    assert experiment_path("demo", storage) == path


def test_local_storage_reached_through_a_symlink_is_kept_as_given(tmp_path):
    # Resolved, a shared mount reached through a link became the head's own mount point, which
    # other nodes may not have (nerkit.paths.local_absolute keeps links too).
    from tune.settings import experiment_path

    (tmp_path / "real-mount").mkdir()
    (tmp_path / "nfs").symlink_to(tmp_path / "real-mount")
    assert experiment_path("demo", str(tmp_path / "nfs")) == str(tmp_path / "nfs" / "demo")


def test_more_than_one_gpu_per_trial_is_refused_for_a_new_search():
    # A trial trains on one device: a second GPU would sit reserved and idle. A search
    # recorded before this was refused still loads, so it can be resumed.
    from tune.driver import plan_search
    from tune.settings import SearchSettings
    from tune.space import resolve_space

    with pytest.raises(ValueError, match=r"gpus_per_trial is 2, but a trial trains on one GPU: give at most 1"):
        plan_search(SearchSettings(name="x", space=str(resolve_space("default")), gpus_per_trial=2))
    assert SearchSettings.from_dict({"name": "x", "space": "d.yaml", "gpus_per_trial": 2}).gpus_per_trial == 2
    assert plan_search(SearchSettings(name="x", space=str(resolve_space("default")), gpus_per_trial=0.5))


def test_a_cut_off_search_json_is_named_with_the_copy_to_put_back(finished_search, tmp_path):
    # trials, report and promote printed only "Expecting ',' delimiter: line 10 column 28".
    import shutil

    from tune.settings import read_settings
    from tune.state_backup import BACKUP_DIR

    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    whole = (exp / "search.json").read_text()
    (exp / "search.json").write_text(whole[:200])
    with pytest.raises(ValueError, match=rf"{exp}/search.json is cut off or damaged .*copy the last whole copy, "
                                         rf"{exp}/{BACKUP_DIR}/.*/search.json, over it"):
        read_settings(str(exp))
    shutil.rmtree(exp / BACKUP_DIR)
    with pytest.raises(ValueError, match=r"there is no copy of it in .*start a new search under another --name"):
        read_settings(str(exp))


def test_paths_given_as_path_objects_are_the_paths_they_name(tmp_path):
    # A pipeline calling the library passes pathlib.Path: taken as the path, not refused
    # as "not a string" (and stored as a string, so search.json reads back the same).
    s = SearchSettings(name="s", space=Path("x.yaml"), storage=tmp_path)
    assert s.space == "x.yaml" and s.storage == str(tmp_path)
    assert SearchSettings.from_dict(s.to_dict()) == s
