"""Real searches on local Ray with the tiny model: ASHA, the collapse guard, Optuna storage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pyarrow.fs
import pytest

from nerkit.data import DataConfig
from tune.driver import plan_from_record, resume_search, run_search
from tune.settings import SearchSettings, read_settings
from tune.state_backup import BACKUP_DIR, latest_backup, read_state
from tune.state_check import disagreements, searcher_trial_ids
from tune.stop_reasons import REASONS
from tune.summary import summarize
from tune.tables import collect
from tune.trainable import writes_checkpoint

pytestmark = pytest.mark.slow


def _settings(tmp_path, tiny_model_dir, small_data_dir, **kw) -> SearchSettings:
    values = dict(name="s", space="search_spaces/default.yaml", storage=str(tmp_path), trials=8,
                  model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), max_epochs=3, seed=1)
    values.update(kw)
    return SearchSettings(**values)


def test_default_search_prunes_with_asha_and_records_every_trial(finished_search):
    # 8 trials on 2 CPUs (the shared search): baselines first, ASHA stops some, every
    # trial ends with a reason, and the Optuna storage file holds every trial with a
    # finite value.
    tables = collect(finished_search.path)
    assert len(tables.trials) == 8
    reasons = [t["stop_reason"] for t in tables.trials]
    assert set(reasons) <= set(REASONS)
    assert "asha" in reasons, reasons
    assert {t["baseline"] for t in tables.trials} >= {"team-recipe", "plain-ce"}

    storage = tables.record["optuna_storage"]
    study = optuna.load_study(study_name=finished_search.name, storage=storage)
    assert len(study.trials) == 8
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all(math.isfinite(t.value) for t in study.trials)
    # Optuna was told each trial's best evaluation, as the trial table ranks it: the
    # evaluation ASHA stopped a trial at (every full-budget trial's last) reaches the
    # searcher only through on_trial_complete, and was left out.
    assert sorted(t.value for t in study.trials) == pytest.approx(sorted(t["best_dev_f1"] for t in tables.trials))
    best = max(t["best_dev_f1"] for t in tables.trials)
    summary = summarize(finished_search.name, finished_search.storage)
    assert summary["best"]["dev_f1"] == pytest.approx(best)
    assert summary["unfinished"] == {"stopped": 0, "not_started": 0}  # a finished search
    # Ray's real state files, on storage and in nerkit's copy, pass the one-snapshot
    # checks resume makes (tune.state_check): no false alarm on what Ray wrote.
    fs = pyarrow.fs.LocalFileSystem()
    for where in (finished_search.path, latest_backup(fs, finished_search.path)):
        files = read_state(fs, where)
        assert disagreements(files) == []
        # ...and they were compared: the searcher's pickle names the table's 8 trials.
        (searcher,) = [data for name, data in files.items() if name.startswith("searcher-state-")]
        assert searcher_trial_ids(searcher) == {t["trial_id"] for t in tables.trials}


def test_checkpoint_every_is_validated_and_picks_every_nth_and_the_final_evaluation():
    assert [i for i in range(5) if writes_checkpoint({"eval_index": i, "final": i == 4}, 2)] == [1, 3, 4]
    assert [i for i in range(3) if writes_checkpoint({"eval_index": i, "final": False}, 1)] == [0, 1, 2]
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=r"checkpoint_every is .*, but must be an integer( >= 1)?"):
            SearchSettings(name="s", space="x.yaml", checkpoint_every=bad)


def test_a_search_stopped_before_its_first_trial_starts_on_resume_and_its_guard_stops_collapsed_trials(
        tmp_path, tiny_model_dir, small_data_dir, monkeypatch):
    # Two behaviours, one real search (each costs the suite about 15 s, mostly trial
    # workers' imports).
    # Stopped after search.json was written but before Ray saved any state, a name could be
    # neither resumed ("no Ray experiment state") nor reused ("already exists"). Resume now
    # starts it from its saved settings, and the stopped start's study is set aside.
    # The search's space collapses (huge O weight, no entity boost): every trial predicts
    # all-'O' and is stopped as `collapsed` after grace + patience evaluations, before its
    # budget is spent; the searcher is told F1 = 0, never NaN.
    import shutil

    import tune.driver

    space = tmp_path / "collapse.yaml"
    space.write_text(
        "budget: {max_epochs: 4, grace_epochs: 4, reduction_factor: 2}\n"
        "collapse_guard: {eps: 0.005, grace: 1, patience: 2}\n"
        "base: {weight_strategy: none, entity_boost: 1.0}\n"
        "params:\n  o_weight: {type: uniform, low: 200.0, high: 400.0}\n"
        "  learning_rate: {type: loguniform, low: 1.0e-3, high: 2.0e-3}\n"
    )
    # Started with a relative --storage (the default, `runs`) and resumed from another
    # directory with the path to it: the resumed start ran where search.json's `runs`
    # pointed from there, a new search under the other directory.
    monkeypatch.chdir(tmp_path)
    settings = _settings(tmp_path, tiny_model_dir, small_data_dir, name="c", space=str(space), trials=2,
                         max_epochs=None, baselines=False, storage="runs")
    exp = Path(settings.experiment_path)
    study_url = settings.optuna_url()
    real_start = tune.driver._start

    def interrupted(*args, **kwargs):
        optuna.create_study(storage=settings.optuna_url(), study_name="c").ask()  # asked, never run
        raise KeyboardInterrupt

    monkeypatch.setattr(tune.driver, "_start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(settings)
    monkeypatch.setattr(tune.driver, "_start", real_start)
    assert (exp / "search.json").is_file()
    with pytest.raises(ValueError, match="already exists"):
        run_search(settings)
    # Trials that reported results did run: no state then means lost state, not "never
    # started", and starting afresh would run them again beside their results.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (exp / "trial_lost").mkdir()
    (exp / "trial_lost" / "result.json").write_text('{"eval_index": 0}\n')
    with pytest.raises(ValueError, match=r"no Ray experiment state, but 1 trial\(s\) that reported results"):
        resume_search("c", str(tmp_path / "runs"))
    shutil.rmtree(exp / "trial_lost")

    resume_search("c", str(tmp_path / "runs"))
    assert not any(elsewhere.iterdir())
    assert len(list(exp.glob("optuna.db.unstarted-*"))) == 1
    tables = collect(str(exp))
    assert [t["stop_reason"] for t in tables.trials] == ["collapsed", "collapsed"]
    assert all(t["evaluations"] == 3 and t["epochs_trained"] < 4 for t in tables.trials)
    study = optuna.load_study(study_name="c", storage=study_url)
    assert len(study.trials) == 2 and all(t.value == 0.0 for t in study.trials)


def test_sigterm_stops_the_search_and_a_damaged_checkpoint_trains_again_on_resume(
        tmp_path, tiny_model_dir, small_data_dir):
    # Batch schedulers and `kill` send SIGTERM, which Ray Tune does not catch: the driver
    # died with no last snapshot and exit 143. Now Ray stops as on Ctrl-C, the search's
    # state is saved, and the command exits 130 with the --resume command on stderr.
    # While it runs, no second driver may take the search (a resume or a new search of its
    # name ran beside it, over its state, its study and its trials).
    # Then every checkpoint is cut off before the resume: that failed the trial's every
    # retry on the same file (Ray keeps no other to fall back to) and it ended in error;
    # deleting it, as the error then advised, left Ray unable to restore the trial at all.
    # Now the trial trains again from the start.
    import signal
    import subprocess
    import sys
    import time

    from ray import tune

    from tune.driver import resume_search

    exp = tmp_path / "dmg"
    cmd = [sys.executable, "-m", "nerkit", "search", "--model", str(tiny_model_dir), "--data", str(small_data_dir),
           "--trials", "2", "--max-epochs", "8", "--grace-epochs", "8", "--storage", str(tmp_path), "--name", "dmg",
           "--json", "--seed", "3", "--max-concurrent", "1", "--no-baselines"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not any(
            len(list(d.glob("checkpoint_*"))) >= 3 for d in exp.glob("trial_*")):
        time.sleep(0.2)
    assert proc.poll() is None, f"search ended before it could be stopped: {proc.stderr.read().decode()[-2000:]}"
    with pytest.raises(ValueError, match=rf"search 'dmg' at .* is being run by another driver \(pid {proc.pid} on "):
        resume_search("dmg", str(tmp_path))
    with pytest.raises(ValueError, match="is being run by another driver"):
        run_search(_settings(tmp_path, tiny_model_dir, small_data_dir, name="dmg", trials=2))
    # SIGTERM: Ray stops gracefully and its snapshot registers the running trial's latest
    # checkpoint, which the resume then restores from.
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert f"nerkit search --resume dmg --storage {tmp_path}" in " ".join(err.decode().split())
    summary = json.loads(out)
    # One trial at a time: the first stopped, not finished (as `nerkit trials` says), the
    # second never created.
    assert summary["reasons"] == {"unfinished": 1}
    assert summary["unfinished"] == {"stopped": 1, "not_started": 1}
    assert tune.Tuner.can_restore(str(exp))
    # What the resume restores the stopped trial from, as Ray reads its snapshot: a
    # checkpoint (so the damage below is met, not a start from nothing).
    (restore,) = _restore_points(exp).values()
    assert restore is not None
    stopped = Path(restore).parent
    logged = len((stopped / "result.json").read_text().splitlines())

    # Every checkpoint: which one Ray restores is the one its last snapshot registered.
    damaged = list(exp.glob("trial_*/checkpoint_*"))
    for ckpt in damaged:
        weights = ckpt / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    assert Path(restore) in damaged
    damaged_at = time.time()
    resume_search("dmg", str(tmp_path))
    tables = collect(str(exp))
    assert len(tables.trials) == 2 and {t["stop_reason"] for t in tables.trials} == {"completed"}
    # It trained again from the start: after the stopped run's evaluations its log starts
    # over at 0 and runs to the end of its budget (8 epochs, 2 evaluations each).
    evals = [json.loads(line)["eval_index"] for line in (stopped / "result.json").read_text().splitlines()]
    assert evals == list(range(logged)) + list(range(16)), (logged, evals)
    # The table names a checkpoint of the run that made the history, never one of the
    # abandoned (damaged) run, even where that scored as high: promotion takes it.
    from safetensors.torch import load_file

    from tune.promote import promote

    # Told apart by content, not name: the new run numbers its checkpoints on from the one
    # restored, so one may take an abandoned checkpoint's name.
    for t in tables.trials:
        weights = Path(t["checkpoint"]) / "model.safetensors"
        assert weights.stat().st_mtime > damaged_at and load_file(str(weights))
        assert json.loads((weights.parent / "metrics.json").read_text())["eval_index"] == t["checkpoint_eval_index"]
    # Nor is any of the abandoned run's left on disk (they stayed there for good): each
    # trial keeps its best and its latest, both whole.
    for trial_dir in exp.glob("trial_*"):
        kept = sorted(trial_dir.glob("checkpoint_*"))
        assert 1 <= len(kept) <= 2 and all(load_file(str(c / "model.safetensors")) for c in kept), kept
    promote("dmg", str(tmp_path / "reg"), storage=str(tmp_path), min_entity_ratio=0.0)


def test_resume_from_a_cut_off_snapshot_without_a_copy_names_the_file_and_the_fix(finished_search, tmp_path):
    # A search without nerkit's copy of Ray's state (started before it kept one) whose
    # snapshot a killed driver cut off: resume says which file and what to do, instead of
    # Ray's bare JSONDecodeError (or Ray starting the search over), and changes nothing.
    import shutil

    copy = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, copy)
    shutil.rmtree(copy / BACKUP_DIR)
    (snapshot,) = copy.glob("experiment_state-*.json")
    text = snapshot.read_text()
    snapshot.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"experiment_state-.*\.json is cut off.*Start a new search"):
        resume_search(finished_search.name, str(tmp_path))
    assert snapshot.read_text() == text[: len(text) // 2] and (copy / "optuna.db").is_file()


def test_a_search_whose_data_changed_is_not_resumed_or_promoted(finished_search, tmp_path):
    # search.json records the fingerprint of the data the search started on; resuming on
    # other data would mix two datasets in one search, and promotion would score the model
    # on data it was not chosen on. Both refuse before training or writing anything.
    import shutil

    from nerkit.features import prepare_data
    from tune.promote import promote

    record = read_settings(finished_search.path)
    base = plan_from_record(record).base
    assert record["data_fingerprint"] == prepare_data(base.data, base.model, base.max_length,
                                                      base.label_all_subwords).fingerprint
    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    (exp / "search.json").write_text(json.dumps({**record, "data_fingerprint": "0" * 64}))
    with pytest.raises(ValueError, match="changed since the search started .* so resuming would use other data"):
        resume_search(finished_search.name, str(tmp_path))
    with pytest.raises(ValueError, match="so promoting would use other data"):
        promote(finished_search.name, str(tmp_path / "registry"), storage=str(tmp_path))
    assert not (tmp_path / "registry").exists()


def test_a_search_whose_base_model_changed_is_not_resumed_or_re_trained(finished_search, tmp_path):
    # New weights copied over the model's path (or another size) resumed without a word:
    # trials trained on from another model, and a checkpoint of the other size was taken
    # for a damaged one. search.json records the model's files; resume and promote's
    # re-training refuse another model, before training or writing anything.
    import shutil

    from nerkit.model import model_fingerprint
    from tune.promote import promote

    record = read_settings(finished_search.path)
    assert record["model_fingerprint"] == model_fingerprint(record["base_config"]["model"])
    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    (exp / "search.json").write_text(json.dumps({**record, "model_fingerprint": "0" * 64}))
    with pytest.raises(ValueError, match=r"the base model of this search \(.*\) changed since the search started "
                                         r".* so resuming would train on another model"):
        resume_search(finished_search.name, str(tmp_path))
    with pytest.raises(ValueError, match="so re-training with --confirm-seeds would train on another model"):
        promote(finished_search.name, str(tmp_path / "registry"), storage=str(tmp_path), confirm_seeds=1)
    assert not (tmp_path / "registry").exists()


def test_resuming_a_search_whose_data_was_moved_says_to_put_it_back(finished_search, tmp_path):
    # "no such file or directory" alone: --data is refused with --resume, so the only way on
    # is the files back where search.json recorded them, or a new search.
    import shutil

    record = read_settings(finished_search.path)
    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    data = {**record["base_config"]["data"], "path": str(tmp_path / "moved"), "train": None, "dev": None, "test": None}
    (exp / "search.json").write_text(json.dumps({**record, "base_config": {**record["base_config"], "data": data}}))
    with pytest.raises(ValueError, match=r"the data this search was started with is gone \(.*moved.*\); resuming "
                                         r"reads it from where search.json recorded it, so put the files back"):
        resume_search(finished_search.name, str(tmp_path))


def _restore_points(exp: Path) -> dict[str, str | None]:
    """Trial id -> the checkpoint Ray's newest snapshot in ``exp`` restores it from (None:
    from the start), for each trial not TERMINATED, decoded as Ray's restore decodes it."""
    from ray.tune.utils.serialization import TuneFunctionDecoder

    from tune.snapshot import newest_snapshot

    out = {}
    for state, metadata in json.loads(Path(newest_snapshot(str(exp))).read_text())["trial_data"]:
        if json.loads(state)["status"] != "TERMINATED":
            # Our own run's snapshot, so unpickling it is safe (Ray's restore does the same).
            latest = TuneFunctionDecoder(allow_cloudpickle=True).decode(metadata)["checkpoint_manager"] \
                .latest_checkpoint_result
            out[json.loads(state)["trial_id"]] = latest.checkpoint.path if latest else None
    return out
