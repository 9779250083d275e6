"""Pull: resolve a version, verify every file, and only then put it in place."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from typer.testing import CliRunner

from tune.pull import PullError, parse_ref, pull


def _sentences(n: int = 5) -> list[str]:
    from nerkit.corpus import bundled_data_dir

    lines = (bundled_data_dir() / "test.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line)["text"] for line in lines]


@pytest.fixture
def registry_copy(promoted, tmp_path):
    """A private copy of the promoted registry that a test may damage."""
    registry, _ = promoted
    dest = tmp_path / "registry"
    shutil.copytree(registry, dest)
    return dest


def _nothing_left(dest) -> bool:
    """Neither the destination nor a temporary download beside it exists."""
    return not dest.exists() and not list(dest.parent.glob(f".{dest.name}.*"))


def test_pulled_model_loads_in_transformers_and_nerkit(promoted, tmp_path):
    # @latest pulls v1; the directory works in the HF pipeline and in `nerkit predict --json`.
    from transformers import pipeline

    from nerkit.cli import build_app

    registry, _ = promoted
    dest = pull(f"{registry}/ner@latest", tmp_path / "model")
    assert json.loads((dest / "manifest.json").read_text())["version"] == 1
    texts = _sentences()
    ner = pipeline("token-classification", model=str(dest), aggregation_strategy="first")
    out = ner(texts)
    assert len(out) == len(texts) and all(isinstance(o, list) for o in out)
    res = CliRunner().invoke(build_app(), ["predict", "--model", str(dest), "--json", *texts[:2]])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert [r["text"] for r in rows] == texts[:2] and all("entities" in r for r in rows)


@pytest.mark.parametrize("damage, message", [
    ("flip", r"model\.safetensors has sha256"),
    ("truncate", r"tokenizer\.json is \d+ bytes, the manifest says"),
    ("delete", r"config\.json listed in manifest\.json but missing"),
    ("extra", r"evil\.py in the registry but not in manifest\.json"),
    # A name that would be written outside DIR (an object-store key may hold ".." literally).
    ("escape", r"manifest\.json has no valid 'files' mapping"),
])
def test_damaged_version_is_refused_and_nothing_is_left(registry_copy, tmp_path, damage, message):
    # An altered, truncated, missing or extra file is named, and DIR is never created.
    version = registry_copy / "ner" / "v1"
    if damage == "flip":
        data = bytearray((version / "model.safetensors").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (version / "model.safetensors").write_bytes(bytes(data))
    elif damage == "truncate":
        path = version / "tokenizer.json"
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "delete":
        (version / "config.json").unlink()
    elif damage == "escape":
        manifest = json.loads((version / "manifest.json").read_text())
        manifest["files"]["../evil.py"] = manifest["files"]["config.json"]
        (version / "manifest.json").write_text(json.dumps(manifest))
    else:
        (version / "evil.py").write_text("print('hi')\n")
    dest = tmp_path / "model"
    with pytest.raises(PullError, match=message):
        pull(f"{registry_copy}/ner@v1", dest)
    assert _nothing_left(dest)


def test_pull_cli_refuses_a_tampered_file(registry_copy, tmp_path):
    # The command names the damaged file and exits 3 (verification failed), not 2 (usage).
    from nerkit.cli import build_app

    path = registry_copy / "ner" / "v1" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    dest = tmp_path / "out"
    res = CliRunner().invoke(build_app(), ["pull", f"{registry_copy}/ner", "--to", str(dest)])
    assert res.exit_code == 3 and "model.safetensors" in " ".join(res.output.split())
    assert _nothing_left(dest)


def test_non_empty_destination_needs_force(promoted, tmp_path):
    # An existing non-empty DIR is kept unless --force; with it, an earlier pull is
    # replaced after verifying. Any other directory is never replaced: --force used to
    # delete whatever --to named, the current directory or the registry included.
    registry, _ = promoted
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "old.txt").write_text("keep me")
    with pytest.raises(ValueError, match="--force"):
        pull(f"{registry}/ner@v1", dest)
    with pytest.raises(ValueError, match="holds no manifest.json, so it is not an earlier pull"):
        pull(f"{registry}/ner@v1", dest, force=True)
    assert (dest / "old.txt").read_text() == "keep me"
    earlier = pull(f"{registry}/ner@v1", tmp_path / "earlier")
    (earlier / "old.txt").write_text("stale")
    pull(f"{registry}/ner@v1", earlier, force=True)
    assert not (earlier / "old.txt").exists() and (earlier / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".earlier.*"))


def test_force_never_replaces_a_directory_whose_manifest_is_not_a_models(promoted, tmp_path):
    # Web apps and browser extensions have a manifest.json too: --force deleted such a
    # directory (its src/ included) as if it were an earlier pull.
    registry, _ = promoted
    app = tmp_path / "webapp"
    (app / "src").mkdir(parents=True)
    (app / "manifest.json").write_text('{"name": "my-app"}')
    (app / "src" / "app.js").write_text("code")
    with pytest.raises(ValueError, match="is not a nerkit model manifest, so .* is not an earlier pull"):
        pull(f"{registry}/ner@v1", app, force=True)
    assert (app / "src" / "app.js").read_text() == "code"


def test_the_version_directory_promote_prints_is_named_as_a_reference(promoted, tmp_path):
    # promote prints ".../ner/v1"; pulling that path said "nothing promoted yet", which is false.
    registry, _ = promoted
    with pytest.raises(ValueError, match=rf"{registry}/ner/v1 is a version's directory; pull {registry}/ner@v1"):
        pull(f"{registry}/ner/v1", tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_force_never_replaces_the_current_directory_or_the_registry(promoted, tmp_path, monkeypatch):
    # `--to "$DEST"` with DEST unset is "" (typer made it "."); `--to REGISTRY` held the
    # registry. Both were replaced by the model, with exit 0.
    registry, _ = promoted
    work = tmp_path / "work"
    work.mkdir()
    (work / "important.txt").write_text("precious")
    monkeypatch.chdir(work)
    with pytest.raises(ValueError, match=r"--to\) is empty"):
        pull(f"{registry}/ner@v1", "", force=True)
    for to in (".", "..", str(tmp_path)):
        with pytest.raises(ValueError, match="current directory or one above it"):
            pull(f"{registry}/ner@v1", to, force=True)
    for to in (registry, f"{registry}/ner", f"{registry}/ner/v1", f"{registry}/other/v1"):
        with pytest.raises(ValueError, match="inside the registry .* or holds it"):
            pull(f"{registry}/ner@v1", to, force=True)
    assert (work / "important.txt").read_text() == "precious"
    assert pull(f"{registry}/ner@v1", tmp_path / "elsewhere").is_dir()


def test_unknown_version_and_bad_reference(promoted, tmp_path):
    # A version that does not exist, or a reference without a model name, is a clear error.
    registry, _ = promoted
    with pytest.raises(ValueError, match=r"no v9; versions there: \['v1'\]"):
        pull(f"{registry}/ner@v9", tmp_path / "m")
    with pytest.raises(ValueError, match="<registry>/<model-name>"):
        parse_ref("ner@v1")
    assert parse_ref("s3://bucket/models/ner@v3") == ("s3://bucket/models", "ner", "v3")
    assert parse_ref("gs://b/m/ner") == ("gs://b/m", "ner", "latest")
    assert parse_ref("registry/ner@v1/") == ("registry", "ner", "v1")
    assert parse_ref("s3://user@bucket/m/ner") == ("s3://user@bucket/m", "ner", "latest")
    for bad in ("reg/ner@3", "reg/ner@V1", "reg/ner@LATEST", "reg/ner@v0"):
        with pytest.raises(ValueError, match=r"version is .*, but must be vN \(v1, v2, \.\.\.\) or latest"):
            parse_ref(bad)
    for bad in ("/ner@v1", "s3://ner@v1", "reg/@v1"):
        with pytest.raises(ValueError, match="<registry>/<model-name>"):
            parse_ref(bad)
    assert not (tmp_path / "m").exists()


def test_a_mistyped_model_name_or_registry_is_named_with_what_is_there(promoted, tmp_path):
    # Both read as "no 'latest' pointer (nothing promoted yet?)" before, which sent a
    # pipeline with a typo in its URI looking for a promotion that never failed.
    registry, _ = promoted
    with pytest.raises(ValueError, match=rf"{registry} has no model named 'nr'; its models: ner$"):
        pull(f"{registry}/nr@latest", tmp_path / "m")
    with pytest.raises(ValueError, match=rf"{registry}/ner is itself a model .* pull {registry}/ner@v1$"):
        pull(f"{registry}/ner/ner@v1", tmp_path / "m")
    with pytest.raises(ValueError, match=r"/nowhere holds no promoted model \(a mistyped path or bucket\?\)"):
        pull(f"{tmp_path}/nowhere/ner", tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_latest_pointing_at_a_missing_version_is_named(registry_copy, tmp_path):
    # A hand-edited pointer: the error says what latest claims and what exists.
    (registry_copy / "ner" / "latest").write_text("v7\n")
    with pytest.raises(ValueError, match=r"latest says v7, which does not exist .* versions there: \['v1'\]"):
        pull(f"{registry_copy}/ner@latest", tmp_path / "m")
    assert _nothing_left(tmp_path / "m")


def test_a_latest_pointer_left_empty_says_how_to_mend_it(registry_copy, tmp_path):
    # An empty pointer (cut off by a crash; promote now syncs it to disk before moving it
    # in) was blamed on "not written by nerkit promote", with no way out.
    (registry_copy / "ner" / "latest").write_text("")
    with pytest.raises(ValueError, match=r"latest holds '', not a version like 'v3'.*cut off by a crash.*"
                                         r"Fix: write the version it should point to into it \(versions there: v1\)"):
        pull(f"{registry_copy}/ner@latest", tmp_path / "m")
    assert _nothing_left(tmp_path / "m")


def test_a_version_holding_another_versions_or_models_files_is_refused(registry_copy, tmp_path):
    # Every checksum matches its own manifest, so v1 copied to v2 (a bad sync, a restore) or
    # ner copied to another model name verified whole and was installed as what was asked for.
    shutil.copytree(registry_copy / "ner" / "v1", registry_copy / "ner" / "v2")
    (registry_copy / "ner" / "latest").write_text("v2\n")
    with pytest.raises(PullError, match=r"ner/v2: its manifest.json says it is 'ner' v1 \(copied from another"):
        pull(f"{registry_copy}/ner@latest", tmp_path / "m")
    assert _nothing_left(tmp_path / "m")
    shutil.copytree(registry_copy / "ner", registry_copy / "other")
    with pytest.raises(PullError, match=r"other/v1: its manifest.json says it is 'ner' v1"):
        pull(f"{registry_copy}/other@v1", tmp_path / "m")
    assert pull(f"{registry_copy}/ner@v1", tmp_path / "m") == tmp_path / "m"


@pytest.mark.parametrize("files", [{}, {"model.safetensors": {"sha256": "ab"}}, ["model.safetensors"]])
def test_a_manifest_without_valid_file_entries_is_refused(registry_copy, tmp_path, files):
    # An empty or malformed `files` list would otherwise "verify" a folder holding nothing.
    path = registry_copy / "ner" / "v1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = files
    path.write_text(json.dumps(manifest))
    with pytest.raises(PullError, match="no valid 'files' mapping"):
        pull(f"{registry_copy}/ner@v1", tmp_path / "m")
    assert _nothing_left(tmp_path / "m")


def test_a_symlinked_destination_is_refused(promoted, tmp_path):
    # Replacing a link would swap it for a real directory: ask for the directory itself.
    registry, _ = promoted
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="is a symbolic link"):
        pull(f"{registry}/ner@v1", tmp_path / "link", force=True)
    assert (tmp_path / "link").is_symlink() and not any((tmp_path / "real").iterdir())


def test_force_keeps_the_old_directory_when_the_final_rename_fails(promoted, tmp_path, monkeypatch):
    # Fault injection: the rename of the verified download into place fails (a full disk,
    # a rival pull). The old directory must be back where it was, whole.
    import tune.pull as pull_mod

    registry, _ = promoted
    dest = pull(f"{registry}/ner@v1", tmp_path / "model")  # an earlier pull, which --force may replace
    (dest / "old.txt").write_text("keep me")
    real_rename = os.rename

    def failing_rename(src, dst):
        if ".pull-" in str(src):
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(pull_mod.os, "rename", failing_rename)
    with pytest.raises(OSError, match="No space left"):
        pull(f"{registry}/ner@v1", dest, force=True)
    assert (dest / "old.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_pull_prints_a_try_it_command_on_a_sentence_of_the_models_own_test_split(promoted, tmp_path):
    # The hint once tagged the bundled corpus's Hinglish whatever the model was trained on.
    # Now it is a test sentence holding an entity, quoted for the shell, and it runs as printed.
    import shlex

    from nerkit.cli import build_app

    registry, _ = promoted
    dest = tmp_path / "my model"  # a space: the printed command must quote it
    res = CliRunner().invoke(build_app(), ["pull", f"{registry}/ner", "--to", str(dest)])
    assert res.exit_code == 0, res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("try it: ")]
    argv = shlex.split(line.removeprefix("try it: "))
    assert argv[:3] == ["nerkit", "predict", "--model"] and argv[3:5] == [str(dest), "--"]
    assert argv[5] in _sentences(50)
    tagged = CliRunner().invoke(build_app(), [*argv[1:4], "--json", *argv[4:]])
    assert tagged.exit_code == 0, tagged.output
    assert json.loads(tagged.output.splitlines()[0])["text"] == argv[5]


def test_pull_json_names_the_version_and_where_it_went(promoted, tmp_path):
    from nerkit.cli import build_app

    registry, _ = promoted
    res = CliRunner().invoke(build_app(), ["pull", f"{registry}/ner", "--to", str(tmp_path / "m"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["version"], out["model_name"], out["dest"]) == (1, "ner", str(tmp_path / "m"))
    assert out["try"].startswith(f"nerkit predict --model {tmp_path / 'm'} ")


def test_a_to_that_cannot_be_written_is_a_bad_option_naming_it(promoted, tmp_path):
    # A file on --to's path was an I/O failure (exit 1) quoting "[Errno 17] File exists".
    from nerkit.cli import build_app

    registry, _ = promoted
    (tmp_path / "a-file").write_text("x")
    dest = tmp_path / "a-file" / "model"
    with pytest.raises(ValueError, match=rf"--to {dest} cannot be written \(File exists: {tmp_path / 'a-file'}\)"):
        pull(f"{registry}/ner", dest)
    res = CliRunner().invoke(build_app(), ["pull", f"{registry}/ner", "--to", str(dest)])
    assert isinstance(res.exception, ValueError)  # the entry point's exit 2


def test_a_pull_killed_by_sigterm_leaves_no_partial_download(promoted, tmp_path, monkeypatch):
    # A CI time limit sends SIGTERM; Python's default dies at once, and the half-written
    # download beside --to stayed (86 MB for MiniLM), one more at every retry.
    import signal

    import tune.pull
    from nerkit.cli import build_app
    from tune.registry import hash_stream

    registry, _ = promoted
    copied = []

    def killed_mid_download(stream, copy_to=None):
        copied.append(1)
        if len(copied) == 2:  # one file written, the next begun
            os.kill(os.getpid(), signal.SIGTERM)
        return hash_stream(stream, copy_to)

    def not_handled(*_):  # without the command's own handler: fail the test, not kill pytest
        raise RuntimeError("SIGTERM reached the test's handler")

    monkeypatch.setattr(tune.pull, "hash_stream", killed_mid_download)
    previous = signal.signal(signal.SIGTERM, not_handled)
    try:
        dest = tmp_path / "model"
        res = CliRunner().invoke(build_app(), ["pull", f"{registry}/ner", "--to", str(dest)])
        assert signal.getsignal(signal.SIGTERM) is not_handled  # the command put it back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert res.exit_code == 128 + signal.SIGTERM and len(copied) == 2, res.output
    assert _nothing_left(dest)


def test_a_download_left_by_a_killed_pull_is_removed_once_a_day_old(promoted, tmp_path):
    # SIGKILL skips every clean-up: each retry left a whole model beside --to. A download
    # younger than a day may be another pull's, running now, and stays.
    registry, _ = promoted
    old, fresh = tmp_path / ".model.pull-old", tmp_path / ".model.pull-fresh"
    for left in (old, fresh):
        left.mkdir()
        (left / "model.safetensors").write_bytes(b"x" * 10)
    day_ago = time.time() - 25 * 3600
    os.utime(old / "model.safetensors", (day_ago, day_ago))
    pull(f"{registry}/ner", tmp_path / "model")
    assert not old.exists() and fresh.exists() and (tmp_path / "model" / "manifest.json").is_file()
