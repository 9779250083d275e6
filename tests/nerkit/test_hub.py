"""nerkit.hub: where the hub does not answer, a hub name loads from the cache at once, and
one that is not cached fails at once, saying why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

MAIN = "from nerkit.cli import main; main()"


def _hub_cache(cache, model_dir, repo="acme/tiny-ner"):
    """``model_dir``'s files as the hub's cache holds ``repo`` at one revision."""
    commit = "0" * 40
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, root / "snapshots" / commit)
    return repo


@pytest.fixture
def unreachable_hub(tmp_path):
    """An environment whose hub endpoint refuses connections (a closed local port) and whose
    cache is empty: a machine without network, as the user's, not the tests' offline mode."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_CACHE=str(tmp_path / "hub"), HF_HOME=str(tmp_path / "hf"))
    (tmp_path / "hub").mkdir()
    return env


def _nerkit(env, *args):
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True, env=env, timeout=180)


def test_a_cached_hub_model_loads_without_the_hubs_retries(unreachable_hub, tiny_model_dir, tmp_path):
    # huggingface_hub retried each file five times (about 23 s a file) before transformers
    # fell back to the cache: every load of a cached model on a machine without network.
    from transformers import AutoModelForTokenClassification

    labels = {0: "B-FOOD", 1: "I-FOOD", 2: "O"}
    model_dir = tmp_path / "ner-model"
    shutil.copytree(tiny_model_dir, model_dir)
    AutoModelForTokenClassification.from_pretrained(
        tiny_model_dir, id2label=labels, label2id={v: k for k, v in labels.items()}).save_pretrained(model_dir)
    repo = _hub_cache(tmp_path / "hub", model_dir)
    proc = _nerkit(unreachable_hub, "predict", "--model", repo, "--device", "cpu", "--json", "hello world")
    assert proc.returncode == 0, proc.stderr
    assert "Retrying" not in proc.stderr and '"text": "hello world"' in proc.stdout


def test_a_hub_name_not_in_the_cache_fails_at_once_saying_the_hub_did_not_answer(unreachable_hub, tmp_path):
    proc = _nerkit(unreachable_hub, "train", "--model", "acme/not-cached", "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Retrying" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert ("could not load the model 'acme/not-cached' (it is not in the local Hugging Face cache, and the hub "
            "http://127.0.0.1:9 did not answer (ConnectError") in message
