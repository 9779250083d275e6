"""Tests for nerkit.training_run: the step budget and what one run reports and checkpoints."""

from __future__ import annotations

import json

import pytest

from nerkit.config import TrainConfig
from nerkit.data import DataConfig, load_dataset
from nerkit.train import train
from nerkit.training_run import step_budget


@pytest.mark.parametrize(("n", "batch", "epochs", "expected"), [
    (160, 16, 2, (10, 20)),     # whole epochs
    (161, 16, 1, (11, 11)),     # a last, short batch is a step too
    (160, 16, 0.25, (10, 3)),   # a fractional budget ends mid-epoch, rounded up
    (5, 16, 0.01, (1, 1)),      # never fewer than one step
])
def test_step_budget(n, batch, epochs, expected):
    assert step_budget(n, batch, epochs) == expected


def test_each_reported_save_writes_that_evaluations_checkpoint(tiny_model_dir, small_data_dir, tmp_path):
    # The save function handed to report writes a checkpoint of the run at that evaluation,
    # with that evaluation's metrics and the run's whole config (a checkpoint explains itself),
    # and what trained it: the class weights it used and the package versions (what a model
    # published from it records; the evaluations reported carry neither).
    from nerkit.versions import package_versions

    cfg = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), epochs=2,
                      batch_size=16, num_threads=1, weight_strategy="seed", o_weight=0.5, entity_boost=3.0)
    saved = []

    def report(metrics, save):
        assert "class_weights" not in metrics and "versions" not in metrics
        saved.append((metrics["step"], save(tmp_path / f"ckpt{metrics['step']}")))

    result = train(cfg, report=report)
    labels = load_dataset(cfg.data).label_map.labels
    assert [step for step, _ in saved] == [10, 20]
    for step, path in saved:
        metrics = json.loads((path / "metrics.json").read_text())
        assert metrics["step"] == step and metrics["final"] == (step == 20)
        assert metrics["class_weights"] == pytest.approx(dict(zip(labels, result.weights)), rel=1e-6)
        assert metrics["versions"] == package_versions()
        stored = TrainConfig.from_dict(json.loads((path / "nerkit_config.json").read_text()))
        assert stored.with_overrides(data=cfg.data) == cfg
