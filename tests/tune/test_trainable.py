"""tune.trainable: what each result of a trial carries, driven without a Ray cluster."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import os

import pytest
import torch


@pytest.fixture
def fake_tune(monkeypatch, tmp_path):
    """Ray's trial-side API replaced: reports collected, each checkpoint kept by evaluation."""
    import ray
    from ray import tune

    reported: list[dict] = []
    kept = {}

    def report(metrics, checkpoint=None):
        reported.append(dict(metrics))
        if checkpoint is not None:
            kept[metrics["eval_index"]] = shutil.copytree(checkpoint.path, tmp_path / f"ckpt{metrics['eval_index']}")

    restore = SimpleNamespace(checkpoint=None)
    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: restore.checkpoint)
    monkeypatch.setattr(tune, "get_context", lambda: SimpleNamespace(get_trial_id=lambda: "t"))
    monkeypatch.setattr(ray, "get_runtime_context", lambda: SimpleNamespace(
        get_node_id=lambda: "node", get_assigned_resources=lambda: {"CPU": 1}))
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    return SimpleNamespace(reported=reported, kept=kept, restore=restore)


@pytest.fixture
def tiny_run(tiny_model_dir, small_data_dir):
    """A 2-epoch trial of the tiny model (one evaluation per epoch): its base config and data."""
    from nerkit.config import TrainConfig
    from nerkit.data import DataConfig
    from nerkit.features import prepare_data

    base = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), epochs=2,
                       batch_size=32, num_threads=1, precision="fp32").to_dict()
    return base, prepare_data(DataConfig(path=str(small_data_dir)), str(tiny_model_dir), 128, False)


def test_a_trial_diverging_right_after_a_restore_reports_how_far_it_got(fake_tune, monkeypatch, tiny_run):
    # A trial restored from evaluation 0's checkpoint (a retry, a resumed driver) that
    # diverges before its next evaluation: its diverged result comes after evaluation 0 and
    # keeps its epoch and tokens (the trial table's budget columns read the last result),
    # not epoch 0 and evaluation 0 as if it had diverged at once.
    from ray import tune

    import nerkit.training_run
    from tune.trainable import run_trial

    base, prepared = tiny_run
    run_trial({}, base=base, prepared=prepared)
    first = fake_tune.reported[0]
    assert first["eval_index"] == 0 and first["epoch"] == 1.0 and 0 in fake_tune.kept

    fake_tune.reported.clear()
    fake_tune.restore.checkpoint = tune.Checkpoint.from_directory(str(fake_tune.kept[0]))
    monkeypatch.setattr(nerkit.training_run, "token_loss", lambda logits, *a: logits.sum() * float("nan"))
    run_trial({}, base=base, prepared=prepared)

    [diverged] = fake_tune.reported
    assert (diverged["stop_reason"], diverged["final"], diverged["dev_f1"]) == ("diverged", True, 0.0)
    assert diverged["eval_index"] == 1
    assert diverged["epoch"] == first["epoch"] and diverged["tokens_seen"] == first["tokens_seen"]


def test_an_injected_fault_fails_every_attempt_even_one_restored_from_the_final_checkpoint(
        fake_tune, monkeypatch, tiny_run):
    # NERKIT_FAULT_INJECT promises that every attempt fails, so the trial ends as `error`.
    # Each retry gets one evaluation further; the one restored from the final checkpoint has
    # nothing left to train or report, and used to return as if the trial had completed.
    from ray import tune

    from tune.trainable import FAULT_ENV, run_trial

    monkeypatch.setenv(FAULT_ENV, '{"when": {}, "at_eval": 0}')
    base, prepared = tiny_run
    reported_per_attempt = []
    for _ in range(3):
        before = len(fake_tune.reported)
        with pytest.raises(torch.cuda.OutOfMemoryError, match="injected by NERKIT_FAULT_INJECT"):
            run_trial({}, base=base, prepared=prepared)
        reported_per_attempt.append([r["eval_index"] for r in fake_tune.reported[before:]])
        fake_tune.restore.checkpoint = tune.Checkpoint.from_directory(str(fake_tune.kept[max(fake_tune.kept)]))
    assert reported_per_attempt == [[0], [1], []]


def test_a_trial_uses_only_the_gpus_ray_reserved_for_it(monkeypatch):
    # Ray leaves CUDA_VISIBLE_DEVICES alone for a trial that reserved no GPU: device auto
    # took GPU 0 of its node, unreserved. A trial given a GPU torch cannot use trained on
    # the CPU while holding it, silently.
    import torch

    from tune.trainable import LOGICAL_GPUS_ENV, _use_only_reserved_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    _use_only_reserved_gpus([])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(LOGICAL_GPUS_ENV, raising=False)
    with pytest.raises(RuntimeError, match=r"Ray gave this trial GPU\(s\) \[0\], but torch .* finds no CUDA device"):
        _use_only_reserved_gpus([0])
    monkeypatch.setenv(LOGICAL_GPUS_ENV, "1")
    _use_only_reserved_gpus([0])  # logical GPUs: the CPU it is


def test_the_search_driver_starts_without_torch_or_the_training_code():
    # The driver imports tune.trainable only to hand run_trial to Ray; torch, nerkit.train
    # and seqeval's scikit-learn load in the trial processes. Importing them in the
    # driver too took about 4 s of every `nerkit search` start (and of the suite's).
    import subprocess
    import sys

    code = ("import sys, tune.driver; "
            "print(' '.join(m for m in ('torch', 'nerkit.train', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout
