"""tune.state_backup and tune.state_restore: a complete copy of Ray's state, put back when a
kill cut a file off.

End to end (a real search killed, moved, its searcher state replaced by the next
snapshot's file, resumed from the copy), on S3:
tests/tune/test_object_storage.py::test_killed_search_on_s3_resumes_elsewhere_with_every_trial_once.
A file cut off takes the same path from detection on; the tests below cover both.
"""

from __future__ import annotations

import json
import pickle
from datetime import datetime
from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest

from tune import state_backup
from tune.snapshot import files_ray_reads
from tune.state_check import disagreements, searcher_trial_ids
from tune.state_restore import restore_if_broken
from tune.state_backup import BACKUP_DIR, BROKEN_DIR, RETRY_S, StateBackup, back_up, is_complete, latest_backup, \
    read_state, version

FS = pafs.LocalFileSystem()


def _table(n: int, live: int = 0) -> bytes:
    """An experiment_state's bytes: n trials t0.., the last ``live`` of them RUNNING."""
    rows = [[json.dumps({"trial_id": f"t{i}", "status": "RUNNING" if i >= n - live else "TERMINATED"}), "{}"]
            for i in range(n)]
    return json.dumps({"trial_data": rows}).encode()


def _search_gen(counter: int, live: list[str], limiter: str = "ResumableConcurrencyLimiter") -> bytes:
    """A search_gen_state's bytes (a pickle under a .json name, as Ray writes it): Ray keys
    the limiter's state by its class name (Ray's own in searches started before nerkit's)."""
    return pickle.dumps({"counter": counter, f"name:{limiter}": {"live_trials": set(live)},
                         "pad": "x" * 500}, protocol=5)


def _searcher(ids: list[str]) -> bytes:
    """An OptunaSearch-like pickle: its __dict__, with study trials as objects of a class
    the check must not import (and a datetime, as Optuna's trials hold)."""
    return pickle.dumps({"_ot_trials": {i: SimpleNamespace(number=k, started=datetime(2026, 1, 1))
                                        for k, i in enumerate(ids)}, "_space": list(range(200))}, protocol=5)


def _state(exp, session: str, n: int, live: int = 0) -> dict[str, bytes]:
    """Ray-like state files of one snapshot: n trials, the last ``live`` still running."""
    files = {
        f"experiment_state-{session}.json": _table(n, live),
        f"search_gen_state-{session}.json": _search_gen(n, [f"t{i}" for i in range(n - live, n)]),
        f"searcher-state-{session}.pkl": _searcher([f"t{i}" for i in range(n)]),
    }
    for name, data in files.items():
        (exp / name).write_bytes(data)
    return files


def test_is_complete_rejects_every_cut_of_a_pickle_and_of_json():
    data = pickle.dumps({"a": list(range(300)), "b": "text" * 50}, protocol=5)
    assert is_complete(data)
    assert not any(is_complete(data[:cut]) for cut in range(len(data)))
    text = _table(20)
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


def test_a_missing_snapshot_comes_back_from_the_last_complete_copy(tmp_path):
    # A partial copy of a search directory (experiment_state-*.json left out): resuming
    # failed with Ray's bare "No experiment snapshot file" error though a copy was there.
    exp = tmp_path / "search"
    exp.mkdir()
    good = _state(exp, "2026-01-01_10-00-00", 3)
    assert back_up(FS, str(exp)) is not None
    (exp / "experiment_state-2026-01-01_10-00-00.json").unlink()
    assert restore_if_broken(str(exp)) == latest_backup(FS, str(exp))
    assert {n: (exp / n).read_bytes() for n in good} == good
    assert restore_if_broken(str(exp)) is None
    # Without a copy (a search that never snapshotted) nothing is missing: nothing to do.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert restore_if_broken(str(fresh)) is None


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


def test_files_of_one_snapshot_agree_and_pieces_of_two_do_not():
    # What Ray stages at one snapshot agrees on the trials; a copy that mixes two does not
    # (tune.state_check). Another layout is not a disagreement.
    assert disagreements({"experiment_state-s.json": _table(5, live=2),
                          "search_gen_state-s.json": _search_gen(5, ["t3", "t4"])}) == []
    ahead = disagreements({"experiment_state-s.json": _table(5), "search_gen_state-s.json": _search_gen(6, [])})
    assert ahead == ["search_gen_state-s.json counts 6 trials created, experiment_state-s.json holds 5"]
    for limiter in ("ResumableConcurrencyLimiter", "ConcurrencyLimiter"):
        stale = disagreements({"experiment_state-s.json": _table(5),
                               "search_gen_state-s.json": _search_gen(5, ["t4"], limiter)})
        assert stale == ["search_gen_state-s.json has live trials ['t4'] that experiment_state-s.json holds as "
                         "TERMINATED"], limiter
    # An ERROR trial can stay live in one snapshot (a failed actor reuse errors it without
    # telling the searcher): not a disagreement.
    errored = json.dumps({"trial_data": [[json.dumps({"trial_id": "t0", "status": "ERROR"}), "{}"]]}).encode()
    assert disagreements({"experiment_state-s.json": errored, "search_gen_state-s.json": _search_gen(1, ["t0"])}) == []
    # The searcher's own pickle must know exactly the table's trials.
    behind = disagreements({"experiment_state-s.json": _table(3), "searcher-state-s.pkl": _searcher(["t0", "t1"])})
    assert behind == ["searcher-state-s.pkl knows 2 trials, experiment_state-s.json holds 3; "
                      "unknown to the searcher: ['t2']"]
    agreeing = {"experiment_state-s.json": _table(3), "searcher-state-s.pkl": _searcher(["t0", "t1", "t2"])}
    assert disagreements(agreeing) == []
    assert searcher_trial_ids(pickle.dumps(list(range(5)))) is None  # another layout: not compared
    unknown = disagreements({"experiment_state-s.json": _table(4, live=1),
                             "search_gen_state-s.json": _search_gen(4, ["t3", "t9"])})
    assert unknown == ["search_gen_state-s.json has live trials ['t9'] that experiment_state-s.json does not hold"]
    assert disagreements({"experiment_state-s.json": _table(5)}) == []  # no searcher state to compare
    assert disagreements({"experiment_state-s.json": b'{"trial_data": [["{}", "{}"]]}',
                          "search_gen_state-s.json": _search_gen(2, [])}) == []


def test_whole_files_from_two_snapshots_are_replaced_by_the_last_complete_copy(tmp_path):
    # As in CI once: Ray's copy landed the searcher's state from after the 6th trial was
    # created, beside a trial table of 5, and the resumed search ended one trial short.
    exp = tmp_path / "search"
    exp.mkdir()
    good = _state(exp, "2026-01-01_10-00-00", 5, live=2)
    backup = back_up(FS, str(exp))
    name = "search_gen_state-2026-01-01_10-00-00.json"
    (exp / name).write_bytes(_search_gen(6, ["t3", "t4", "t5"]))  # the next snapshot's, alone
    assert back_up(FS, str(exp)) is None  # whole, but not one snapshot: never backed up

    assert restore_if_broken(str(exp)) == backup
    assert {n: (exp / n).read_bytes() for n in good} == good
    (aside,) = (exp / BROKEN_DIR).iterdir()
    assert (aside / name).read_bytes() == _search_gen(6, ["t3", "t4", "t5"])  # kept, not deleted
    assert restore_if_broken(str(exp)) is None


def test_two_snapshots_without_a_copy_say_what_disagrees_and_change_nothing(tmp_path):
    exp = tmp_path / "old-search"
    exp.mkdir()
    _state(exp, "2026-01-01_10-00-00", 5)
    (exp / "search_gen_state-2026-01-01_10-00-00.json").write_bytes(_search_gen(6, ["t5"]))
    with pytest.raises(ValueError, match=r"from two snapshots \(search_gen_state-.*counts 6 trials created, "
                                         r"experiment_state-.* holds 5.*no complete copy.*Start a new search"):
        restore_if_broken(str(exp))
    assert not (exp / BROKEN_DIR).exists()


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


def test_a_copy_in_flight_is_never_backed_up_but_an_older_whole_one_is(tmp_path):
    # Ray writes each snapshot whole in the driver's staging directory, then copies it to
    # storage file by file: until storage equals one staged version, the files on storage
    # can be complete yet from two snapshots, which must not become the copy a resume
    # trusts. A version Ray staged before the newest is fine (a copy slower than Ray's period).
    staging, exp = tmp_path / "staging", tmp_path / "storage"
    staging.mkdir()
    exp.mkdir()
    v1 = _state(staging, "2026-01-01_10-00-00", 2)
    staged = [version(read_state(FS, str(staging)))]
    v2 = _state(staging, "2026-01-01_10-00-00", 3)
    staged.append(version(read_state(FS, str(staging))))
    name = "experiment_state-2026-01-01_10-00-00.json"
    for n, data in v1.items():
        (exp / n).write_bytes(data)
    (exp / name).write_bytes(v2[name])  # v2's first file has landed, the others not yet
    assert back_up(FS, str(exp), staged=staged) is None
    for n, data in v1.items():
        (exp / n).write_bytes(data)
    backup = back_up(FS, str(exp), staged=staged)  # all of v1: whole, if not the newest
    assert backup is not None and {n: (tmp_path / backup / n).read_bytes() for n in v1} == v1 != v2


def test_an_old_sessions_cut_off_file_does_not_stop_backups(tmp_path):
    # A resumed search copies the first session's files again with every snapshot, so a
    # kill can cut one off while the files Ray reads (the newest session's) stay whole.
    exp = tmp_path / "search"
    exp.mkdir()
    _state(exp, "2026-01-01_10-00-00", 2)
    _state(exp, "2026-01-01_12-00-00", 3)
    (exp / "experiment_state-2026-01-01_10-00-00.json").write_bytes(b"{")
    backup = back_up(FS, str(exp))
    assert backup is not None
    assert sorted(p.name for p in (tmp_path / backup).iterdir() if p.name != "COMPLETE") == sorted(
        ["experiment_state-2026-01-01_12-00-00.json", "search_gen_state-2026-01-01_12-00-00.json",
         "searcher-state-2026-01-01_12-00-00.pkl"])
    assert restore_if_broken(str(exp)) is None  # Ray never reads the old session's file


def test_a_cut_off_search_json_or_tuner_pkl_comes_back_from_the_copy(tmp_path):
    exp = tmp_path / "search"
    exp.mkdir()
    _state(exp, "2026-01-01_10-00-00", 2)
    settings, tuner = b'{"name": "search"}', pickle.dumps({"trainable": "run_trial"}, protocol=5)
    (exp / "search.json").write_bytes(settings)
    (exp / "tuner.pkl").write_bytes(tuner)
    back_up(FS, str(exp))
    (exp / "search.json").write_bytes(settings[:5])  # cut during a resumed session's copy
    assert back_up(FS, str(exp)) is not None  # keeps the last whole search.json
    assert restore_if_broken(str(exp)) is not None
    assert (exp / "search.json").read_bytes() == settings and (exp / "tuner.pkl").read_bytes() == tuner
    (aside,) = (exp / BROKEN_DIR).iterdir()
    assert (aside / "search.json").read_bytes() == settings[:5] and not (aside / "tuner.pkl").exists()


def test_only_a_cut_off_static_file_leaves_the_newer_whole_state_in_place(tmp_path):
    # A resumed search re-copies search.json with every snapshot, so a kill can cut it off
    # while Ray's state files are whole and newer than the last backup: only search.json
    # comes back from the copy; the search keeps the progress made since.
    exp = tmp_path / "search"
    exp.mkdir()
    _state(exp, "2026-01-01_10-00-00", 2)
    settings = b'{"name": "search"}'
    (exp / "search.json").write_bytes(settings)
    back_up(FS, str(exp))
    newer = _state(exp, "2026-01-01_10-00-00", 5)
    (exp / "search.json").write_bytes(settings[:5])
    assert restore_if_broken(str(exp)) is not None
    assert (exp / "search.json").read_bytes() == settings
    assert {n: (exp / n).read_bytes() for n in newer} == newer
    (aside,) = (exp / BROKEN_DIR).iterdir()
    assert sorted(p.name for p in aside.iterdir()) == ["search.json"]


def test_the_callback_never_raises_on_a_storage_error(tmp_path, monkeypatch):
    # An error while reading storage (here: the experiment "directory" is a file, so
    # listing it fails) is logged and retried soon; it never ends the search.
    (tmp_path / "not-a-dir").write_text("x")
    storage = SimpleNamespace(storage_filesystem=FS, experiment_fs_path=str(tmp_path / "not-a-dir"),
                              experiment_driver_staging_path=str(tmp_path / "staging"))
    callback = StateBackup()
    with pytest.raises(OSError):
        FS.get_file_info(pafs.FileSelector(str(tmp_path / "not-a-dir")))
    # A frozen clock: the interval is otherwise max(RETRY_S, 20 x the time the failed
    # attempt took), which a loaded machine stretches past RETRY_S.
    monkeypatch.setattr(state_backup, "time", SimpleNamespace(monotonic=lambda: 1000.0))
    assert callback.back_up([SimpleNamespace(storage=storage)]) is None
    assert callback._interval == RETRY_S


def test_versions_staged_between_backups_are_noted_so_a_slow_copy_still_matches(tmp_path):
    # With slow storage the backups are seconds apart, but Ray stages a snapshot every
    # second: each staged version is noted at every controller step, so storage landing
    # one of the in-between versions is still recognised as whole and backed up.
    staging, exp = tmp_path / "staging", tmp_path / "storage"
    staging.mkdir()
    exp.mkdir()
    storage = SimpleNamespace(storage_filesystem=FS, experiment_fs_path=str(exp),
                              experiment_driver_staging_path=str(staging))
    trials = [SimpleNamespace(storage=storage)]
    callback = StateBackup(min_interval_s=3600)
    callback.setup()
    callback._last = 1e18  # the next backup is far off: only noting runs below
    versions = []
    for n in (2, 3, 4):
        versions.append(_state(staging, "2026-01-01_10-00-00", n))
        callback.on_step_end(0, trials)
    for name, data in versions[1].items():  # storage holds the middle version, whole
        (exp / name).write_bytes(data)
    assert callback.back_up(trials) is not None


def test_setup_starts_a_resumed_session_with_fresh_clocks():
    # The callback is pickled with the Tuner and unpickled by a resume in another process:
    # the stall clock and staged versions of the old session must not carry over.
    callback = StateBackup()
    callback._since, callback._staged = -1e9, [frozenset({("x", "y")})]
    callback = pickle.loads(pickle.dumps(callback))
    callback.setup(stop=None, num_samples=1, total_num_samples=1)
    assert callback._since > 0 and list(callback._staged) == []
