"""Searches on a real multi-node Ray cluster on this machine (tests/tune/cluster_utils.py).

A head with no CPU/GPU and two workers with 1 CPU and 1 logical GPU each. The tests
prove placement (trials only on GPU workers, two per GPU), recovery from a lost
worker node and from a killed driver (from checkpoints: no trial lost, none run
twice), and that a trial failing on every attempt is retried from its checkpoint in
the bucket, then recorded as ``error`` while the search goes on. tune.cluster_checks'
checks against the cluster a search joins run here too. Run with
``--log-cli-level=INFO`` to see the measured figures (recovery time, compute redone).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from ray.tune import Callback

from cluster_utils import connect, start_cluster, stop_cluster, wait_for
from nerkit.data import DataConfig
from tune.driver import plan_from_record, resume_search, run_search
from tune.reconcile import unrecorded_finished_trials
from tune.settings import SearchSettings, read_settings
from tune.snapshot import newest_snapshot
from tune.state_backup import BROKEN_DIR
from tune.stop_reasons import REASONS
from tune.tables import collect
from tune.trainable import FAULT_ENV, injected_fault, trial_config

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
WORKERS = 2


@pytest.fixture(scope="module")
def _started_cluster(s3_endpoint):
    # s3_endpoint first: the nodes' processes take the S3 endpoint from the environment
    # they start in.
    import ray

    ray.shutdown()  # a local Ray another test module left running in this process
    local = start_cluster(workers=WORKERS, cpus=1, gpus=1)
    yield local
    stop_cluster(local)


@pytest.fixture
def cluster(_started_cluster):
    """The module's cluster with both workers alive, and no Ray joined by this process yet."""
    import ray

    ray.shutdown()
    _started_cluster.top_up(WORKERS)
    yield _started_cluster
    ray.shutdown()


@pytest.fixture(scope="module")
def medium_data_dir(tmp_path_factory, corpus_slice) -> Path:
    """640 train records (40 steps an epoch at batch 16): epochs long enough to kill a node in."""
    return corpus_slice(tmp_path_factory.mktemp("medium-data"), 640, 40, 40)


def _settings(storage, model, data, **kw) -> SearchSettings:
    # Half a CPU and half a GPU per trial: two trials per 1-CPU, 1-GPU worker.
    # grace = max epochs: ASHA prunes nothing, so each trial's length is known.
    values = dict(space=str(REPO / "search_spaces" / "default.yaml"), storage=str(storage), trials=4,
                  cpus_per_trial=0.5, gpus_per_trial=0.5, model=str(model), data=DataConfig(path=str(data)),
                  max_epochs=2, grace_epochs=2, seed=1, max_failures=1)
    values.update(kw)
    return SearchSettings(**values)


def _trial_results(exp: Path | str) -> dict[str, list[dict]]:
    """Every result each trial reported so far, by trial id, in order (local or s3:// storage)."""
    import pyarrow.fs as pafs

    from tune.storage import filesystem, read_text

    fs, path = filesystem(str(exp))
    out = {}
    for info in sorted(fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)), key=lambda i: i.base_name):
        if info.type != pafs.FileType.Directory or not info.base_name.startswith("trial_"):
            continue
        rows = []
        for line in (read_text(f"{info.path}/result.json", fs) or "").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line being written
        if rows:
            out[rows[0]["trial_id"]] = rows
    return out


class _EmptyLogOnStorageAfterFirstResult(Callback):
    """Leaves an empty ``result.json`` on storage when a trial reports its first result:
    the copy a Ray snapshot taken just before that result uploads."""

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result["eval_index"] == 0:
            with trial.storage.storage_filesystem.open_output_stream(f"{trial.storage.trial_fs_path}/result.json"):
                pass


class _KillBusyNode(Callback):
    """Kills a worker node from the driver's result loop, at a known point in a trial.

    Fires on the first result of evaluation 1 or later (4 of 6 still to run) whose node
    has no running trial without a registered checkpoint, so every trial there has one to
    resume from. Deciding here, not by polling result files on storage, keeps the kill
    mid-trial: those files land there late, and on a fast machine a trial finished
    before a poller saw its second evaluation and the node died with nothing on it.
    """

    def __init__(self, cluster):
        self.cluster = cluster
        self.killed: dict = {}

    def __getstate__(self):
        # Ray pickles the run's callbacks into its experiment state; the cluster handle
        # (locks, processes) stays behind.
        return {**self.__dict__, "cluster": None}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.killed or result["eval_index"] < 1 or result.get("final"):
            return
        node = result["node_id"]
        # Ray updates trial.last_result after its callbacks: this trial's node is in `result`.
        on_node = [t for t in trials if t is trial or (t.status == t.RUNNING and t.last_result.get("node_id") == node)]
        if all(t.checkpoint is not None for t in on_node):
            self.cluster.kill_worker(node)
            self.killed.update(node_id=node, at=time.time(), trial_id=trial.trial_id, eval_index=result["eval_index"])


def _assert_accounted(tables, n: int, statuses=("TERMINATED",)) -> None:
    ids = [t["trial_id"] for t in tables.trials]
    assert len(ids) == n and len(set(ids)) == n, ids
    assert all(t["status"] in statuses and t["stop_reason"] in REASONS for t in tables.trials), \
        [(t["trial_id"], t["status"], t["stop_reason"]) for t in tables.trials]


def test_storage_the_other_nodes_do_not_see_is_refused_and_unused_gpus_are_named(cluster, tmp_path, caplog):
    # A local --storage on one node's own disk: every trial would train to its first
    # checkpoint, fail there, be retried, and the search end all in error. The probe runs
    # on the workers: a path missing there is what a head-only disk looks like to them.
    from tune.cluster_checks import check_storage_on_every_node, warn_if_gpus_unused
    from tune.driver_lock import LOCK_FILE

    connect(cluster)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / LOCK_FILE).touch()
    check_storage_on_every_node(str(shared))  # this machine's disk: every node sees it
    # A node that died since ray.nodes() listed it (still "Alive" for seconds): its task
    # is unschedulable, and the check crashed the search with Ray's 53-line traceback.
    import ray

    listed = ray.nodes()
    gone = {"Alive": True, "NodeID": "ab" * 28, "Resources": {"CPU": 1.0}, "NodeManagerAddress": "10.9.9.9"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray, "nodes", lambda: [*listed, gone])
        check_storage_on_every_node(str(shared))
    with pytest.raises(ValueError, match=rf"is a local path that {WORKERS} of the cluster's {WORKERS} other node\(s\) \(127.0.0.1\) "
                                         r"do not see.*NFS\) or an s3://"):
        check_storage_on_every_node(str(tmp_path / "head-only"))
    # GPUs on the cluster, none asked for: trials would train on the CPUs.
    with caplog.at_level("WARNING", logger="tune.cluster_checks"):
        warn_if_gpus_unused(SearchSettings(name="x", space="default"))
    assert f"the cluster has {WORKERS} GPU(s), but --gpus-per-trial is 0" in caplog.text


def test_gpu_trials_on_a_cluster_with_no_gpu_to_give_are_warned_about(tmp_path, caplog, monkeypatch):
    # --gpus-per-trial 0.5 on a CPU-only cluster that adds no GPU node waited for ever; only
    # Ray's warning came, naming ScalingConfig, not a nerkit option.
    import ray

    from tune.cluster_checks import warn_if_autoscaling_would_starve

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    settings = SearchSettings(name="s", space="x.yaml", trials=8, gpus_per_trial=0.5)
    with caplog.at_level(logging.WARNING, logger="tune.cluster_checks"):
        warn_if_autoscaling_would_starve(settings, True, str(tmp_path / "no-bootstrap.yaml"))
    assert "the cluster has no GPU now" in caplog.text and "give --gpus-per-trial 0 to train on CPUs" in caplog.text
    caplog.clear()
    bootstrap = tmp_path / "bootstrap.yaml"  # a `ray up` head whose config adds GPU workers
    bootstrap.write_text("head_node_type: head\navailable_node_types:\n  head: {resources: {}}\n"
                         "  gpu: {resources: {GPU: 1}, max_workers: 4}\n")
    with caplog.at_level(logging.WARNING, logger="tune.cluster_checks"):
        warn_if_autoscaling_would_starve(settings, True, str(bootstrap))
    # It adds them for trials that wait: one at a time is what the search would run.
    assert "no GPU now" not in caplog.text and "holds 0 concurrent trial(s) now, so the search runs at most 1" in caplog.text


def test_a_search_knows_whether_it_joined_a_cluster(cluster):
    # `ray exec` on the head runs `nerkit search` with no address, and ray.init() joins the
    # cluster there: deciding "a cluster" by the address given missed it, and the warning
    # that a head-only start runs one trial at a time never came.
    import ray

    from tune.ray_connect import init_ray_for, joined_cluster

    ray.shutdown()
    init_ray_for(SearchSettings(name="s", space="x.yaml"), cluster.address)
    assert joined_cluster()


def test_joining_a_cluster_that_holds_fewer_trials_than_asked_warns(cluster, caplog):
    # On an autoscaling cluster the default concurrency is what its nodes hold now (here 2
    # workers of 1 CPU: 2 trials of 1 CPU) for the whole search: the driver says so, and
    # how to let the cluster grow. Not with --max-concurrent, nor on a local Ray.
    from tune.cluster_checks import warn_if_autoscaling_would_starve

    connect(cluster)
    with caplog.at_level(logging.WARNING, logger="tune.cluster_checks"):
        warn_if_autoscaling_would_starve(SearchSettings(name="s", space="x.yaml", trials=8), True)
        assert f"holds {WORKERS} concurrent trial(s) now" in caplog.text and "--max-concurrent" in caplog.text
        caplog.clear()
        warn_if_autoscaling_would_starve(SearchSettings(name="s", space="x.yaml", trials=8, max_concurrent=32), True)
        warn_if_autoscaling_would_starve(SearchSettings(name="s", space="x.yaml", trials=WORKERS), True)
        warn_if_autoscaling_would_starve(SearchSettings(name="s", space="x.yaml", trials=8), False)  # Ray started here
        assert caplog.text == ""


def test_killed_driver_resumes_on_the_cluster_with_every_trial_once(cluster, tmp_path, tiny_model_dir,
                                                                     small_data_dir):
    # SIGKILL the driver (a `nerkit search --address` subprocess) mid-search while the cluster
    # stays up, then resume_search on the same cluster: no trial lost, none run twice, and the
    # Optuna study agrees with the trial table.
    # One trial per worker: two per GPU (the OOM test's placement) starts twice the trial
    # processes on the kill and again on the resume, which on a 2-core machine took the
    # test from 42 s to 76 s with nothing more to check.
    start = time.monotonic()
    name, trials = "killed-driver", 6
    cmd = [sys.executable, "-m", "nerkit", "search", "--model", str(tiny_model_dir), "--data", str(small_data_dir),
           "--trials", str(trials), "--max-epochs", "3", "--storage", str(tmp_path), "--name", name,
           "--json", "--seed", "3", "--cpus-per-trial", "1", "--gpus-per-trial", "1",
           "--max-failures", "1", "--address", cluster.address]
    proc = subprocess.Popen(cmd, start_new_session=True, env=cluster.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    exp = tmp_path / name
    try:
        wait_for(lambda: len(_trial_results(exp)) >= 3 or proc.poll() is not None, 240, "3 reporting trials")
        assert proc.poll() is None, f"search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = time.monotonic()
    # What each trial had reported: storage's copy of its log (synced in the background)
    # or the killed driver's staging copy, whichever is ahead. The cluster outlives the
    # driver, so the resumed one appends to that staging copy (same Ray session, same
    # directory): rows that never reached storage come back at the head of the log.
    staged = _staged_results(cluster.cluster.head_node.get_session_dir_path(), name)
    assert staged, "no staging copy of the trials' logs found: Ray's layout changed?"
    stored = _trial_results(exp)
    before = {tid: max(len(stored.get(tid, [])), len(staged.get(tid, []))) for tid in {*stored, *staged}}
    snapped = _snapshot_last_evals(exp)  # what the resume below restores from, unless it falls back

    resume_search(name, str(tmp_path), address=cluster.address)
    tables = collect(str(exp))
    _assert_accounted(tables, trials)
    assert {t["node_id"] for t in tables.trials} <= set(cluster.workers)
    # When the kill left Ray's state cut off or from two snapshots, resume went back to
    # nerkit's last complete copy (tune.state_backup), up to a few seconds older: trials
    # may then redo more than one evaluation, and one that finished after that copy is in
    # the study only (resume names it; Ray ran another in its place).
    from_copy = (exp / BROKEN_DIR).exists()
    lost = unrecorded_finished_trials(plan_from_record(read_settings(str(exp))), str(exp))
    assert from_copy or not lost, lost
    redone = 0
    for trial_id, rows in _trial_results(exp).items():
        evals = [r["eval_index"] for r in rows]
        assert sorted(set(evals)) == list(range(max(evals) + 1)), f"{trial_id}: {evals}"
        # Redone: a run of evaluations, each once, none past the last one before the kill.
        # `before` counts the rows logged by the kill; a trial's last evaluation may have
        # been reported but not yet logged, so it is row n_before - 1 or n_before.
        again = [i for i, n in Counter(evals).items() if n > 1]
        n_before = before.get(trial_id, 0)
        assert not again or (sorted(again) == list(range(min(again), max(again) + 1))
                             and max(again) <= n_before and len(evals) - len(set(evals)) == len(again)), \
            f"{trial_id}: {evals} ({n_before} before the kill)"
        if not from_copy and again:
            # Resumed from Ray's snapshot: from the checkpoint of the last evaluation it
            # recorded, or the one before when Ray had not registered that one yet. So the
            # redone run starts there: one evaluation when evaluations are further apart
            # than snapshots, more when trials this small outpace them (README).
            first = snapped.get(trial_id, -1) + 1  # the first evaluation the snapshot lacks
            assert min(again) in (first - 1, first), f"{trial_id}: {evals}, snapshot up to {first - 1}"
        redone += len(again)

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{exp / 'optuna.db'}")
    states = Counter(t.state for t in study.trials)
    assert states[optuna.trial.TrialState.COMPLETE] == trials + len(lost)
    assert states[optuna.trial.TrialState.RUNNING] == 0
    # One COMPLETE study trial per Ray trial, matched by parameters.
    complete = [t.params for t in study.trials
                if t.state == optuna.trial.TrialState.COMPLETE and t.number not in lost]
    searched = {k[len("param_"):] for k in tables.trials[0] if k.startswith("param_")}
    for row in tables.trials:
        params = {k: row[f"param_{k}"] for k in searched if row[f"param_{k}"] is not None}
        assert params in complete, params
        complete.remove(params)
    logger.info("killed driver: %d trials had reported %s before the kill; %d evaluation(s) redone; "
                "resumed from %s; resume took %.1f s, test %.1f s", len(before), sorted(before.values()), redone,
                "nerkit's copy" if from_copy else "Ray's snapshot", time.monotonic() - killed_at,
                time.monotonic() - start)


def _staged_results(session_dir: str, name: str) -> dict[str, list[dict]]:
    """Trial id -> the results in the driver's staging copy of its log, under the Ray
    session's artifacts (``<session>/artifacts/<run>/<name>/driver_artifacts``)."""
    out: dict[str, list[dict]] = {}
    for path in Path(session_dir).glob(f"artifacts/*/{name}/driver_artifacts/trial_*/result.json"):
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line being written when the driver was killed
        if rows:
            out[rows[0]["trial_id"]] = rows
    return out


def _snapshot_last_evals(exp: Path) -> dict[str, int]:
    """Trial id -> the last evaluation Ray's newest experiment snapshot in ``exp`` records
    (a cut-off file, which resume replaces by nerkit's copy, gives {})."""
    path = newest_snapshot(str(exp))
    try:
        trial_data = json.loads(Path(path).read_text())["trial_data"] if path else []
    except json.JSONDecodeError:
        return {}
    out = {}
    for state, metadata in trial_data:
        last = json.loads(metadata).get("last_result") or {}
        if "eval_index" in last:
            out[json.loads(state)["trial_id"]] = last["eval_index"]
    return out


def test_fault_spec_matches_by_resolved_config_and_rejects_bad_specs():
    # NERKIT_FAULT_INJECT picks trials by their resolved config; a malformed spec fails the
    # trial with an error naming the value and an example, never silently injects nothing.
    from nerkit.config import TrainConfig

    cfg = trial_config(TrainConfig().to_dict(), {"learning_rate": 3e-05, "batch_size": 16})
    assert injected_fault(cfg, None) is None
    assert injected_fault(cfg, '{"when": {"learning_rate": 3e-05}, "at_eval": 1}') == 1
    assert injected_fault(cfg, '{"when": {"learning_rate": 5e-05}, "at_eval": 1}') is None
    assert injected_fault(cfg, '{"at_eval": 2, "error": "oom"}') == 2  # no `when`: every trial
    for bad, message in (("oom", "not JSON"), ('{"at": 1}', "must be an object with keys"),
                         ('{"error": "segfault"}', "must be one of"), ('{"at_eval": -1}', "integer >= 0")):
        with pytest.raises(ValueError, match=message):
            injected_fault(cfg, bad)


def test_a_cluster_address_is_refused_while_joined_to_another_ray(cluster, tmp_path, tiny_model_dir,
                                                                  small_data_dir):
    # A process already joined to one Ray (here the cluster) that asks for another address
    # gets an error naming both, instead of a search silently run on the wrong Ray.
    connect(cluster)
    other = "127.0.0.1:1"
    settings = _settings(tmp_path, tiny_model_dir, small_data_dir, name="wrong-ray")
    with pytest.raises(ValueError, match=r"address is '127\.0\.0\.1:1', but this process already joined"):
        run_search(settings, address=other)


def test_trial_failing_every_attempt_is_retried_from_its_checkpoint_in_the_bucket_then_recorded_as_error(
        cluster, tmp_path, tiny_model_dir, small_data_dir, s3_storage, monkeypatch):
    # The team-recipe baseline (learning_rate 3e-5) raises an injected CUDA OOM after every
    # evaluation from the 7th on: Ray retries it max_failures times from its last
    # checkpoint in the bucket, then it ends as `error`; the other trials complete and
    # Optuna records the failure.
    # Checkpoints are sparse (--checkpoint-every 2), evaluations every 2 steps: the retry
    # resumes from evaluation 5's checkpoint and redoes evaluation 6 exactly (same step,
    # same dev F1). The bucket's copy of the failed trial's result log is left empty at its
    # first result and no snapshot refreshes it (as a snapshot taken between the trial's
    # start and that result leaves it; with the ~1 s period, CI saw it happen), so only
    # tune.result_logs' upload before the retry keeps evaluations 0-6 there. Retention
    # prunes every trial in the bucket and leaves each the checkpoint the trial table names
    # and its latest (a resume with resume_errored restores the failed one from it).
    # Placement, with gpus_per_trial=0.5 on two 1-GPU workers: every trial runs on a worker
    # (never the head), two share each logical GPU at the same time, node and GPU ids reach
    # the trial table, and trials train on the CPU although Ray assigned them a GPU id.
    import csv
    import io

    import pyarrow.fs as pafs
    import yaml
    from ray.tune import ExperimentAnalysis

    from tune.retention import superseded
    from tune.storage import filesystem, is_file, read_text
    from tune.study_choice import study_for_reading
    from tune.trainable import writes_checkpoint

    # Evaluations every 2 steps instead of default.yaml's evals_per_epoch (the two exclude each other).
    values = yaml.safe_load((REPO / "search_spaces" / "default.yaml").read_text())
    values["base"] = {**{k: v for k, v in values["base"].items() if k != "evals_per_epoch"}, "eval_every_steps": 2}
    values["collapse_guard"]["enabled"] = False  # it counts evaluations, which fall at other epochs per batch size
    space = tmp_path / "every2.yaml"
    space.write_text(yaml.safe_dump(values, sort_keys=False))
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "nerkit-cache"))  # a search on S3 keeps its study there
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "3600")  # no snapshot between the first result and the retry
    start = time.monotonic()
    fault = {"when": {"learning_rate": 3e-05}, "at_eval": 6, "error": "oom"}
    connect(cluster, env_vars={FAULT_ENV: json.dumps(fault)})  # the job's runtime_env reaches every trial
    # 160 records: 10 steps an epoch at batch 16; grace = budget: ASHA stops no trial
    # before the fault.
    settings = _settings(s3_storage, tiny_model_dir, small_data_dir, name="retry", space=str(space), trials=4,
                         max_epochs=2, grace_epochs=2, checkpoint_every=2, max_failures=1)
    run_search(settings, address=cluster.address, callbacks=[_EmptyLogOnStorageAfterFirstResult()])
    exp = settings.experiment_path

    tables = collect(exp)
    _assert_accounted(tables, 4, statuses=("TERMINATED", "ERROR"))
    failed = next(t for t in tables.trials if t["baseline"] == "team-recipe")
    assert (failed["status"], failed["stop_reason"]) == ("ERROR", "error")
    assert "injected by NERKIT_FAULT_INJECT" in failed["error"]  # the table carries the trace
    others = [t for t in tables.trials if t is not failed]
    assert [t["stop_reason"] for t in others] == ["completed"] * 3  # CPU fallback worked

    # Four slots (two workers, half a GPU each), four trials: all start at once, two per
    # worker, and each worker's two trained at the same time on its one GPU.
    assert {t["node_id"] for t in tables.trials} <= set(cluster.workers)
    assert all(t["gpu_ids"] == "0" and t["node_ip"] == "127.0.0.1" for t in tables.trials)
    logs = _trial_results(exp)
    first = {trial_id: rows[0] for trial_id, rows in logs.items()}
    assert sorted(Counter(r["node_id"] for r in first.values()).values()) == [2, 2], first
    for node in cluster.workers:
        (s1, e1), (s2, e2) = [(r["timestamp"] - r["time_total_s"], r["timestamp"])
                              for r in first.values() if r["node_id"] == node]
        assert max(s1, s2) < min(e1, e2), f"trials on {node} did not overlap: {first}"

    # max_failures + 1 attempts, as Ray's state in the bucket records them.
    attempts = 1 + settings.max_failures
    (trial,) = [t for t in ExperimentAnalysis(exp).trials if t.trial_id == failed["trial_id"]]
    assert trial.num_failures == attempts
    error_txt = read_text(f"{exp}/trial_{trial.trial_id}/error.txt")
    assert error_txt.count("Failure # ") == attempts
    assert error_txt.count("CUDA out of memory (injected by NERKIT_FAULT_INJECT") == attempts

    fs, path = filesystem(exp)
    for row in tables.trials:
        results = logs[row["trial_id"]]
        saved = {r["eval_index"]: r for r in results if r.get("checkpoint_dir_name")}
        if row is failed:
            assert [r["eval_index"] for r in results] == [0, 1, 2, 3, 4, 5, 6, 6]  # resumed at 5, not from 0
            once, redo = results[6], results[7]
            assert once["step"] == 14 and (redo["step"], redo["dev_f1"]) == (once["step"], once["dev_f1"])
            assert sorted(saved) == [1, 3, 5]
        else:
            # Every 2 steps over 2 epochs (the batch size is searched), a checkpoint at every
            # 2nd evaluation and at the final one.
            n = len(results)
            assert [r["eval_index"] for r in results] == list(range(n)) and results[-1]["final"]
            assert sorted(saved) == [i for i in range(n)
                                     if writes_checkpoint({"eval_index": i, "final": i == n - 1}, 2)]
            assert row["baseline"] != "plain-ce" or n == 10
        assert [h["eval_index"] for h in tables.history if h["trial_id"] == row["trial_id"]] == \
            [r["eval_index"] for r in results]
        progress = csv.DictReader(io.StringIO(read_text(f"{exp}/trial_{row['trial_id']}/progress.csv")))
        assert [int(r["eval_index"]) for r in progress] == [r["eval_index"] for r in results]  # Ray's other log
        # The table's checkpoint is the best checkpointed evaluation, in the bucket.
        best_saved = max(saved.values(), key=lambda r: r["dev_f1"])
        assert row["checkpoint_eval_index"] == best_saved["eval_index"]
        assert row["checkpoint"].startswith(f"{exp}/trial_{row['trial_id']}/")
        assert json.loads(read_text(f"{row['checkpoint']}/metrics.json"))["eval_index"] == best_saved["eval_index"]
        # Retention left it, the latest, and only what it keeps of the rest (a finished
        # trial: nothing else).
        f1 = {r["checkpoint_dir_name"]: r["dev_f1"] for r in saved.values()}
        latest = saved[max(saved)]["checkpoint_dir_name"]
        left = {i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{path}/trial_{row['trial_id']}"))
                if i.base_name.startswith("checkpoint_")}
        assert {row["checkpoint"].rsplit("/", 1)[1], latest} <= left
        assert left == set(f1) - set(superseded(f1, latest, finished=row is not failed)), (row["status"], left)
        assert all(is_file(f"{path}/trial_{row['trial_id']}/{c}/model.safetensors", fs) for c in left)

    # Optuna recorded the failure, also in the study copy in the bucket that another
    # machine's report or resume reads.
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "another-machine"))
    study = optuna.load_study(study_name="retry", storage=study_for_reading(exp, tables.record, tmp_path))
    assert Counter(t.state.name for t in study.trials) == {"COMPLETE": 3, "FAIL": 1}
    logger.info("injected OOM: %d attempts, error recorded, search done in %.1f s", attempts,
                time.monotonic() - start)


def test_trials_that_ended_in_error_run_again_on_resume_and_the_study_learns_how_they_ended(
        cluster, tmp_path, tiny_model_dir, small_data_dir):
    # Both trials fail after their first evaluation (an injected CUDA OOM, no retries) and
    # end as `error`. --resume runs them again from that evaluation's checkpoint and they
    # complete. Their study trials stay FAIL; the study used never to hear how the reruns
    # ended (Ray's limiter dropped their completions), so TPE learnt only failures. Now
    # each rerun's value, the trial table's best_dev_f1, is a new study trial with the
    # trial's parameters.
    # On the cluster the fault reaches the trials through the first driver's job (its
    # runtime_env) and the resume is another job, without it: on a local Ray, whose workers
    # take it from the environment Ray started in, that cost two restarts of it.
    from tune.searcher import RERUN_OF

    connect(cluster, env_vars={FAULT_ENV: json.dumps({"when": {}, "at_eval": 0})})
    settings = _settings(tmp_path, tiny_model_dir, small_data_dir, name="err", trials=2, max_epochs=1,
                         grace_epochs=None, cpus_per_trial=1, gpus_per_trial=0, max_failures=0, baselines=False)
    run_search(settings, address=cluster.address)
    assert [t["stop_reason"] for t in collect(settings.experiment_path).trials] == ["error", "error"]
    connect(cluster)  # a new job: no fault
    resume_search("err", str(tmp_path), address=cluster.address)
    tables = collect(settings.experiment_path)
    assert [t["stop_reason"] for t in tables.trials] == ["completed", "completed"]
    study = optuna.load_study(study_name="err", storage=settings.optuna_url())
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    learnt = {t.user_attrs["ray_trial_id"]: t for t in study.trials if RERUN_OF in t.user_attrs}
    assert len(failed) == 2 and len(study.trials) == 4
    for row in tables.trials:
        rerun = learnt[row["trial_id"]]
        assert rerun.state == optuna.trial.TrialState.COMPLETE
        assert rerun.value == pytest.approx(row["best_dev_f1"])
        assert rerun.params == next(t.params for t in failed if t.number == rerun.user_attrs[RERUN_OF])


def test_lost_worker_node_resumes_its_trials_from_their_checkpoints(cluster, tiny_model_dir, medium_data_dir,
                                                                     s3_storage):
    # Last in this module: it loses a worker, and replacing it costs the next test ~5 s.
    # SIGKILL a worker node while its trials train: they restart on the surviving worker from
    # their last registered checkpoint (eval_index and step continue, nothing trained from
    # scratch, at most the last evaluation before the loss run again) and the search
    # completes with every trial accounted for. On S3 as a real cluster keeps its runs,
    # where a node's disk is its own: the lost node uploaded the checkpoints, and the
    # surviving one restores from the bucket. (Storage every node shares, the local case,
    # restores the same way after the killed driver's resume above, which runs on it.)
    start = time.monotonic()
    settings = _settings(s3_storage, tiny_model_dir, medium_data_dir, name="lost-node", trials=2, max_epochs=3,
                         grace_epochs=3)
    exp = settings.experiment_path
    killer = _KillBusyNode(cluster)
    run_search(settings, address=cluster.address, callbacks=[killer])
    killed = killer.killed
    assert killed, "no trial reached its second evaluation with a checkpoint on its node"

    tables = collect(str(exp))
    _assert_accounted(tables, 2)
    per_epoch = math.ceil(640 / 16)
    per_eval = per_epoch // plan_from_record(read_settings(exp)).base.evals_per_epoch  # the space's, 2: 20
    moved = []
    for trial_id, rows in _trial_results(exp).items():
        before = [r for r in rows if r["node_id"] == killed["node_id"]]
        after = [r for r in rows if r["node_id"] != killed["node_id"]]
        evals = [r["eval_index"] for r in rows]
        # Ray registers a result's checkpoint when it processes the save that follows the
        # result: a node lost in between restarts the trial from the checkpoint before,
        # and that one evaluation runs again (its first run stays in the log).
        assert evals == sorted(evals) and sorted(set(evals)) == list(range(len(set(evals)))) \
            and len(evals) - len(set(evals)) <= 1, f"{trial_id} re-ran or skipped evaluations: {evals}"
        if not before or before[-1].get("final"):
            continue  # not on the lost node, or finished before it was lost
        moved.append(trial_id)
        first = after[0]
        # Resumed from a checkpoint: the next evaluation (or the last one again), with the
        # optimizer step count carried on from that checkpoint, not from scratch.
        assert first["eval_index"] in (before[-1]["eval_index"], before[-1]["eval_index"] + 1)
        assert first["step"] == (first["eval_index"] + 1) * per_eval > per_eval
        assert first["node_id"] in cluster.workers
        assert rows[-1]["final"] and rows[-1]["step"] == 3 * per_epoch
        logger.info("lost node: trial %s resumed from step %d (last evaluation before the loss: %d, redone: %s) "
                    "on another node, training again %.1f s after the kill (killed at trial %s's evaluation %d)",
                    trial_id, first["step"] - per_eval, before[-1]["eval_index"],
                    first["eval_index"] == before[-1]["eval_index"],
                    first["timestamp"] - first["time_this_iter_s"] - killed["at"], killed["trial_id"],
                    killed["eval_index"])
    assert killed["trial_id"] in moved, f"trial {killed['trial_id']} did not move off the killed node: {moved}"
    logger.info("lost node (s3 storage): %d of 2 trials moved; search done in %.1f s", len(moved),
                time.monotonic() - start)
