"""tune.result_logs: a retried trial's result log is uploaded before Ray copies it back.

The end-to-end case (a real retry on a real cluster, with storage's copy stale) is
tests/tune/test_cluster.py::test_trial_failing_every_attempt_is_retried_from_its_checkpoint_in_the_bucket_then_recorded_as_error.
"""

from __future__ import annotations

import pyarrow.fs as pafs

from tune.result_logs import RESTORED_LOGS, upload_result_logs


def test_upload_replaces_a_stale_copy_and_skips_logs_the_trial_does_not_have(tmp_path):
    local, remote = tmp_path / "staging" / "trial_a", tmp_path / "storage" / "trial_a"
    local.mkdir(parents=True)
    (local / "result.json").write_text('{"eval_index": 0}\n{"eval_index": 1}\n')
    (local / "params.json").write_text("{}")  # Ray never copies it back: not uploaded
    remote.mkdir(parents=True)
    (remote / "result.json").write_text("")  # as of a snapshot before the first result

    copied = upload_result_logs(str(local), pafs.LocalFileSystem(), remote.as_posix())

    assert copied == ["result.json"]  # no progress.csv here: nothing to copy, no error
    assert (remote / "result.json").read_text() == (local / "result.json").read_text()
    assert not (remote / "params.json").exists()
    assert "result.json" in RESTORED_LOGS and "progress.csv" in RESTORED_LOGS


def test_upload_creates_the_trial_directory_on_storage(tmp_path):
    # A trial that failed before its first checkpoint has no directory on storage yet.
    local = tmp_path / "staging"
    local.mkdir()
    (local / "progress.csv").write_text("eval_index\n0\n")
    remote = tmp_path / "storage" / "exp" / "trial_b"
    assert upload_result_logs(str(local), pafs.LocalFileSystem(), remote.as_posix()) == ["progress.csv"]
    assert (remote / "progress.csv").read_text() == "eval_index\n0\n"


def test_logged_results_end_where_rays_record_of_the_trial_ends(tmp_path):
    # What a resumed scheduler replays: the log on storage up to the trial's last result in
    # Ray's snapshot (a result past it the trial reports again), without a cut-off last line.
    import json
    from types import SimpleNamespace

    from tune.result_logs import logged_results

    lines = [json.dumps({"eval_index": i, "dev_f1": i / 10}) for i in range(4)]
    (tmp_path / "result.json").write_text("\n".join(lines[:3]) + "\n" + lines[3][:7])
    storage = SimpleNamespace(trial_fs_path=tmp_path.as_posix(), storage_filesystem=pafs.LocalFileSystem())
    trial = SimpleNamespace(storage=storage, last_result={"eval_index": 1})
    assert [r["eval_index"] for r in logged_results(trial)] == [0, 1]
    trial.last_result = {"eval_index": 5}
    assert [r["eval_index"] for r in logged_results(trial)] == [0, 1, 2]
    assert logged_results(SimpleNamespace(storage=SimpleNamespace(
        trial_fs_path=(tmp_path / "none").as_posix(), storage_filesystem=pafs.LocalFileSystem()),
        last_result={})) == []
