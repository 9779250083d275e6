"""Promotion: test-split gates, atomic versions, the manifest and the ``latest`` pointer."""

from __future__ import annotations

import json
import re
import threading
import time

import pyarrow.fs as pafs
import pytest
from typer.testing import CliRunner

from nerkit.config import TrainConfig
from nerkit.features import prepare_data
from nerkit.weights import config_weights, entity_o_ratio
from tune.promote import PromotionRefused, promote
from tune.registry import MANIFEST, Registry
from tune.summary import best_row


def _verified(registry_dir, version: int) -> dict:
    """The version's manifest, after checking every file against it."""
    reg = Registry(str(registry_dir), "ner")
    path = reg.version_path(version)
    manifest = json.loads(open(f"{path}/{MANIFEST}", encoding="utf-8").read())
    found = reg.file_hashes(path)
    found.pop(MANIFEST)
    assert found == manifest["files"]
    return manifest


def test_promote_publishes_a_complete_verified_version(promoted, search_tables):
    # v1 holds the model files, card and manifest of the best trial; latest points at it.
    registry, result = promoted
    best = best_row(search_tables)
    assert result.version == 1 and result.uri == f"{registry}/ner/v1"
    manifest = _verified(registry, 1)
    assert manifest["trial_id"] == best["trial_id"] and manifest["version"] == 1
    assert {"config.json", "model.safetensors", "nerkit_config.json", "tokenizer_config.json",
            "MODEL_CARD.md"} <= set(manifest["files"])
    assert not any(n.startswith("training_state") for n in manifest["files"])
    assert manifest["config"] == json.loads(best["config"])
    assert manifest["dev_metrics"]["dev_f1"] == pytest.approx(best["best_dev_f1"])
    assert set(manifest["test_metrics"]) >= {"f1", "precision", "recall", "entity_pred_ratio"}
    assert set(manifest["per_type"]) == {k.removeprefix("best_f1_") for k in best if k.startswith("best_f1_")}
    assert manifest["label_map"]["labels"][0] == "O" and len(manifest["data_fingerprint"]) == 64
    assert set(manifest["versions"]) == {"nerkit", "torch", "transformers", "ray", "optuna"}
    # What the model trained with, not only what promoted it, as the trial's run wrote it
    # beside the checkpoint: its config's class weights on the train split (whose entity:O
    # ratio is the one the trial reported) and the packages; test scored as `nerkit predict`
    # runs it; the dev metrics are the evaluation's alone.
    assert manifest["training_record_from"] == "checkpoint"
    assert set(manifest["training_versions"]) == {"nerkit", "torch", "transformers", "ray", "optuna"}
    labels, weights = manifest["label_map"]["labels"], manifest["class_weights"]
    cfg = TrainConfig.from_dict(manifest["config"])
    counts = prepare_data(cfg.data, cfg.model, cfg.max_length, cfg.label_all_subwords).train_counts
    assert weights == pytest.approx(dict(zip(labels, config_weights(cfg, counts))), rel=1e-6)
    assert entity_o_ratio([weights[label] for label in labels], counts) == pytest.approx(best["entity_o_ratio"])
    assert not set(manifest["dev_metrics"]) & {"class_weights", "versions"}
    assert manifest["test_precision"] == "fp32"
    assert (registry / "ner" / "latest").read_text().strip() == "v1"
    assert not list((registry / "ner").glob(".tmp-*"))
    # The card's pipeline snippet merges subwords as the model was trained (first subword:
    # "simple" returned "tu", "##shar" as entities), and says long inputs are windowed.
    card = (registry / "ner" / "v1" / "MODEL_CARD.md").read_text()
    assert 'aggregation_strategy="first"' in card and "overlapping windows" in card


def test_refused_promotion_writes_nothing(finished_search, tmp_path):
    # A model below a gate is refused (exit 3 from the CLI: not an I/O failure's 1 or a
    # usage error's 2, so a pipeline can tell them apart) and the registry stays empty.
    from nerkit.cli import build_app

    registry = tmp_path / "reg"
    res = CliRunner().invoke(build_app(), ["promote", finished_search.name, "--registry", str(registry),
                                           "--storage", finished_search.storage, "--min-f1", "0.99",
                                           "--min-entity-ratio", "0"])
    assert res.exit_code == 3, res.output
    assert "min-f1" in res.output
    # The search's random tiny model finds no test entity: the default gates refuse it.
    res = CliRunner().invoke(build_app(), ["promote", finished_search.name, "--registry", str(registry),
                                           "--storage", finished_search.storage])
    assert res.exit_code == 3, res.output
    assert "no test entity found correctly" in " ".join(res.output.split())
    with pytest.raises(PromotionRefused, match="entity_pred_ratio"):
        promote(finished_search.name, str(registry), storage=finished_search.storage, min_entity_ratio=1.0)
    assert not registry.exists()


def _run_in_threads(*targets) -> None:
    """Start a thread per target, all at once, and wait for every one."""
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_promotions_of_one_model_publish_it_once(finished_search, tmp_path, monkeypatch):
    # Two runs of a release pipeline at once: both found the model unpublished and both
    # published it, two versions of the same weights. Now the check and the publish are
    # held together (Registry.publishing): one publishes v1, the other finds it there.
    registry, results, errors = tmp_path / "reg", [], []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait()
            results.append(promote(finished_search.name, str(registry), storage=finished_search.storage,
                                   min_entity_ratio=0.0))
        except Exception as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    # A second in the check: without the lock both would be in it at once, find nothing
    # published, and publish it twice.
    real_holds = Registry.holds

    def slow_holds(self, hashes):
        found = real_holds(self, hashes)
        time.sleep(1.0)
        return found

    monkeypatch.setattr(Registry, "holds", slow_holds)
    _run_in_threads(run, run)
    assert not errors
    assert sorted((r.version, r.published) for r in results) == [(1, False), (1, True)]
    assert _verified(registry, 1)["version"] == 1
    reg = Registry(str(registry), "ner")
    assert reg.versions() == [1] and reg.latest() == 1


def test_publishers_that_race_for_one_version_get_distinct_complete_ones(tmp_path, monkeypatch):
    # Two publishers both pick v1 before either claims it (other models' promotes, or a
    # publisher without the lock): the atomic rename alone keeps them apart, and the
    # loser takes v2.
    reg_dir, results, errors = tmp_path / "reg", [], []
    claimed = threading.Barrier(2, timeout=60)
    real_claim = Registry._claim

    def claim_together(self, tmp, version):
        if version == 1:
            claimed.wait()  # both staged for v1
        return real_claim(self, tmp, version)

    def run(i: int) -> None:
        src = tmp_path / f"weights{i}.bin"
        src.write_bytes(f"model {i}".encode())
        try:
            results.append(Registry(str(reg_dir), "ner").publish({"weights.bin": src}, {}, lambda n: f"v{n}"))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    monkeypatch.setattr(Registry, "_claim", claim_together)
    _run_in_threads(lambda: run(0), lambda: run(1))
    assert not errors and sorted(results) == [1, 2]
    for v in (1, 2):
        assert _verified(reg_dir, v)["version"] == v
    assert Registry(str(reg_dir), "ner").latest() == 2


def test_promoting_the_same_model_again_publishes_nothing_new(finished_search, tmp_path):
    # A release pipeline re-run (or a retry after `latest` failed to move) promotes the same
    # checkpoint again: v1 already holds it, so no v2 with the same weights appears, and a
    # lagging `latest` is moved to it. Another model is still published as the next version.
    from nerkit.cli import build_app

    # A registry path longer than a terminal line: a pipeline reads the paths whole from
    # the output, which rich folded at 80 columns when piped.
    registry = tmp_path / ("registry-" + "x" * 80)
    args = ["promote", finished_search.name, "--registry", str(registry), "--storage", finished_search.storage,
            "--min-entity-ratio", "0"]
    first = CliRunner().invoke(build_app(), args)
    assert first.exit_code == 0 and "promoted" in first.output, first.output
    assert f"nerkit pull {registry}/ner@v1 --to DIR\n" in first.output
    (registry / "ner" / "latest").unlink()  # as if moving latest had failed
    again = CliRunner().invoke(build_app(), args)
    assert again.exit_code == 0, again.output
    assert "already published" in again.output and f"{registry}/ner/v1 " in again.output
    assert "latest now points at it" in again.output
    reg = Registry(str(registry), "ner")
    assert reg.versions() == [1] and reg.latest() == 1
    # A pipeline reads the outcome as JSON, not from the prose.
    third = CliRunner().invoke(build_app(), [*args, "--json"])
    assert third.exit_code == 0, third.output
    out = json.loads(third.stdout)
    assert (out["published"], out["version"], out["ref"], out["latest_before"]) == (False, 1, f"{registry}/ner@v1", 1)
    assert out["trial_id"] and out["test_metrics"]["f1"] >= 0


@pytest.mark.parametrize(("before", "says"), [
    (None, "latest now points at it; it pointed nowhere before"),
    # A rollback by hand (latest set back to v1) is undone by promoting v2's model again.
    (1, "latest moved from v1 to it"),
    (2, "latest points at it already"),
    (3, "latest stays at v3, a newer version"),
])
def test_promoting_again_says_what_it_did_to_latest(before, says):
    from tune.cli.promote import latest_note

    assert latest_note(before, 2) == says


def test_a_registry_that_is_a_version_a_model_or_a_file_is_refused_before_any_work(promoted, tmp_path):
    # Promote prints ".../ner/v1"; pasted into --registry it published into that version
    # (ner/v1/ner/v1), which then failed every pull; a model's own directory published
    # ner/ner/v1, which never became latest. An unset variable published into the cwd.
    registry, _ = promoted
    (tmp_path / "a-file").write_text("x")
    cases = [
        (registry / "ner" / "v1", f"give the registry it is in: --registry {registry} --model-name ner"),
        (registry / "ner", f"itself a model (it holds latest and its versions); give the registry it is in: "
                           f"--registry {registry} --model-name ner"),
        (tmp_path / "a-file", "which is a file"),
    ]
    before = sorted(p.relative_to(registry) for p in registry.rglob("*"))
    for uri, says in cases:
        # No such search: the registry is refused first, before the search is read or scored.
        with pytest.raises(ValueError, match=re.escape(says)):
            promote("no-such-search", str(uri), storage=str(tmp_path / "runs"))
    assert sorted(p.relative_to(registry) for p in registry.rglob("*")) == before
    for empty in ("", "/", " ", "s3://"):
        with pytest.raises(ValueError, match="names no directory"):
            Registry(empty, "ner")


def test_only_the_newest_version_counts_as_holding_a_model(tmp_path):
    # Re-publishing what an older version holds is how it becomes latest again (latest only
    # moves forward), so only the newest version's files make a promote publish nothing.
    from tune.registry import hash_stream

    reg = Registry(str(tmp_path / "reg"), "ner")
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"model a")
    b.write_bytes(b"model b")

    def hashes(path):
        with open(path, "rb") as f:
            return {"model.safetensors": hash_stream(f)}

    assert reg.holds(hashes(a)) is None  # nothing published yet
    reg.publish({"model.safetensors": a}, {}, str)
    assert reg.holds(hashes(a)) == 1 and reg.holds(hashes(b)) is None
    reg.publish({"model.safetensors": b}, {}, str)
    assert reg.holds(hashes(b)) == 2 and reg.holds(hashes(a)) is None
    # A version whose files do not verify (object-store publishers that raced into it) does
    # not hold the model: promoting again publishes a clean one instead of pointing at it.
    stored = tmp_path / "reg" / "ner" / "v2" / "model.safetensors"
    stored.write_bytes(b"model a")
    assert reg.holds(hashes(b)) is None
    stored.write_bytes(b"model b")
    assert reg.holds(hashes(b)) == 2
    (tmp_path / "reg" / "ner" / "v2" / MANIFEST).unlink()  # an interrupted copy: never "holds"
    assert reg.holds(hashes(b)) is None


def test_publish_takes_the_next_version_when_its_pick_was_taken(tmp_path, monkeypatch):
    # A publisher with a stale view of the versions still never overwrites one.
    src = tmp_path / "weights.bin"
    src.write_bytes(b"abc")
    reg = Registry(str(tmp_path / "reg"), "ner")
    card = lambda n: f"v{n}"  # noqa: E731
    assert reg.publish({"weights.bin": src}, {}, card) == 1
    monkeypatch.setattr(Registry, "versions", lambda self: [])  # stale: sees no version
    monkeypatch.setattr(Registry, "latest", lambda self: None)
    assert reg.publish({"weights.bin": src}, {}, card) == 2
    monkeypatch.undo()
    assert reg.versions() == [1, 2] and reg.latest() == 2
    assert (tmp_path / "reg" / "ner" / "v2" / "MODEL_CARD.md").read_text() == "v2"


def test_latest_only_moves_forward(tmp_path):
    # Advancing latest to an older version leaves it where it is.
    src = tmp_path / "w.bin"
    src.write_bytes(b"x")
    reg = Registry(str(tmp_path / "reg"), "ner")
    for _ in range(2):
        reg.publish({"w.bin": src}, {}, str)
    reg.advance_latest(1)
    assert reg.latest() == 2


def test_bad_arguments_are_value_errors(finished_search, tmp_path):
    # An unknown metric or model name is a clear error before anything runs.
    with pytest.raises(ValueError, match="not a trial-table column"):
        promote(finished_search.name, str(tmp_path), storage=finished_search.storage, metric="dev_acc")
    with pytest.raises(ValueError, match="'param_loss', which is not a numeric column; use one of .*best_dev_f1"):
        promote(finished_search.name, str(tmp_path), storage=finished_search.storage, metric="param_loss")
    with pytest.raises(ValueError, match="model name"):
        promote(finished_search.name, str(tmp_path), storage=finished_search.storage, model_name="../x")


def test_top_k_where_it_would_be_ignored_is_refused(finished_search, tmp_path):
    # --top-k only counts the configs --confirm-seeds re-trains: without it, or with
    # --trial (one config by hand), it was silently ignored, so the model published was
    # chosen other than the user believed. Refused before anything runs, in the option's
    # words on the command line.
    from nerkit.cli import build_app

    kwargs = {"storage": finished_search.storage}
    with pytest.raises(ValueError, match=r"^top_k is 2, .*confirm_seeds is 0"):
        promote(finished_search.name, str(tmp_path / "reg"), top_k=2, **kwargs)
    with pytest.raises(ValueError, match=r"^top_k is 2, but trial 't' names the one configuration"):
        promote(finished_search.name, str(tmp_path / "reg"), top_k=2, confirm_seeds=1, trial="t", **kwargs)
    with pytest.raises(ValueError, match=r"^top_k is 0, but must be >= 1"):
        promote(finished_search.name, str(tmp_path / "reg"), top_k=0, confirm_seeds=1, **kwargs)
    res = CliRunner().invoke(build_app(), ["promote", finished_search.name, "--registry", str(tmp_path / "reg"),
                                           "--storage", finished_search.storage, "--top-k", "2"])
    assert isinstance(res.exception, ValueError) and str(res.exception).startswith("--top-k is 2, "), res.output
    assert not (tmp_path / "reg").exists()


def test_confirm_seeds_retrains_the_top_configs(finished_search, tmp_path, one_thread):
    # With --confirm-seeds the chosen config has the best mean dev F1 over fresh seeds.
    result = promote(finished_search.name, str(tmp_path / "reg"), storage=finished_search.storage,
                     confirm_seeds=1, top_k=2, min_entity_ratio=0.0)
    sel = result.manifest["selection"]
    assert len(sel["candidates"]) == 2 and all(len(c["dev_f1"]) == 1 for c in sel["candidates"])
    chosen = max(sel["candidates"], key=lambda c: c["mean_dev_f1"])
    assert result.manifest["trial_id"] == chosen["trial_id"]
    assert result.manifest["config"]["seed"] == sel["chosen_seed"] == chosen["seeds"][0]
    # Re-trained on this machine's threads, not the trial's share of its node.
    assert result.manifest["config"]["num_threads"] is None
    _verified(tmp_path / "reg", 1)


def test_object_store_path_publishes_without_directory_rename(tmp_path, monkeypatch):
    # On a non-local filesystem (pyarrow's mock store) versions are copied file by file, never overwritten.
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    reg = Registry("mock:///models", "ner")
    assert not reg.local
    assert reg.publish({"w.bin": src}, {}, str) == 1
    real_versions = Registry.versions
    monkeypatch.setattr(Registry, "versions", lambda self: [])  # stale view: v1 looks free
    monkeypatch.setattr(Registry, "latest", lambda self: None)
    assert reg.publish({"w.bin": src}, {}, str) == 2
    monkeypatch.undo()
    assert real_versions(reg) == [1, 2] and reg.latest() == 2
    for v in (1, 2):
        found = reg.file_hashes(reg.version_path(v))
        manifest = json.loads(reg.fs.open_input_stream(f"{reg.version_path(v)}/{MANIFEST}").read())
        assert manifest["version"] == v and {**manifest["files"], MANIFEST: found[MANIFEST]} == found
    assert not [i for i in reg.fs.get_file_info(pafs.FileSelector(reg.root, recursive=True)) if ".tmp-" in i.path]


class _RivalOnManifest(pafs.FSSpecHandler):
    """A real (local, through fsspec) filesystem that pyarrow sees as an object store. With
    ``rival`` set, another publisher's weights land in the version just before this one's
    manifest is copied: the race two object-store promotes of one model name can run."""

    rival: bytes | None = None

    def copy_file(self, src, dest):
        if self.rival is not None and dest.endswith(f"/{MANIFEST}"):
            with open(dest.rsplit("/", 1)[0] + "/weights.bin", "wb") as f:
                f.write(self.rival)
        return super().copy_file(src, dest)


def _object_store_registry(root) -> tuple[Registry, _RivalOnManifest]:
    import fsspec

    handler = _RivalOnManifest(fsspec.filesystem("file"))
    reg = Registry(str(root), "ner")
    reg.fs, reg.local = pafs.PyFileSystem(handler), False
    return reg, handler


def test_object_store_publish_copies_a_verified_version(tmp_path):
    # Without a directory rename, the version is copied file by file (manifest last) and
    # verifies exactly like a local one.
    src = tmp_path / "weights.bin"
    src.write_bytes(b"mine")
    reg, _ = _object_store_registry(tmp_path / "reg")
    assert reg.publish({"weights.bin": src}, {}, lambda n: f"v{n}") == 1
    assert _verified(tmp_path / "reg", 1)["files"]["weights.bin"]["size"] == 4
    assert reg.latest() == 1 and not list((tmp_path / "reg" / "ner").glob(".tmp-*"))


def test_object_store_publish_detects_a_concurrent_publisher(tmp_path):
    # Two promotes found v1 free and both copied into it: the one that finds a mix there
    # fails, naming the file and what to do, instead of reporting success.
    src = tmp_path / "weights.bin"
    src.write_bytes(b"mine")
    reg, handler = _object_store_registry(tmp_path / "reg")
    handler.rival = b"theirs"
    with pytest.raises(OSError, match=r"ner/v1 does not hold what this promote wrote \(weights.bin differ\)"):
        reg.publish({"weights.bin": src}, {}, lambda n: f"v{n}")
    assert reg.latest() is None  # latest never points at the mixed version


class _LossyUpload(pafs.FSSpecHandler):
    """A local filesystem whose uploads of ``weights.bin`` lose their last byte on the way."""

    def open_output_stream(self, path, metadata):
        if not path.endswith("/weights.bin"):
            return super().open_output_stream(path, metadata)
        import pyarrow as pa

        inner = self.fs.open(path, mode="wb")

        class Cut:
            closed = property(lambda _: inner.closed)

            def write(self, data):
                inner.write(bytes(data)[:-1])  # one byte short of each write
                return len(data)

            def flush(self):
                inner.flush()

            def close(self):
                inner.close()

        return pa.PythonFile(Cut(), mode="w")


def test_an_upload_that_does_not_read_back_as_sent_publishes_nothing(tmp_path):
    # Every staged file is re-read and re-hashed before the version is claimed: a cut upload
    # fails naming the file, and leaves no version, no latest and no staging directory.
    import fsspec

    src = tmp_path / "weights.bin"
    src.write_bytes(b"model weights")
    reg = Registry(str(tmp_path / "reg"), "ner")
    reg.fs = pafs.PyFileSystem(_LossyUpload(fsspec.filesystem("file")))
    with pytest.raises(OSError, match=r"uploaded weights.bin does not match what was sent .*nothing was published"):
        reg.publish({"weights.bin": src}, {}, lambda n: f"v{n}")
    assert reg.versions() == [] and reg.latest() is None
    assert not list((tmp_path / "reg" / "ner").glob(".tmp-*"))


def test_gate_values_are_validated(finished_search, tmp_path):
    # NaN or out-of-range gates would silently turn a check off: refused before anything runs.
    for kwargs, needle in (({"min_f1": float("nan")}, "min_f1 is nan"), ({"min_f1": 1.5}, "min_f1 is 1.5"),
                           ({"min_entity_ratio": -0.1}, "min_entity_ratio is -0.1"),
                           ({"min_entity_ratio": 1.01}, "min_entity_ratio is 1.01")):
        with pytest.raises(ValueError, match=needle):
            promote(finished_search.name, str(tmp_path / "reg"), storage=finished_search.storage, **kwargs)
    assert not (tmp_path / "reg").exists()


def test_a_model_with_test_f1_zero_is_refused_unless_the_collapse_gate_is_off():
    from tune.promote import _check_gates

    useless = {"f1": 0.0, "entity_pred_ratio": 0.2}
    with pytest.raises(PromotionRefused, match="test F1 is 0.0000"):
        _check_gates(useless, 0.0, 0.005, "trial t")
    _check_gates(useless, 0.0, 0.0, "trial t")  # --min-entity-ratio 0: gates off (a random test model)
    _check_gates({"f1": 0.3, "entity_pred_ratio": 0.2}, 0.0, 0.005, "trial t")
    # Only a ratio near zero is a collapse: a high gate refusing 0.99 said "almost only 'O'".
    with pytest.raises(PromotionRefused, match=r"< --min-entity-ratio 0.995; nothing") as info:
        _check_gates({"f1": 0.3, "entity_pred_ratio": 0.99}, 0.0, 0.995, "trial t")
    assert "almost only" not in str(info.value)
    with pytest.raises(PromotionRefused, match="predicts almost only 'O'"):
        _check_gates({"f1": 0.3, "entity_pred_ratio": 0.001}, 0.0, 0.005, "trial t")


def test_without_retraining_trials_rank_by_the_checkpoint_that_would_be_published():
    # --checkpoint-every N: trial A's best evaluation (0.80) has no checkpoint, its best
    # checkpoint scores 0.60; B's 0.79 is checkpointed. Promotion publishes a checkpoint, so
    # B must win; with --confirm-seeds the configs are trained again and A's 0.80 ranks first.
    from tune.promote import _candidates, ranking_column

    rows = [{"trial_id": "A", "best_dev_f1": 0.80, "checkpoint_dev_f1": 0.60},
            {"trial_id": "B", "best_dev_f1": 0.79, "checkpoint_dev_f1": 0.79},
            {"trial_id": "C", "best_dev_f1": 0.85, "checkpoint_dev_f1": None}]  # nothing to publish
    assert [r["trial_id"] for r in _candidates(rows, ranking_column("best_dev_f1", 0))] == ["B", "A"]
    assert [r["trial_id"] for r in _candidates(rows, ranking_column("best_dev_f1", 2))] == ["C", "A", "B"]
    assert ranking_column("last_dev_f1", 0) == "last_dev_f1"  # a metric asked for is used as given


def test_no_scored_trial_is_explained_by_whether_the_search_has_ended():
    # "Wait for the search to report" was the advice also for an ended search whose every
    # trial failed or diverged: nothing would ever report.
    from tune.promote import _candidates

    rows = [{"trial_id": "A", "best_dev_f1": None}, {"trial_id": "B", "best_dev_f1": None}]
    with pytest.raises(ValueError, match="yet; wait for the search to report"):
        _candidates(rows, "best_dev_f1")
    with pytest.raises(ValueError, match="the search has ended: its trials failed or diverged"):
        _candidates(rows, "best_dev_f1", ended=True)
    # Evaluated but never checkpointed (--checkpoint-every N, all pruned first): nothing
    # failed, and --stop-reason error,diverged would show nothing; re-training is the way.
    rows = [{"trial_id": "A", "best_dev_f1": 0.4, "checkpoint_dev_f1": None}]
    with pytest.raises(ValueError, match=r"no trial kept a checkpoint to publish .*--confirm-seeds K"):
        _candidates(rows, "checkpoint_dev_f1", ended=True)


def _copy_search(finished_search, tmp_path):
    """A copy of the finished search's storage, to damage without touching the shared one."""
    import shutil
    from pathlib import Path

    storage = tmp_path / "runs"
    shutil.copytree(finished_search.storage, storage)
    return storage, storage / Path(finished_search.path).name


def test_an_unfinished_search_is_promoted_only_when_asked(finished_search, tmp_path):
    # A running or interrupted search's best so far was published as `latest` silently.
    storage, exp = _copy_search(finished_search, tmp_path)
    record = json.loads((exp / "search.json").read_text())
    record["settings"]["trials"] += 2  # two trials not created yet: stopped before its end
    (exp / "search.json").write_text(json.dumps(record))
    registry = tmp_path / "reg"
    # Counted as the report counts them: none running, 2 planned and never created (the
    # message said "2 not ended (running, or stopped" of trials that never started).
    with pytest.raises(ValueError, match=r"has not ended: 0 trial\(s\) running or stopped and 2 not started yet "
                                         r".* --allow-unfinished"):
        promote(finished_search.name, str(registry), storage=str(storage), min_entity_ratio=0.0)
    assert not registry.exists()
    done = promote(finished_search.name, str(registry), storage=str(storage), min_entity_ratio=0.0,
                   allow_unfinished=True)
    published = _verified(registry, done.version)
    assert published["search_unfinished_trials"] == 2 and published["search_trials_not_started"] == 2


@pytest.mark.parametrize("damage", ["tokenizer cut", "tokenizer gone", "weights cut"])
def test_a_damaged_checkpoint_is_not_published(finished_search, tmp_path, damage):
    # Test metrics came from the base model's tokenizer, so a checkpoint with a cut or
    # missing tokenizer was published, checksummed, and failed in `nerkit predict`.
    from tune.tables import collect

    storage, exp = _copy_search(finished_search, tmp_path)
    tables = collect(str(exp))
    best = max((t for t in tables.trials if t["checkpoint"]), key=lambda t: t["checkpoint_dev_f1"])
    ckpt = exp / best["checkpoint"].split(exp.name + "/", 1)[1]
    if damage == "tokenizer cut":
        (ckpt / "tokenizer.json").write_bytes((ckpt / "tokenizer.json").read_bytes()[:2000])
        expected = "does not load"
    elif damage == "tokenizer gone":
        for f in ckpt.glob("tokenizer*"):
            f.unlink()
        (ckpt / "vocab.txt").unlink(missing_ok=True)
        expected = "lacks a tokenizer"
    else:
        (ckpt / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes()[:5000])
        expected = "does not load"
    registry = tmp_path / "reg"
    # Named by the trial's own checkpoint (the temporary copy promote scored is gone by
    # then), with a way on that exists: --trial picks another.
    with pytest.raises(ValueError, match=rf"trial {best['trial_id']}'s checkpoint {best['checkpoint']}.*{expected}"
                                         r".*Promote another trial with --trial ID"):
        promote(finished_search.name, str(registry), storage=str(storage), min_entity_ratio=0.0)
    assert not registry.exists()
    other = next(t for t in tables.trials if t["checkpoint"] and t["trial_id"] != best["trial_id"])
    done = promote(finished_search.name, str(registry), storage=str(storage), min_entity_ratio=0.0,
                   trial=other["trial_id"])
    assert _verified(registry, done.version)["trial_id"] == other["trial_id"]
    # Chosen by hand, and the release says so: its card and manifest claimed "the best trial".
    assert done.manifest["selection"]["trial"] == other["trial_id"]
    card = (registry / "ner" / f"v{done.version}" / "MODEL_CARD.md").read_text()
    assert f"trial `{other['trial_id']}`, chosen by hand" in card and "the best trial by" not in card
    with pytest.raises(ValueError, match=r"trial is 'nope', but search .* has no such trial"):
        promote(finished_search.name, str(registry), storage=str(storage), trial="nope")


def test_a_trial_chosen_by_hand_that_cannot_be_promoted_says_why(finished_search, search_tables, tmp_path,
                                                                   monkeypatch):
    # `--trial b` for a trial without a checkpoint (--checkpoint-every N) said "no such
    # trial with a value for 'checkpoint_dev_f1'" while listing b among the trials.
    import dataclasses

    import tune.promote

    first, second = search_tables.trials[0], search_tables.trials[1]
    rows = [{**first, "checkpoint": "", "checkpoint_eval_index": None, "checkpoint_dev_f1": None},
            {**second, "best_dev_f1": None, "checkpoint": "", "checkpoint_dev_f1": None}, *search_tables.trials[2:]]
    monkeypatch.setattr(tune.promote, "collect", lambda exp: dataclasses.replace(search_tables, trials=rows))
    registry = tmp_path / "reg"
    with pytest.raises(ValueError,
                       match=rf"trial {first['trial_id']} has no checkpoint to promote .*--confirm-seeds K"):
        promote(finished_search.name, str(registry), storage=finished_search.storage, trial=first["trial_id"])
    with pytest.raises(ValueError, match=rf"trial {second['trial_id']} has no value for 'checkpoint_dev_f1': it "
                                         "reported no evaluation"):
        promote(finished_search.name, str(registry), storage=finished_search.storage, trial=second["trial_id"])
    assert not registry.exists()


def test_latest_that_cannot_move_says_the_version_was_published(tmp_path):
    # The version was published but the error said only "Failed renaming …": a retry
    # published the same model again.
    reg = Registry(str(tmp_path / "reg"), "ner")
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    reg.publish({"model.bin": model}, {"format": 1}, lambda n: f"v{n}\n")
    (tmp_path / "reg" / "ner" / "latest").unlink()
    (tmp_path / "reg" / "ner" / "latest" / "x").mkdir(parents=True)  # a rename onto it fails
    with pytest.raises(OSError, match=r"published .*/reg/ner/v2, but moving latest to it failed"):
        reg.publish({"model.bin": model}, {"format": 1}, lambda n: f"v{n}\n")
    assert reg.versions() == [1, 2]
    assert not [p.name for p in (tmp_path / "reg" / "ner").iterdir() if ".tmp-" in p.name]


def test_ranking_by_another_column_skips_trials_without_a_checkpoint():
    # `--metric param_entity_boost` failed on a top trial with no checkpoint although
    # others had one.
    from tune.promote import with_checkpoint

    rows = [{"trial_id": "a", "checkpoint": ""}, {"trial_id": "b", "checkpoint": "/x/c"},
            {"trial_id": "c", "checkpoint": None}]
    assert [r["trial_id"] for r in with_checkpoint(rows)] == ["b"]
    assert [r["trial_id"] for r in with_checkpoint([rows[0], rows[2]])] == ["a"]


def test_the_data_check_needs_no_base_model(small_data_dir, tmp_path):
    # Promoting on a machine without the search's base model (a path on the cluster's
    # nodes) stopped at "the model ... does not exist": the data check tokenised with it,
    # though the fingerprint is of words and tags. Changed data is still refused.
    from nerkit.config import TrainConfig
    from nerkit.data import DataConfig, load_dataset
    from tune.promote import _check_data

    data = DataConfig(path=str(small_data_dir))
    config = TrainConfig(model=str(tmp_path / "gone"), data=data).to_dict()
    row = {"config": json.dumps(config)}
    _check_data({"data_fingerprint": load_dataset(data).fingerprint}, row)
    with pytest.raises(ValueError, match="changed since the search started"):
        _check_data({"data_fingerprint": "0" * 64, "base_config": config}, row)


def test_the_manifest_says_what_the_checkpoint_trained_with_not_what_promotes_it(finished_search, tmp_path):
    # A trial trains on a worker (other packages, perhaps, than promote's machine, or than
    # the driver when the search started): the manifest takes the class weights and versions
    # its run wrote beside the checkpoint. A checkpoint from before nerkit wrote them gets
    # its config's weights recomputed and the search's versions, and the manifest says so.
    from tune.tables import collect

    storage, exp = _copy_search(finished_search, tmp_path)
    best = max((t for t in collect(str(exp)).trials if t["checkpoint"]), key=lambda t: t["checkpoint_dev_f1"])
    metrics_file = exp / best["checkpoint"].split(exp.name + "/", 1)[1] / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    written = {**metrics, "versions": {"torch": "0.0-worker"}, "class_weights": {"O": 0.25, "B-FOOD": 4.0}}
    metrics_file.write_text(json.dumps(written))
    done = promote(finished_search.name, str(tmp_path / "reg"), storage=str(storage), min_entity_ratio=0.0,
                   trial=best["trial_id"])
    manifest = _verified(tmp_path / "reg", done.version)
    assert manifest["training_versions"] == {"torch": "0.0-worker"}
    assert manifest["class_weights"] == {"O": 0.25, "B-FOOD": 4.0}
    assert manifest["training_record_from"] == "checkpoint"
    card = " ".join((tmp_path / "reg" / "ner" / f"v{done.version}" / "MODEL_CARD.md").read_text().split())
    assert "Trained with**: torch 0.0-worker" in card

    metrics_file.write_text(json.dumps({k: v for k, v in metrics.items() if k not in ("versions", "class_weights")}))
    record = json.loads((exp / "search.json").read_text())
    record["versions"] = {"torch": "0.0-search"}
    (exp / "search.json").write_text(json.dumps(record))
    again = promote(finished_search.name, str(tmp_path / "reg2"), storage=str(storage), min_entity_ratio=0.0,
                    trial=best["trial_id"])
    old = _verified(tmp_path / "reg2", again.version)
    assert old["training_versions"] == {"torch": "0.0-search"} and old["training_record_from"].startswith("search.json")
    assert old["class_weights"] == pytest.approx(metrics["class_weights"], rel=1e-6)
    card = " ".join((tmp_path / "reg2" / "ner" / f"v{again.version}" / "MODEL_CARD.md").read_text().split())
    assert "torch 0.0-search (as the search started" in card


def test_the_example_input_is_a_short_test_sentence_holding_an_entity():
    # The card's and pull's "try it" sentence: one that shows an entity, as its source wrote it.
    from nerkit.records import Record
    from tune.promote import example_input

    plain = Record(tokens=("hello",), tags=("O",))
    long_one = Record(tokens=("a", "b", "Paris"), tags=("O", "O", "B-LOC"))
    short_one = Record(tokens=("to", "Rome"), tags=("O", "B-LOC"), text="to\nRome", offsets=((0, 2), (3, 7)))
    assert example_input((plain, long_one, short_one)) == "to Rome"  # a line break would end the command
    assert example_input((plain, long_one)) == "a b Paris"
    assert example_input((plain,)) == "hello"
    assert example_input(()) is None


def test_publishing_removes_staging_left_by_a_killed_publisher_once_a_day_old(tmp_path):
    # A promote killed outright left `.tmp-*` (a whole model) in the registry at each retry.
    # One younger than a day may be another publisher's, staging now, and stays.
    import os

    src = tmp_path / "w.bin"
    src.write_bytes(b"x")
    reg = Registry(str(tmp_path / "reg"), "ner")
    root = tmp_path / "reg" / "ner"
    old, fresh = root / ".tmp-old", root / ".tmp-fresh"
    for left in (old, fresh):
        left.mkdir(parents=True)
        (left / "model.safetensors").write_bytes(b"x")
    day_ago = time.time() - 25 * 3600
    os.utime(old / "model.safetensors", (day_ago, day_ago))
    assert reg.publish({"w.bin": src}, {}, str) == 1
    assert not old.exists() and fresh.exists()


def test_the_example_sentence_can_be_left_out_of_what_is_published(finished_search, tmp_path):
    # Test text can hold names and addresses that must not leave the team: --example ''
    # publishes none, and the card and pull show a placeholder.
    result = promote(finished_search.name, str(tmp_path / "reg"), storage=finished_search.storage,
                     min_entity_ratio=0.0, example="")
    assert result.manifest["example_input"] is None
    card = (tmp_path / "reg" / "ner" / "v1" / "MODEL_CARD.md").read_text()
    assert "nerkit predict --model ./model -- 'a sentence to tag'" in card
