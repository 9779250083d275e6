"""tune.study_store: where the Optuna study lives, and its copies on object storage (a real
S3 endpoint: moto's server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pyarrow.fs as pafs
import pytest

from tune.storage import filesystem, write_bytes
from tune.study_store import (
    SEARCH_ID_ATTR, copy_study, is_whole, live_study_url, local_study_path, make_room_for_new_study,
    mark_study, newest_copy, sqlite_url, study_for_reading, study_for_resume,
)


def _study(path: Path, trials: int, search_id: str | None = "S") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if search_id is None:
        optuna.create_study(study_name="r", storage=sqlite_url(path), direction="maximize")
    else:
        mark_study(sqlite_url(path), "r", search_id)
    study = optuna.load_study(study_name="r", storage=sqlite_url(path))
    for i in range(trials):
        study.add_trial(optuna.trial.create_trial(params={"x": float(i)}, value=float(i),
                                                  distributions={"x": optuna.distributions.FloatDistribution(0, 99)}))
    return path


def _put_copy(exp: str, study: Path, session: str = "2026-01-01_00-00-00") -> None:
    fs, path = filesystem(exp)
    fs.create_dir(path, recursive=True)
    write_bytes(f"{path}/optuna-study-{session}.db", study.read_bytes(), fs)


def _trials(url: str) -> int:
    return len(optuna.load_study(study_name="r", storage=url).trials)


def test_the_local_study_of_a_remote_search_is_keyed_by_its_storage(tmp_path, monkeypatch):
    # Two searches named alike on two storages used to share ~/.cache/nerkit/optuna/NAME.db:
    # the second one's TPE learnt from the first one's trials.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path))
    a, b = local_study_path("s3://one/runs/demo"), local_study_path("s3://two/runs/demo")
    assert a != b and a.parent == b.parent == tmp_path / "optuna" and a.name.startswith("demo-")
    assert local_study_path("s3://one/runs/demo/") == a
    assert live_study_url("/data/runs/demo") == "sqlite:////data/runs/demo/optuna.db"  # local: in the experiment


def test_a_new_search_sets_aside_the_study_of_an_earlier_one_with_its_name_and_storage(tmp_path, monkeypatch):
    # The earlier experiment was deleted from storage, its study stayed on this disk: a new
    # search of the same name must start from an empty study, and the old one is kept.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path))
    exp = "s3://bucket/runs/demo"
    old = _study(local_study_path(exp), 3)
    make_room_for_new_study(exp)
    assert not old.exists()
    (aside,) = old.parent.glob(f"{old.name}.earlier-search-*")
    assert _trials(sqlite_url(aside)) == 3


def test_sqlite_copies_cut_off_in_transfer_are_not_whole(tmp_path):
    src = _study(tmp_path / "live.db", 5)
    copy_study(src, tmp_path / "copy.db")
    data = (tmp_path / "copy.db").read_bytes()
    assert is_whole(data) and _trials(sqlite_url(tmp_path / "copy.db")) == 5
    assert not any(is_whole(data[:n]) for n in (0, 50, 100, len(data) - 1, len(data) // 2))
    assert not is_whole(b"{}") and not is_whole(b"\x80\x04.")


def test_resume_takes_the_study_copy_when_this_machine_has_none(s3_storage, tmp_path, monkeypatch):
    # A new head node (or another laptop): the study comes from the copy Ray uploaded with
    # its snapshot, put where this machine keeps the live study.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "new-machine"))
    exp = f"{s3_storage}/r"
    _put_copy(exp, _study(tmp_path / "dead-machine.db", 4))
    url = study_for_resume(exp, {"search_id": "S"})
    assert url == live_study_url(exp) and _trials(url) == 4


def test_resume_keeps_a_local_study_that_is_ahead_and_sets_aside_one_that_is_behind(
        s3_storage, tmp_path, monkeypatch):
    # The machine that ran the search holds the study as it was when the driver died,
    # ahead of the last snapshot's copy: that one resumes. A local study behind the copy
    # (the search went on elsewhere) gives way to the copy, and is kept.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "cache"))
    exp = f"{s3_storage}/r"
    _put_copy(exp, _study(tmp_path / "copy.db", 3))
    local = _study(local_study_path(exp), 4)
    assert study_for_resume(exp, {"search_id": "S"}) == sqlite_url(local) and _trials(sqlite_url(local)) == 4
    _put_copy(exp, _study(tmp_path / "later.db", 6), session="2026-01-02_00-00-00")  # a later session's copy
    assert newest_copy(exp).endswith("optuna-study-2026-01-02_00-00-00.db")
    assert _trials(study_for_resume(exp, {"search_id": "S"})) == 6
    (behind,) = local.parent.glob(f"{local.name}.behind-*")
    assert _trials(sqlite_url(behind)) == 4


def test_resume_never_takes_another_searchs_study(s3_storage, tmp_path, monkeypatch):
    # A study left by an earlier search of this name and storage (its id differs) is set
    # aside, however many trials it has; with no copy either, resume says where it looked.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "cache"))
    exp = f"{s3_storage}/r"
    local = _study(local_study_path(exp), 9, search_id="OTHER")
    with pytest.raises(ValueError, match=r"neither on this machine .* nor copied to storage"):
        study_for_resume(exp, {"search_id": "S"})
    (aside,) = local.parent.glob(f"{local.name}.other-search-*")
    assert _trials(sqlite_url(aside)) == 9
    _put_copy(exp, _study(tmp_path / "copy.db", 2))
    assert _trials(study_for_resume(exp, {"search_id": "S"})) == 2


def test_resume_of_a_search_from_before_study_copies_uses_the_recorded_study(s3_storage, tmp_path, monkeypatch):
    # search.json of an older nerkit: no search id, the study at the path it recorded.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "cache"))
    old = _study(tmp_path / "old-cache" / "r.db", 3, search_id=None)
    assert study_for_resume(f"{s3_storage}/r", {"optuna_storage": sqlite_url(old)}) == sqlite_url(old)


def test_reading_a_remote_study_falls_back_to_the_copy_on_storage(s3_storage, tmp_path, monkeypatch):
    # `nerkit report` on a machine that did not run the search reads the copy.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "cache"))
    exp = f"{s3_storage}/r"
    assert study_for_reading(exp, {}, tmp_path) is None
    _put_copy(exp, _study(tmp_path / "copy.db", 3))
    url = study_for_reading(exp, {}, tmp_path)
    assert url.startswith(f"sqlite:///{tmp_path}") and _trials(url) == 3


def _reporting_trials(exp: str) -> int:
    fs, path = filesystem(exp)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return sum(1 for i in infos if i.base_name == "result.json" and i.size)


@pytest.mark.slow
def test_a_search_on_s3_resumes_on_another_machine_with_its_study(
        s3_storage, tmp_path, monkeypatch, tiny_model_dir, small_data_dir):
    # The driver machine of a search on object storage dies (its disk, and the live study
    # on it, with it). A resume from another machine (another NERKIT_CACHE) takes the study
    # copy Ray uploaded with its snapshot, finishes the search with every trial once, and
    # the study agrees with the trial table.
    from tune.driver import plan_from_record, resume_search, unrecorded_finished_trials
    from tune.importance import param_importances
    from tune.settings import read_settings
    from tune.tables import collect

    env = {**os.environ, "NERKIT_CACHE": str(tmp_path / "dead-machine")}
    cmd = [sys.executable, "-m", "nerkit", "search", "--model", str(tiny_model_dir), "--data", str(small_data_dir),
           "--trials", "6", "--max-epochs", "3", "--storage", s3_storage, "--name", "r", "--json", "--seed", "3"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    exp = f"{s3_storage}/r"
    deadline = time.time() + 240
    while time.time() < deadline and _reporting_trials(exp) < 3 and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, f"search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert newest_copy(exp) is not None  # uploaded with the snapshot, not at the end

    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "new-machine"))
    resume_search("r", s3_storage)
    record = read_settings(exp)
    study_url = live_study_url(exp)
    assert study_url.startswith(f"sqlite:///{tmp_path / 'new-machine'}")
    study = optuna.load_study(study_name="r", storage=study_url)
    assert study.user_attrs[SEARCH_ID_ATTR] == record["search_id"]
    tables = collect(exp)
    ids = [t["trial_id"] for t in tables.trials]
    assert len(ids) == 6 and len(set(ids)) == 6 and all(t["status"] == "TERMINATED" for t in tables.trials)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    lost = unrecorded_finished_trials(plan_from_record(record), exp)
    assert len(complete) == 6 + len(lost)
    assert {(t.params["learning_rate"], t.params["batch_size"]) for t in complete if t.number not in lost} == \
        {(t["param_learning_rate"], t["param_batch_size"]) for t in tables.trials}
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    # The final snapshot's copy on storage is the finished study; a third machine reads it.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "third-machine"))
    importances, notes = param_importances(record, exp)
    assert importances and "learning_rate" in importances, notes
    assert json.loads(json.dumps(record["search_id"])) == record["search_id"]
