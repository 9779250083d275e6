"""``nerkit search``'s contract with scripts: exit codes and early refusals."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tune.cli.search import outcome


def _summary(reasons: dict, best: dict | None, planned: int | None = None) -> dict:
    """A summary as tune.summary.summarize gives it: unended trials are counted as
    "unfinished", the rest under their stop reason."""
    trials = sum(reasons.values())
    stopped = reasons.get("unfinished", 0)
    return {"name": "s1", "reasons": reasons, "best": best, "trials": trials, "trials_planned": planned or trials,
            "unfinished": {"stopped": stopped, "not_started": max(0, (planned or trials) - trials)}}


def test_a_finished_search_with_a_best_trial_exits_0():
    assert outcome(_summary({"completed": 3, "asha": 5}, {"trial_id": "a"}), "/r") == (0, "")


def test_an_interrupted_search_exits_130_with_the_command_that_continues_it():
    # Ray returns from fit() on Ctrl-C with unfinished trials; that is not success.
    code, why = outcome(_summary({"completed": 1, "unfinished": 3}, {"trial_id": "a"}), "/r")
    assert code == 130 and "3 trial(s) unfinished" in why and "nerkit search --resume s1 --storage /r" in why


def test_a_search_stopped_before_every_trial_was_created_is_interrupted():
    # Ctrl-C between trials (--max-concurrent 1) leaves none pending, but fewer than planned.
    code, why = outcome(_summary({"completed": 3}, {"trial_id": "a"}, planned=8), "/r")
    assert code == 130 and "5 trial(s) unfinished (5 not started)" in why
    # Both kinds: the summary's "pending 2" and the 3 unfinished must add up in the message.
    code, why = outcome(_summary({"completed": 3, "unfinished": 2}, {"trial_id": "a"}, planned=6), "/r")
    assert "3 trial(s) unfinished (2 stopped, 1 not started)" in why


def test_a_search_where_no_trial_reported_exits_1():
    code, why = outcome(_summary({"error": 8}, None), "/r")
    assert code == 1 and "nerkit trials s1 --storage /r --stop-reason error" in why
    # Every trial diverged: the hint must select them (`--stop-reason error` showed none).
    code, why = outcome(_summary({"diverged": 2}, None), "/r")
    assert code == 1 and why.endswith("nerkit trials s1 --storage /r --stop-reason diverged")
    code, why = outcome(_summary({"diverged": 1, "error": 1, "collapsed": 1}, None), "/r")
    assert why.endswith("--stop-reason error,diverged")


def test_a_search_where_every_trial_failed_exits_1_even_with_a_best():
    # Each trial reported an evaluation before raising: a "best" exists, but nothing worked.
    code, why = outcome(_summary({"error": 4}, {"trial_id": "a"}), "/r")
    assert code == 1 and "every trial failed" in why and why.endswith("--stop-reason error")
    code, why = outcome(_summary({"error": 3, "diverged": 1}, {"trial_id": "a"}), "/r")
    assert code == 1 and "every trial failed (error,diverged)" in why
    assert outcome(_summary({"error": 3, "completed": 1}, {"trial_id": "a"}), "/r") == (0, "")


def test_an_empty_name_is_refused_not_replaced(tmp_path):
    # `--name ""` used to start a search under a generated name.
    from nerkit.cli import build_app

    res = CliRunner().invoke(build_app(), ["search", "--name", "", "--storage", str(tmp_path)])
    assert isinstance(res.exception, ValueError) and "search name is ''" in str(res.exception)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, said", [
    (["--grace-epochs", "0"], "--grace-epochs is 0.0, but must be a finite number > 0"),
    (["--reduction-factor", "1.5"], "--reduction-factor is 1.5, but must be >= 2"),
    (["--max-concurrent", "0"], "--max-concurrent is 0, but must be >= 1"),
])
def test_a_bad_option_is_named_as_the_user_typed_it(tmp_path, args, said):
    # The messages named SearchSettings' fields (grace_epochs), which the user never typed.
    from nerkit.cli import build_app

    res = CliRunner().invoke(build_app(), ["search", "--name", "s", "--storage", str(tmp_path), *args])
    assert isinstance(res.exception, ValueError) and str(res.exception).startswith(said)
    assert not any(tmp_path.iterdir())


def test_ctrl_c_before_the_first_trial_exits_130_saying_what_was_saved(tmp_path, monkeypatch):
    # Before Ray takes over Ctrl-C, a KeyboardInterrupt ended the command with no word: the
    # search, once its search.json is written, is continued (or started) by --resume; before
    # that, nothing was saved.
    import tune.driver
    from nerkit.cli import build_app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune.driver, "run_search", interrupted)
    args = ["search", "--name", "x", "--storage", str(tmp_path)]
    res = CliRunner().invoke(build_app(), args)
    assert res.exit_code == 130 and "nothing was saved" in res.output
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "search.json").write_text("{}")
    res = CliRunner().invoke(build_app(), args)
    assert res.exit_code == 130
    said = " ".join(res.output.split())
    assert ("interrupted before Ray saved the search's state; continue it with: nerkit search --resume x "
            f"--storage {tmp_path}") in said
    # A second Ctrl-C mid-search lands here too, with Ray's state saved: nothing was lost,
    # and the message once said Ray had saved nothing.
    (tmp_path / "x" / "tuner.pkl").write_bytes(b"")  # what Tuner.can_restore looks for
    res = CliRunner().invoke(build_app(), args)
    assert res.exit_code == 130 and "interrupted; Ray had saved the search's state; continue it with" in res.output


@pytest.mark.parametrize("ray_started", [False, True])
def test_a_sigterm_while_the_search_is_set_up_exits_130_with_the_resume_command(tmp_path, monkeypatch,
                                                                               ray_started):
    # SIGTERM before fit(): before ray.init the default handler killed the command (143),
    # after it Ray's own handler exited 15; neither said how to continue. README: 130.
    import os
    import signal
    import sys

    import tune.driver
    from nerkit.cli import build_app

    def terminated(*args, **kwargs):
        if ray_started:
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # what ray.init installs
        os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("SIGTERM did not stop the command")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(tune.driver, "run_search", terminated)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "search.json").write_text("{}")
    try:
        res = CliRunner().invoke(build_app(), ["search", "--name", "x", "--storage", str(tmp_path)])
    finally:
        signal.signal(signal.SIGTERM, before)
    assert res.exit_code == 130, res.output
    assert f"continue it with: nerkit search --resume x --storage {tmp_path}" in " ".join(res.output.split())


def test_a_sigterm_after_the_search_ended_lets_the_summary_finish():
    # Ray's handler, back once fit() returned, exited mid-summary (143, or an abort in its
    # shutdown). The first SIGTERM now only says so; a second gets the default (ends at once).
    import os
    import signal

    from tune.cli.search import _finish_despite_sigterm

    before = signal.getsignal(signal.SIGTERM)
    try:
        _finish_despite_sigterm()
        os.kill(os.getpid(), signal.SIGTERM)  # handled: this test goes on
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_second_ctrl_c_while_the_summary_is_written_says_how_to_go_on(tmp_path, monkeypatch):
    # Ray's first Ctrl-C stops the trials and fit() returns; a second one landed in the
    # tables' refresh and typer ended the command with 130 and no word.
    import tune.driver
    import tune.parquet
    from nerkit.cli import build_app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune.driver, "run_search", lambda *args, **kwargs: None)
    monkeypatch.setattr(tune.parquet, "refresh_tables", interrupted)
    res = CliRunner().invoke(build_app(), ["search", "--name", "x", "--storage", str(tmp_path)])
    said = " ".join(res.output.split())
    assert res.exit_code == 130
    assert (f"its state is saved. See it with: nerkit trials x --storage {tmp_path}; continue it, if trials were "
            f"left unfinished, with: nerkit search --resume x --storage {tmp_path}") in said


def test_a_trial_larger_than_the_local_machine_is_refused_not_left_pending(tmp_path, tiny_model_dir, small_data_dir):
    # With Ray started here (no --address) nothing adds a GPU: the search sat at "pending 1"
    # for ever. It is a user error naming the option (exit 2), in a fresh process so that
    # nerkit, not an earlier test, starts Ray.
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "nerkit", "search", "--model", str(tiny_model_dir), "--data", str(small_data_dir),
           "--trials", "1", "--max-epochs", "1", "--storage", str(tmp_path), "--name", "g", "--gpus-per-trial", "1"]
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**env, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--gpus-per-trial is 1, but this machine has 0 GPU(s) for Ray" in " ".join(proc.stderr.split())


def test_storage_that_fails_mid_search_says_what_is_kept_and_how_to_continue(tmp_path, monkeypatch):
    # A full disk ended the search with "error: [Errno 28] ..." and a read-only optuna.db
    # with Optuna's "e.g. exceeding max length": no path, no --resume.
    import errno

    import optuna

    import tune.driver
    from nerkit.cli import build_app

    failures = iter([OSError(errno.ENOSPC, "No space left on device"),
                     optuna.exceptions.StorageInternalError("An exception is raised during the commit")])

    def fails(*args, **kwargs):
        (tmp_path / "x").mkdir(exist_ok=True)
        (tmp_path / "x" / "search.json").write_text("{}")
        raise next(failures)

    monkeypatch.setattr(tune.driver, "run_search", fails)
    args = ["search", "--name", "x", "--storage", str(tmp_path)]
    for needle in ("OSError: [Errno 28] No space left on device", "StorageInternalError"):
        res = CliRunner().invoke(build_app(), args)
        text = " ".join(res.output.split())
        assert res.exit_code == 1 and f"writing the search's state under {tmp_path}/x failed" in text
        assert needle in text and f"continue it with: nerkit search --resume x --storage {tmp_path}" in text
    # A file outside the storage (the data, say) that cannot be read is no storage failure.
    denied = PermissionError(errno.EACCES, "Permission denied", f"{tmp_path}2/train.jsonl")  # a sibling
    monkeypatch.setattr(tune.driver, "run_search", lambda *a, **k: (_ for _ in ()).throw(denied))
    assert CliRunner().invoke(build_app(), args).exception is denied
    # A missing file is not storage failing: it stays the error it was.
    monkeypatch.setattr(tune.driver, "run_search", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError("d")))
    assert isinstance(CliRunner().invoke(build_app(), args).exception, FileNotFoundError)


def _settings_given(tmp_path, monkeypatch, *options):
    """The SearchSettings `nerkit search --name x … OPTIONS` hands the driver (which stops there)."""
    import tune.driver
    from nerkit.cli import build_app

    seen = []
    monkeypatch.setattr(tune.driver, "run_search", lambda settings, address=None: seen.append(settings) or
                        (_ for _ in ()).throw(KeyboardInterrupt))
    CliRunner().invoke(build_app(), ["search", "--name", "x", "--storage", str(tmp_path), *options])
    return seen[0]


def test_search_takes_the_data_options_train_takes(tmp_path, monkeypatch):
    # --split-seed was train's only: a single file could not be split for a search as it
    # was for the `nerkit train` run it should compare with.
    settings = _settings_given(tmp_path, monkeypatch, "--split-seed", "7", "--on-invalid", "skip")
    assert (settings.data.split_seed, settings.data.on_invalid, settings.data.format) == (7, "skip", "auto")


def test_startup_trials_reaches_the_settings_the_search_stores(tmp_path, monkeypatch):
    # --startup-trials sets TPE's n_startup_trials; it lives in the settings (search.json),
    # so a resumed search keeps it.
    settings = _settings_given(tmp_path, monkeypatch, "--trials", "24", "--startup-trials", "4")
    assert (settings.startup_trials, settings.tpe_startup_trials) == (4, 4)
    assert settings.to_dict()["startup_trials"] == 4


def test_the_options_defaults_are_the_search_settings_defaults():
    # The CLI states its defaults in --help, the library in SearchSettings: one value each,
    # or `nerkit search` and a pipeline calling run_search would run different searches.
    import dataclasses

    import typer

    from nerkit.cli import build_app
    from nerkit.model import BUNDLED_MODEL
    from tune.settings import SearchSettings

    search = typer.main.get_command(build_app()).commands["search"]
    fields = {f.name: f.default for f in dataclasses.fields(SearchSettings) if f.default is not dataclasses.MISSING}
    options = {p.name: p.default for p in search.params if p.name in fields}
    assert len(options) >= 12  # every option that sets a field
    assert options == {name: fields[name] for name in options}
    assert fields["model"] == BUNDLED_MODEL
