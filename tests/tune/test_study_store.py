"""tune.study_store and tune.study_choice: where the Optuna study lives, its copies on
object storage (a real S3 endpoint: moto's server), and which one a resume uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tune.storage import filesystem, write_bytes
from tune.study_choice import newest_copy, study_for_reading, study_for_resume
from tune.study_store import (
    copy_study, is_whole, live_study_url, local_study_path, make_room_for_new_study, mark_study, set_aside, sqlite_url,
)


def _study(path: Path, trials: int, search_id: str | None = "S") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="r", storage=sqlite_url(path), direction="maximize")
    if search_id is not None:
        mark_study(study, search_id)
    for i in range(trials):
        study.add_trial(optuna.trial.create_trial(params={"x": float(i)}, value=float(i),
                                                  distributions={"x": optuna.distributions.FloatDistribution(0, 99)}))
    return path


def _set_aside(study: Path, why: str) -> str:
    """The URL of the one file ``study`` was set aside as (``<name>.<why>-<time>``)."""
    (aside,) = study.parent.glob(f"{study.name}.{why}-*")
    return sqlite_url(aside)


def _record(search_id: str | None, recorded: str | None = None) -> dict:
    """The parts of search.json the study's place depends on."""
    return {"settings": {"name": "r"}, "search_id": search_id, "optuna_storage": recorded}


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
    assert _trials(_set_aside(old, "earlier-search")) == 3


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
    url = study_for_resume(exp, _record("S"))
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
    assert study_for_resume(exp, _record("S")) == sqlite_url(local) and _trials(sqlite_url(local)) == 4
    _put_copy(exp, _study(tmp_path / "later.db", 6), session="2026-01-02_00-00-00")  # a later session's copy
    assert newest_copy(exp).endswith("optuna-study-2026-01-02_00-00-00.db")
    assert _trials(study_for_resume(exp, _record("S"))) == 6
    assert _trials(_set_aside(local, "behind")) == 4


def test_resume_never_takes_another_searchs_study(s3_storage, tmp_path, monkeypatch):
    # A study left by an earlier search of this name and storage (its id differs) is never
    # resumed, however many trials it has: without a copy resume refuses and moves
    # nothing; with one it takes the copy and sets the other study aside.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "cache"))
    exp = f"{s3_storage}/r"
    local = _study(local_study_path(exp), 9, search_id="OTHER")
    with pytest.raises(ValueError, match=r"belongs to another search .* no copy of this search's study"):
        study_for_resume(exp, _record("S"))
    assert _trials(sqlite_url(local)) == 9
    _put_copy(exp, _study(tmp_path / "copy.db", 2))
    assert _trials(study_for_resume(exp, _record("S"))) == 2
    assert _trials(_set_aside(local, "other-search")) == 9


def test_resume_takes_the_copy_over_a_local_study_that_ran_on_apart(s3_storage, tmp_path, monkeypatch):
    # Machine A died two trials ahead of the copy; the search resumed on B and ran a
    # different trial 3, whose copy is on storage. Back on A, A's study has more trials
    # but is not the search Ray's snapshot knows: the copy wins, A's study is kept aside.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "machine-a"))
    exp = f"{s3_storage}/r"
    local = _study(local_study_path(exp), 5)  # trials 0-4, x = number
    copy = _study(tmp_path / "b.db", 3)
    optuna.load_study(study_name="r", storage=sqlite_url(copy)).add_trial(optuna.trial.create_trial(
        params={"x": 77.0}, value=77.0, distributions={"x": optuna.distributions.FloatDistribution(0, 99)}))
    _put_copy(exp, copy)
    url = study_for_resume(exp, _record("S"))
    assert [t.params["x"] for t in optuna.load_study(study_name="r", storage=url).trials] == [0, 1, 2, 77]
    assert _trials(_set_aside(local, "diverged")) == 5


def test_a_hot_journal_left_by_a_killed_writer_is_rolled_back_not_mistaken(s3_storage, tmp_path, monkeypatch):
    # A driver killed inside an Optuna write leaves a hot journal beside its study. Read
    # only, SQLite refuses such a file, and resume took the study for another search's,
    # set it aside without its journal and resumed from the older copy. It must roll
    # the journal back and resume the local study, which is ahead.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "cache"))
    exp = f"{s3_storage}/r"
    _put_copy(exp, _study(tmp_path / "copy.db", 3))
    local = _study(local_study_path(exp), 5)
    code = (f"import sqlite3, time\ndb = sqlite3.connect({str(local)!r}, isolation_level=None)\n"
            "db.execute('PRAGMA cache_size=1'); db.execute('BEGIN IMMEDIATE')\n"
            "db.execute(\"UPDATE trial_values SET value = value + 1000\")\nprint('writing', flush=True)\n"
            "time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert writer.stdout.readline().strip() == b"writing"
    writer.kill()
    writer.wait()
    assert local.with_name(local.name + "-journal").stat().st_size > 0
    url = study_for_resume(exp, _record("S"))
    assert url == sqlite_url(local)
    assert [t.value for t in optuna.load_study(study_name="r", storage=url).trials] == [0, 1, 2, 3, 4]
    assert not list(local.parent.glob("*.unreadable-*")) and not list(local.parent.glob("*.other-search-*"))


def test_set_aside_moves_sqlites_files_with_the_study(tmp_path):
    # A journal paired with another database would be rolled back into it.
    study = _study(tmp_path / "s.db", 1)
    study.with_name("s.db-journal").write_bytes(b"journal")
    aside = set_aside(study, "behind")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([aside.name, aside.name + "-journal"])


def test_resume_of_a_search_from_before_study_copies_uses_the_recorded_study(s3_storage, tmp_path, monkeypatch):
    # search.json of an older nerkit: no search id, no copies, the study at the path it
    # recorded; missing there, resume says to put it back at that path (where the
    # searcher it pickled looks), not at the new local path.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "cache"))
    old = tmp_path / "old-cache" / "r.db"
    with pytest.raises(ValueError, match=f"is not at {old}.*copy that file .* to {old}"):
        study_for_resume(f"{s3_storage}/r", _record(None, sqlite_url(old)))
    _study(old, 3, search_id=None)
    assert study_for_resume(f"{s3_storage}/r", _record(None, sqlite_url(old))) == sqlite_url(old)


def test_a_local_experiment_synced_from_object_storage_resumes_from_its_copy(tmp_path):
    # `aws s3 sync` of an experiment to disk brings the study copies, not an optuna.db.
    exp = tmp_path / "r"
    exp.mkdir()
    (exp / "optuna-study-2026-01-01_00-00-00.db").write_bytes(_study(tmp_path / "c.db", 3).read_bytes())
    assert study_for_resume(str(exp), _record("S")) == sqlite_url(exp / "optuna.db")
    assert _trials(sqlite_url(exp / "optuna.db")) == 3


def test_reading_never_takes_another_searchs_local_study(s3_storage, tmp_path, monkeypatch):
    # `nerkit report` on a machine that ran an earlier search of this name reads the copy.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "cache"))
    exp = f"{s3_storage}/r"
    _study(local_study_path(exp), 9, search_id="OLD")
    _put_copy(exp, _study(tmp_path / "copy.db", 2))
    assert _trials(study_for_reading(exp, _record("S"), tmp_path)) == 2


def test_reading_a_remote_study_falls_back_to_the_copy_on_storage(s3_storage, tmp_path, monkeypatch):
    # `nerkit report` on a machine that did not run the search reads the copy.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "cache"))
    exp = f"{s3_storage}/r"
    assert study_for_reading(exp, _record("S"), tmp_path) is None
    _put_copy(exp, _study(tmp_path / "copy.db", 3))
    url = study_for_reading(exp, _record("S"), tmp_path)
    assert url.startswith(f"sqlite:///{tmp_path}") and _trials(url) == 3
