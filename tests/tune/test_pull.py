"""Pull: resolve a version, verify every file, and only then put it in place."""

from __future__ import annotations

import json
import shutil

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
    ner = pipeline("token-classification", model=str(dest), aggregation_strategy="simple")
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
    else:
        (version / "evil.py").write_text("print('hi')\n")
    dest = tmp_path / "model"
    with pytest.raises(PullError, match=message):
        pull(f"{registry_copy}/ner@v1", dest)
    assert _nothing_left(dest)


def test_pull_cli_refuses_a_tampered_file(registry_copy, tmp_path):
    # The command names the damaged file and exits with a user error.
    from nerkit.cli import build_app

    path = registry_copy / "ner" / "v1" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    dest = tmp_path / "out"
    res = CliRunner().invoke(build_app(), ["pull", f"{registry_copy}/ner", "--to", str(dest)])
    assert isinstance(res.exception, PullError) and "model.safetensors" in str(res.exception)
    assert _nothing_left(dest)


def test_non_empty_destination_needs_force(promoted, tmp_path):
    # An existing non-empty DIR is kept unless --force; with it, DIR is replaced after verifying.
    registry, _ = promoted
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "old.txt").write_text("keep me")
    with pytest.raises(ValueError, match="--force"):
        pull(f"{registry}/ner@v1", dest)
    assert (dest / "old.txt").exists()
    pull(f"{registry}/ner@v1", dest, force=True)
    assert not (dest / "old.txt").exists() and (dest / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".model.*"))


def test_unknown_version_and_bad_reference(promoted, tmp_path):
    # A version that does not exist, or a reference without a model name, is a clear error.
    registry, _ = promoted
    with pytest.raises(ValueError, match=r"no v9; versions there: \['v1'\]"):
        pull(f"{registry}/ner@v9", tmp_path / "m")
    with pytest.raises(ValueError, match="<registry>/<model-name>"):
        parse_ref("ner@v1")
    assert parse_ref("s3://bucket/models/ner@v3") == ("s3://bucket/models", "ner", "v3")
    assert parse_ref("gs://b/m/ner") == ("gs://b/m", "ner", "latest")
    assert not (tmp_path / "m").exists()
