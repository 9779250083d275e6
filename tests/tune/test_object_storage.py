"""nerkit on object storage, end to end, against a real S3 endpoint (moto's server:
tests/tune/conftest.py's ``s3_endpoint``): a search with ``--storage s3://…``, its trial
tables, checkpoint retention, the report, promotion to an ``s3://`` registry, pull and
predict, and ``--resume`` of a copy after the driver is SIGKILLed. (A failing trial
retried from its checkpoint in the bucket, and a lost node's trials restored from it,
run on the multi-node cluster: tests/tune/test_cluster.py.)

What lands in the bucket is listed with boto3, a client nerkit does not use, so these
tests see the bucket as any other S3 reader would, not through nerkit's own pyarrow code.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
from ray.tune import Callback
from typer.testing import CliRunner

from tune.stop_reasons import REASONS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SPACE = str(REPO / "search_spaces" / "default.yaml")


def _s3():
    import boto3

    return boto3.client("s3")  # reaches moto through AWS_ENDPOINT_URL (s3_endpoint)


def _split(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def _listing(uri: str) -> dict[str, str]:
    """Every object under an ``s3://`` URI: key relative to it -> its ETag (changes with
    the content)."""
    bucket, prefix = _split(uri)
    pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
    return {o["Key"][len(prefix) + 1:]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def _keys(uri: str) -> set[str]:
    """Every object under an ``s3://`` URI, as keys relative to it (directory markers left out)."""
    return {k for k in _listing(uri) if k and not k.endswith("/")}  # "": the prefix's own marker


def _read(uri: str) -> bytes:
    bucket, key = _split(uri)
    return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()


def _put(uri: str, data: bytes) -> None:
    bucket, key = _split(uri)
    _s3().put_object(Bucket=bucket, Key=key, Body=data)


def _bucket(name: str) -> str:
    """A fresh bucket (per module: conftest's ``s3_storage`` is per test)."""
    bucket = f"nerkit-{name}-{uuid.uuid4().hex[:8]}"
    _s3().create_bucket(Bucket=bucket)
    return bucket


def _checkpoints(keys: set[str], trial_id: str) -> set[str]:
    """The checkpoint directories of one trial among ``_keys`` of its experiment."""
    return {k.split("/")[1] for k in keys if k.startswith(f"trial_{trial_id}/checkpoint_")}


def _results(exp: str, trial_id: str) -> list[dict]:
    """A trial's result log as it is in the bucket."""
    return [json.loads(line) for line in _read(f"{exp}/trial_{trial_id}/result.json").decode().splitlines()]


def _cli(*args: str):
    from nerkit.cli import build_app

    return CliRunner().invoke(build_app(), list(args), catch_exceptions=False)


class PlantOrphan(Callback):
    """Writes a checkpoint directory no result names into the first trial to report, on the
    bucket, as a killed driver's trial leaves one written after the last snapshot."""

    def __init__(self) -> None:
        self.planted: str | None = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.planted is None:
            fs = trial.storage.storage_filesystem
            self.planted = f"{trial.path}/checkpoint_000099"
            fs.create_dir(self.planted)
            with fs.open_output_stream(f"{self.planted}/trainer_state.json") as f:
                f.write(b"{}")


@dataclass(frozen=True)
class S3Search:
    name: str
    storage: str       # s3://<bucket>/searches
    path: str          # the experiment directory, s3://<bucket>/searches/<name>
    bucket: str
    planted: str       # the orphan checkpoint directory (a path in the bucket, no scheme)


@pytest.fixture(scope="module")
def s3_search(s3_endpoint, tiny_model_dir, small_data_dir, tmp_path_factory):
    """A finished 4-trial, 3-epoch search of the tiny model, stored in a bucket (~15 s).

    Three epochs, evaluated every half epoch (default.yaml): the first trial to reach each
    of ASHA's rungs (0.5, 1 and 2 epochs) always goes on, so at least one trial writes six
    checkpoints and retention must delete some.
    """
    import ray

    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.settings import SearchSettings

    bucket = _bucket("shared")
    storage = f"s3://{bucket}/searches"
    orphan = PlantOrphan()
    with pytest.MonkeyPatch.context() as mp:
        # The study of a search on object storage lives in the driver's cache: a fresh one.
        mp.setenv("NERKIT_CACHE", str(tmp_path_factory.mktemp("nerkit-cache")))
        settings = SearchSettings(name="s3", space=SPACE, storage=storage, trials=4, model=str(tiny_model_dir),
                                  data=DataConfig(path=str(small_data_dir)), max_epochs=3, seed=1)
        started_ray = not ray.is_initialized()
        run_search(settings, callbacks=[orphan])
        yield S3Search(settings.name, storage, settings.experiment_path, bucket, orphan.planted)
    if started_ray:
        ray.shutdown()


@pytest.fixture(scope="module")
def s3_tables(s3_search):
    from tune.tables import collect

    return collect(s3_search.path)


def test_the_search_writes_its_experiment_to_the_bucket(s3_search, s3_tables):
    # Everything a reader or a resume needs is in the bucket, not on the driver's disk:
    # search.json, Ray's experiment state and tuner, nerkit's complete copy of the state
    # (.nerkit/state), and each trial's result log and checkpoints (model and training state).
    keys = _keys(s3_search.path)
    assert {"search.json", "tuner.pkl"} <= keys
    for prefix in ("experiment_state-", "searcher-state-", "search_gen_state-"):
        assert any(k.startswith(prefix) for k in keys), (prefix, sorted(keys))
    record = json.loads(_read(f"{s3_search.path}/search.json"))
    assert record["settings"]["storage"] == s3_search.storage and record["settings"]["trials"] == 4

    complete = max(k for k in keys if k.startswith(".nerkit/state/") and k.endswith("/COMPLETE"))
    backup = complete.rsplit("/", 1)[0]
    listed = json.loads(_read(f"{s3_search.path}/{complete}"))
    assert {"tuner.pkl", "search.json"} <= set(listed)
    assert any(n.startswith("experiment_state-") for n in listed)
    assert {f"{backup}/{n}" for n in listed} <= keys

    trial_dirs = {k.split("/")[0].removeprefix("trial_") for k in keys if k.startswith("trial_")}
    assert trial_dirs == {t["trial_id"] for t in s3_tables.trials}
    for trial_id in trial_dirs:
        assert {f"trial_{trial_id}/{n}" for n in ("result.json", "params.json", "progress.csv")} <= keys
        for ckpt in _checkpoints(keys, trial_id):
            assert {f"trial_{trial_id}/{ckpt}/{n}" for n in ("model.safetensors", "training_state.safetensors",
                                                               "training_state.json", "metrics.json")} <= keys


def test_trial_tables_read_every_trial_back_from_the_bucket(s3_search, s3_tables):
    # tune.tables reads Ray's state and the result logs from the bucket: every trial once,
    # finished with a stop reason, its history as long as its result log there, and a
    # checkpoint that is an s3:// URI of a directory in the bucket.
    rows = s3_tables.trials
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    assert all(r["status"] == "TERMINATED" and r["stop_reason"] in REASONS for r in rows)
    assert {r["baseline"] for r in rows} >= {"team-recipe", "plain-ce"}
    keys = _keys(s3_search.path)
    for row in rows:
        logged = _results(s3_search.path, row["trial_id"])
        assert [h["eval_index"] for h in s3_tables.history if h["trial_id"] == row["trial_id"]] == \
            [r["eval_index"] for r in logged]
        assert not row["results_incomplete"]
        ckpt = row["checkpoint"]
        assert ckpt.startswith(f"{s3_search.path}/trial_{row['trial_id']}/checkpoint_"), ckpt
        assert f"{ckpt.removeprefix(s3_search.path + '/')}/model.safetensors" in keys


def test_retention_deletes_superseded_checkpoints_in_the_bucket(s3_search, s3_tables):
    # As on a local disk (test_retention.py): each finished trial keeps exactly its best
    # checkpoint (the one the trial table names, for promotion) and its latest, and the
    # checkpoint directory no result names (planted mid-search) is gone. At least one trial
    # wrote six checkpoints (s3_search's doc), so deleting from S3 really happened.
    keys = _keys(s3_search.path)
    for row in s3_tables.trials:
        latest = f"checkpoint_{row['evaluations'] - 1:06d}"  # Ray numbers a trial's checkpoints from 0
        assert _checkpoints(keys, row["trial_id"]) == {row["checkpoint"].rsplit("/", 1)[1], latest}, row["trial_id"]
    assert max(r["evaluations"] for r in s3_tables.trials) == 6
    bucket, _, planted = s3_search.planted.partition("/")
    assert bucket == s3_search.bucket and planted.startswith(_split(s3_search.path)[1])
    assert not _s3().list_objects_v2(Bucket=bucket, Prefix=planted).get("KeyCount")


def test_trials_cli_reads_the_bucket_and_writes_its_tables_there(s3_search, s3_tables):
    # `nerkit trials NAME --storage s3://…` shows every trial (JSON) and every evaluation
    # (--history --csv), and leaves trials.parquet and history.parquet in the experiment
    # directory, readable with pyarrow alone as docs/CLUSTER.md shows.
    import io

    import pandas as pd

    from tune.parquet import schema_version
    from tune.tables import SCHEMA_VERSION

    common = ["trials", s3_search.name, "--storage", s3_search.storage]
    res = _cli(*common, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert sorted(r["trial_id"] for r in rows) == sorted(t["trial_id"] for t in s3_tables.trials)
    assert all(r["experiment"] == s3_search.path for r in rows)
    res = _cli(*common, "--history", "--csv", "--columns", "trial_id,eval_index,dev_f1")
    assert res.exit_code == 0, res.output
    history = pd.read_csv(io.StringIO(res.stdout), dtype={"trial_id": str})
    assert len(history) == len(s3_tables.history)
    assert set(history["trial_id"]) == {t["trial_id"] for t in s3_tables.trials}

    trials = pq.read_table(f"{s3_search.path}/trials.parquet").to_pandas()
    assert sorted(trials["trial_id"]) == sorted(t["trial_id"] for t in s3_tables.trials)
    assert trials.set_index("trial_id")["best_dev_f1"].to_dict() == \
        pytest.approx({t["trial_id"]: t["best_dev_f1"] for t in s3_tables.trials})
    assert pq.read_table(f"{s3_search.path}/history.parquet").num_rows == len(history)
    assert schema_version(f"{s3_search.path}/trials.parquet") == SCHEMA_VERSION
    assert not [k for k in _keys(s3_search.path) if ".tmp-" in k]  # written under a temporary name, then moved


def test_report_of_a_search_in_the_bucket(s3_search, s3_tables, tmp_path, monkeypatch):
    # `nerkit report NAME --storage s3://…` on the driver's machine writes report.html
    # beside the experiment in the bucket; from another machine (no study in its cache)
    # with --out a file name, into the current directory (a plain file name, no directory
    # part, once made a directory of that name and failed: tune/storage.py). Both have the
    # plots and the parameter importances of all 4 trials.
    from tune.summary import best_row

    res = _cli("report", s3_search.name, "--storage", s3_search.storage)
    assert res.exit_code == 0, res.output
    assert f"{s3_search.path}/report.html" in " ".join(res.output.split())
    in_bucket = _read(f"{s3_search.path}/report.html").decode()
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "another-machine"))
    monkeypatch.chdir(tmp_path)
    res = _cli("report", s3_search.name, "--storage", s3_search.storage, "--out", "report.html")
    assert res.exit_code == 0, res.output
    local = (tmp_path / "report.html").read_text(encoding="utf-8")
    for html in (in_bucket, local):
        assert s3_search.path in html and best_row(s3_tables)["trial_id"] in html
        # learning curves, parameter scatter, importances
        assert html.count('<img src="data:image/png;base64,') == 3
        assert "computed by Optuna from the best dev F1 of 4 finished trials" in html
        assert "team-recipe" in html


def test_promote_to_an_s3_registry_then_pull_and_predict(s3_search, s3_tables, tmp_path):
    # The best trial's checkpoint comes down from the bucket, is scored on the test split
    # and published as s3://…/registry/ner/v1 (gates off: the tiny model is random);
    # `nerkit pull …@latest` brings back exactly the files the manifest lists, with their
    # sha256 and sizes, and `nerkit predict` runs on them.
    from tune.summary import best_row

    registry = f"s3://{s3_search.bucket}/registry"
    res = _cli("promote", s3_search.name, "--storage", s3_search.storage, "--registry", registry,
               "--min-entity-ratio", "0")
    assert res.exit_code == 0, res.output
    assert f"{registry}/ner/v1" in " ".join(res.output.split())
    assert _read(f"{registry}/ner/latest").decode().strip() == "v1"
    published = _keys(f"{registry}/ner")
    assert not [k for k in published if k.startswith(".tmp-")]

    dest = tmp_path / "model"
    res = _cli("pull", f"{registry}/ner@latest", "--to", str(dest))
    assert res.exit_code == 0, res.output
    manifest = json.loads((dest / "manifest.json").read_text())
    assert {f"v1/{n}" for n in manifest["files"]} | {"v1/manifest.json"} == {k for k in published if k != "latest"}
    on_disk = {p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size}
               for p in dest.iterdir() if p.name != "manifest.json"}
    assert on_disk == manifest["files"]
    assert {"model.safetensors", "config.json", "tokenizer.json", "MODEL_CARD.md"} <= set(on_disk)
    assert not any(n.startswith("training_state") for n in on_disk)
    best = best_row(s3_tables)
    assert manifest["trial_id"] == best["trial_id"] and manifest["experiment"] == s3_search.path
    # The downloaded checkpoint's own metrics.json: the evaluation the trial table names.
    assert manifest["dev_metrics"]["dev_f1"] == pytest.approx(best["checkpoint_dev_f1"])

    text = "inayat se 2 pizza mangwao"
    res = _cli("predict", "--model", str(dest), "--json", text)
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert row["text"] == text and isinstance(row["entities"], list)


def test_s3_registry_versions_and_latest(s3_storage, tmp_path):
    # On a store without rename: a second publish takes v2 (v1 untouched), `latest`
    # (replaced by a move onto the existing key) follows it and never moves back, and
    # both versions pull and verify.
    from tune.pull import pull
    from tune.registry import Registry

    registry = s3_storage.rsplit("/", 1)[0] + "/registry"
    reg = Registry(registry, "ner")
    for n in (1, 2):
        src = tmp_path / f"w{n}.bin"
        src.write_bytes(f"weights {n}".encode())
        assert reg.publish({"w.bin": src}, {"n": n}, lambda v: f"card v{v}") == n
    reg.advance_latest(1)
    assert reg.versions() == [1, 2] and reg.latest() == 2
    assert _read(f"{registry}/ner/latest").decode().strip() == "v2"
    for n in (1, 2):
        dest = pull(f"{registry}/ner@v{n}", tmp_path / f"pulled{n}")
        assert (dest / "w.bin").read_bytes() == f"weights {n}".encode()
        assert (dest / "MODEL_CARD.md").read_text() == f"card v{n}"
    assert not [k for k in _keys(f"{registry}/ner") if ".tmp-" in k]


def _logged_evaluations(exp: str) -> dict[str, int]:
    """Trial id -> evaluations in its result log in the bucket, for trials that logged one."""
    out = {}
    for key in _keys(exp):
        if key.startswith("trial_") and key.endswith("/result.json"):
            lines = _read(f"{exp}/{key}").decode().splitlines()
            if lines:
                out[key.split("/")[0].removeprefix("trial_")] = len(lines)
    return out


def _snapshot_trials(exp: str) -> set[str]:
    """The trial ids of Ray's newest snapshot in the bucket (none while it is missing or cut off)."""
    from tune.snapshot import newest_snapshot, read_snapshot

    path = newest_snapshot(exp)
    try:
        return set(read_snapshot(path)) if path else set()
    except (ValueError, FileNotFoundError):  # a copy in flight: look again
        return set()


def _wait_until_settled(uri: str, quiet_s: float = 2.0, limit_s: float = 30.0) -> None:
    """Return once nothing under ``uri`` has appeared, gone or changed for ``quiet_s``."""
    last, since, end = None, time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < end:
        now = _listing(uri)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.3)


def test_a_storage_uri_with_a_query_keeps_it_after_the_search_and_its_files(s3_storage, tiny_model_dir,
                                                                           small_data_dir, tmp_path, monkeypatch):
    # `--storage s3://b/runs?region=…` (an endpoint or region the storage needs, kept by
    # tune.storage.uri_in) + the search's name was s3://b/runs?region=…/q: the name and every
    # file went into the query, and the search failed at its first access to storage.
    import ray

    from nerkit.data import DataConfig
    from tune.driver import run_search
    from tune.settings import SearchSettings

    storage = f"{s3_storage}?region=us-east-1"
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "nerkit-cache"))
    settings = SearchSettings(name="q", space=SPACE, storage=storage, trials=1, model=str(tiny_model_dir),
                              data=DataConfig(path=str(small_data_dir)), max_epochs=0.5, seed=1)
    assert settings.experiment_path == f"{s3_storage}/q?region=us-east-1"
    started_ray = not ray.is_initialized()
    try:
        run_search(settings)
    finally:
        if started_ray:
            ray.shutdown()
    keys = _keys(f"{s3_storage}/q")
    assert "search.json" in keys and [k for k in keys if k.endswith("/model.safetensors")]
    res = _cli("trials", "q", "--storage", storage, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 1 and rows[0]["experiment"] == settings.experiment_path
    checkpoint = rows[0]["checkpoint"]  # a URI that reads back, its query kept
    assert checkpoint.startswith(f"{s3_storage}/q/trial_") and checkpoint.endswith("?region=us-east-1")
    assert f"{checkpoint.partition('?')[0].removeprefix(s3_storage + '/q/')}/model.safetensors" in keys
    assert {"trials.parquet", "history.parquet"} <= _keys(f"{s3_storage}/q")
    assert _cli("report", "q", "--storage", storage).exit_code == 0
    assert "report.html" in _keys(f"{s3_storage}/q")
    # The live study is the search's own file in the driver's cache, named without the query.
    from tune.study_store import local_study_path

    study = local_study_path(settings.experiment_path)
    assert study.name.startswith("q-") and "?" not in study.name and study.is_file()


def _copy_prefix(src: str, dest: str) -> None:
    """Copy every object under ``src`` to ``dest`` (both ``s3://`` URIs), as `aws s3 cp
    --recursive` moves a search to another bucket or prefix."""
    (sb, sp), (db, dp) = _split(src), _split(dest)
    for key in _listing(src):
        _s3().copy_object(Bucket=db, Key=f"{dp}/{key}", CopySource={"Bucket": sb, "Key": f"{sp}/{key}"})


def test_killed_search_on_s3_resumes_elsewhere_with_every_trial_once(s3_storage, tiny_model_dir, small_data_dir,
                                                                    tmp_path, monkeypatch):
    # SIGKILL a `nerkit search --storage s3://…` driver (and its local Ray) mid-search, as
    # it happened in CI during Ray's copy of its state to storage; copy the search to
    # another prefix, as a user moving runs would; put the next snapshot's searcher state
    # file into the copy (one more trial created than the table holds: the resumed search
    # ended a trial short), as a kill during Ray's copy leaves it; then `nerkit search
    # --resume` the copy on another machine (another NERKIT_CACHE: the live Optuna study
    # died with the first one's disk).
    # Resume puts nerkit's last complete copy of the state back (tune.state_backup,
    # tune.state_check; a file cut off instead is the same path, tests/tune/test_state_backup.py)
    # and the study copy saved with it on this machine. Every trial ends exactly once, in
    # the table and in the Optuna study, and its result log has no gap and repeats at most
    # the evaluations it had logged before the kill, each once.
    # Ray's searcher kept the storage it started with as the template of new trials, so
    # trials created after a resume elsewhere wrote their checkpoints into the original
    # (and after a move, found no storage: every attempt failed). Here trials are created
    # after the resume, they write into the copy, and the original is untouched.
    # Checkpoints are sparse (--checkpoint-every 2): a resumed trial goes back to an older
    # one, which retention must have left. A third machine's report reads the final copy.
    # (This is the suite's one driver kill with a local Ray: the cluster's, which
    # outlives its driver, is test_cluster.py's on local storage.)
    from collections import Counter

    import ray

    from tune.driver import plan_from_record
    from tune.reconcile import unrecorded_finished_trials
    from tune.importance import param_importances
    from tune.settings import read_settings
    from tune.state_backup import latest_backup, read_state
    from tune.state_check import disagreements
    from tune.storage import filesystem
    from tune.study_store import SEARCH_ID_ATTR, live_study_url
    from tune.tables import collect

    first = f"{s3_storage}/r"
    # Six trials, two at a time, stopped at the first result in the bucket: the resume
    # must create trials.
    cmd = [sys.executable, "-m", "nerkit", "search", "--model", str(tiny_model_dir), "--data", str(small_data_dir),
           "--trials", "6", "--max-epochs", "2", "--storage", s3_storage, "--name", "r", "--json", "--seed", "3",
           "--checkpoint-every", "2", "--max-concurrent", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "NERKIT_CACHE": str(tmp_path / "dead-machine")})
    deadline, logged = time.time() + 240, {}
    # Killed once a trial has logged and the snapshot in the bucket records every trial
    # that has: a trial's log is uploaded by its worker, the snapshot by the driver every
    # few seconds, so a trial started after another ended (a fast machine) could be in
    # the bucket and not yet in any snapshot there.
    while time.time() < deadline and not (logged and set(logged) <= _snapshot_trials(first)) and proc.poll() is None:
        time.sleep(0.5)
        logged = _logged_evaluations(first)
    assert proc.poll() is None, f"search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_until_settled(first)  # a dying worker may still upload
    before = _logged_evaluations(first)

    # The interrupted search reads back from the bucket, with the trials that had logged
    # (in its snapshot there when it was killed, so in every one since).
    res = _cli("trials", "r", "--storage", s3_storage, "--json")
    assert res.exit_code == 0, res.output
    assert set(logged) <= {r["trial_id"] for r in json.loads(res.stdout)}
    left = _listing(first)  # with the tables `nerkit trials` wrote
    assert any(k.startswith("optuna-study-") for k in left)  # uploaded with the snapshots

    storage = f"s3://{_split(s3_storage)[0]}/moved"
    exp = f"{storage}/r"
    _copy_prefix(first, exp)
    fs, path = filesystem(exp)
    assert disagreements(read_state(fs, latest_backup(fs, path))) == []  # a copy of one snapshot
    cut = sorted(k for k in _keys(exp) if k.startswith("search_gen_state-"))[-1]
    import ray.cloudpickle as cloudpickle

    state = cloudpickle.loads(_read(f"{exp}/{cut}"))
    state["counter"] += 1  # the next snapshot's file: one more trial created
    _put(f"{exp}/{cut}", cloudpickle.dumps(state))
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "new-machine"))
    started_ray = not ray.is_initialized()
    try:
        res = _cli("search", "--resume", "r", "--storage", storage, "--json")
    finally:
        if started_ray:
            ray.shutdown()
    assert res.exit_code == 0, res.output
    keys = _keys(exp)
    assert [k.rsplit("/", 1)[1] for k in keys if k.startswith(".nerkit/broken/")
            and "/search_gen_state-" in k] == [cut]

    summary = json.loads(res.stdout)
    rows = json.loads(_cli("trials", "r", "--storage", storage, "--json").stdout)
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == 6 and len(set(ids)) == 6 and summary["trials"] == 6
    assert all(r["status"] == "TERMINATED" and r["stop_reason"] in REASONS for r in rows)
    assert any(r["checkpoint"] for r in rows)
    # Trials were created after the resume, and the original is untouched.
    trial_dirs = {k.split("/")[0] for k in left if k.startswith("trial_")}
    assert len(trial_dirs) < 6 and _listing(first) == left
    for r in rows:
        # In the copy, and retention left the checkpoint the table names (what promotion
        # downloads). A trial ASHA stopped at its first evaluation wrote none (every 2nd only).
        assert not r["checkpoint"] or (r["checkpoint"].startswith(f"{exp}/trial_{r['trial_id']}/")
                                       and f"{r['checkpoint'].removeprefix(exp + '/')}/model.safetensors" in keys), \
            (r["trial_id"], r["checkpoint"])
        evals = [x["eval_index"] for x in _results(exp, r["trial_id"])]
        assert sorted(set(evals)) == list(range(max(evals) + 1)), (r["trial_id"], evals)
        again = sorted(i for i, n in Counter(evals).items() if n > 1)  # redone: a run, each once
        assert not again or (again == list(range(again[0], again[-1] + 1))
                             and len(evals) - len(set(evals)) == len(again)
                             and again[-1] <= before.get(r["trial_id"], 0)), (r["trial_id"], evals, before)

    record = read_settings(exp)
    assert record["settings"]["max_concurrent"] == 2  # stored for --resume
    study_url = live_study_url(exp)  # on this machine, for the search where it is now
    assert study_url.startswith(f"sqlite:///{tmp_path / 'new-machine'}")
    study = optuna.load_study(study_name="r", storage=study_url)
    assert study.user_attrs[SEARCH_ID_ATTR] == record["search_id"]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # A trial that started and ended after the copy resumed from (tiny trials take about a
    # second) is in the study only, and resume names it; every other one is in both.
    lost = unrecorded_finished_trials(plan_from_record(record), exp)
    assert len(complete) == 6 + len(lost)
    assert {(t.params["learning_rate"], t.params["batch_size"]) for t in complete if t.number not in lost} == \
        {(r["param_learning_rate"], r["param_batch_size"]) for r in rows}
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    monkeypatch.setenv("NERKIT_CACHE", str(tmp_path / "third-machine"))
    importances, notes = param_importances(collect(exp))
    assert importances and "learning_rate" in importances, notes
