"""tune.state_backup: a complete copy of Ray's state, put back when a kill cut a file off.

End to end (a real search killed, a state file cut off, resumed from the copy):
tests/tune/test_search.py::test_killed_search_resumes_with_every_trial_once.
"""

from __future__ import annotations

import json
import pickle

import pyarrow.fs as pafs
import pytest

from tune.state_backup import BACKUP_DIR, BROKEN_DIR, back_up, files_ray_reads, is_complete, latest_backup, \
    restore_if_broken

FS = pafs.LocalFileSystem()


def _state(exp, session: str, n: int) -> dict[str, bytes]:
    """Ray-like state files of one session: JSON and pickles (one pickle under a .json name)."""
    files = {
        f"experiment_state-{session}.json": json.dumps({"trial_data": [["{}", "{}"]] * n}).encode(),
        f"search_gen_state-{session}.json": pickle.dumps({"counter": n, "pad": "x" * 500}, protocol=5),
        f"searcher-state-{session}.pkl": pickle.dumps(list(range(n * 50)), protocol=5),
    }
    for name, data in files.items():
        (exp / name).write_bytes(data)
    return files


def test_is_complete_rejects_every_cut_of_a_pickle_and_of_json():
    data = pickle.dumps({"a": list(range(300)), "b": "text" * 50}, protocol=5)
    assert is_complete(data)
    assert not any(is_complete(data[:cut]) for cut in range(len(data)))
    text = json.dumps({"trial_data": [["x", "y"]] * 20}).encode()
    assert is_complete(text) and not any(is_complete(text[:cut]) for cut in range(len(text)))


def test_files_ray_reads_are_the_newest_session_per_kind():
    names = ["experiment_state-2026-01-01_10-00-00.json", "experiment_state-2026-01-01_11-00-00.json",
             "searcher-state-2026-01-01_10-00-00.pkl"]
    assert files_ray_reads(names) == ["experiment_state-2026-01-01_11-00-00.json",
                                      "searcher-state-2026-01-01_10-00-00.pkl"]


def test_a_cut_off_file_is_replaced_by_the_last_complete_copy_and_kept_aside(tmp_path):
    exp = tmp_path / "search"
    exp.mkdir()
    (exp / "optuna.db").write_bytes(b"study")  # not Ray's state: never touched
    _state(exp, "2026-01-01_10-00-00", 2)
    first = back_up(FS, str(exp))
    good = _state(exp, "2026-01-01_10-00-00", 3)
    second = back_up(FS, str(exp))
    assert latest_backup(FS, str(exp)) == second and not (tmp_path / first).exists()  # one copy kept

    # A kill during Ray's next copy: one file empty, one cut in half.
    cut = {"search_gen_state-2026-01-01_10-00-00.json": b"",
           "experiment_state-2026-01-01_10-00-00.json": good["experiment_state-2026-01-01_10-00-00.json"][:40]}
    for name, data in cut.items():
        (exp / name).write_bytes(data)
    assert back_up(FS, str(exp)) is None  # an incomplete state is never backed up

    assert restore_if_broken(str(exp)) == second
    assert {n: (exp / n).read_bytes() for n in good} == good
    (aside,) = (exp / BROKEN_DIR).iterdir()
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == {**good, **cut}  # nothing lost
    assert (exp / "optuna.db").read_bytes() == b"study"
    assert restore_if_broken(str(exp)) is None  # whole now: nothing to do


def test_a_newer_session_cut_off_is_set_aside_whole(tmp_path):
    # A resumed search (new session) killed during its first copy: Ray would read the newer
    # session's files, so they go aside too, and the backed-up session is what remains.
    exp = tmp_path / "search"
    exp.mkdir()
    good = _state(exp, "2026-01-01_10-00-00", 2)
    back_up(FS, str(exp))
    (exp / "experiment_state-2026-01-01_12-00-00.json").write_bytes(b'{"trial_da')
    restore_if_broken(str(exp))
    assert sorted(p.name for p in exp.iterdir() if p.is_file()) == sorted(good)


def test_a_cut_off_file_without_a_copy_names_the_file_and_changes_nothing(tmp_path):
    exp = tmp_path / "old-search"
    exp.mkdir()
    files = _state(exp, "2026-01-01_10-00-00", 2)
    (exp / "searcher-state-2026-01-01_10-00-00.pkl").write_bytes(files["searcher-state-2026-01-01_10-00-00.pkl"][:9])
    with pytest.raises(ValueError, match=r"searcher-state-2026-01-01_10-00-00\.pkl is cut off.*"
                                         r"no complete copy in .*\.nerkit/state.*Start a new search"):
        restore_if_broken(str(exp))
    assert (exp / "searcher-state-2026-01-01_10-00-00.pkl").stat().st_size == 9
    assert not (exp / BACKUP_DIR).exists() and not (exp / BROKEN_DIR).exists()


def test_a_backup_cut_off_itself_is_never_used(tmp_path):
    # The driver killed while writing a backup: that copy has no COMPLETE marker.
    exp = tmp_path / "search"
    exp.mkdir()
    _state(exp, "2026-01-01_10-00-00", 2)
    whole = back_up(FS, str(exp))
    partial = exp / BACKUP_DIR / "99999999"
    partial.mkdir()
    (partial / "experiment_state-2026-01-01_10-00-00.json").write_bytes(b"{")
    assert latest_backup(FS, str(exp)) == whole


def test_a_copy_in_flight_is_never_backed_up(tmp_path):
    # Ray writes a snapshot whole in the driver's staging directory, then copies it to
    # storage file by file: until storage equals staging, the files on storage can be
    # complete yet from two snapshots, which must not become the copy a resume trusts.
    staging, exp = tmp_path / "staging", tmp_path / "storage"
    staging.mkdir()
    exp.mkdir()
    old = _state(exp, "2026-01-01_10-00-00", 2)
    new = _state(staging, "2026-01-01_10-00-00", 3)
    name = "experiment_state-2026-01-01_10-00-00.json"
    (exp / name).write_bytes(new[name])  # the first file has landed, the others not yet
    assert back_up(FS, str(exp), staging=str(staging)) is None
    for n, data in new.items():
        (exp / n).write_bytes(data)
    backup = back_up(FS, str(exp), staging=str(staging))
    assert backup is not None and {n: (tmp_path / backup / n).read_bytes() for n in new} == new != old
