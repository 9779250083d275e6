"""Tests for nerkit.optim: AdamW's parameter groups and the learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from nerkit.config import TrainConfig
from nerkit.features import prepare_data
from nerkit.model import load_model
from nerkit.optim import build_optimizer, build_scheduler, lr_factor


def test_lr_rises_over_the_warmup_then_falls_to_zero_at_the_last_step():
    # 4 warmup steps of 10: 1/4 … 4/4, then linear decay reaching 0 at step 10, never below.
    factors = [lr_factor(step, warmup=4, total=10) for step in range(12)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4:] == pytest.approx([1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0, 0.0])


def test_no_warmup_starts_at_the_full_rate():
    assert lr_factor(0, warmup=0, total=5) == 1.0
    assert lr_factor(5, warmup=0, total=5) == 0.0


def test_the_scheduler_sets_the_optimizers_rate_by_lr_factor():
    # What the training loop steps is lr_factor times the configured rate, step by step.
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([param], lr=0.1)
    scheduler = build_scheduler(optimizer, warmup=2, total=6)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.1 * lr_factor(s, 2, 6) for s in range(6)])


@pytest.fixture()
def model_and_cfg(tiny_model_dir, small_data_dir):
    from nerkit.data import DataConfig

    cfg = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), weight_decay=0.05)
    return load_model(cfg.model, prepare_data(cfg.data, cfg.model).label_map), cfg


def test_weight_decay_spares_biases_and_layernorm_weights(model_and_cfg):
    # Standard BERT fine-tuning: matrices decay, vectors (biases, LayerNorm gains) do not.
    model, cfg = model_and_cfg
    decay, no_decay = build_optimizer(model, cfg, torch.device("cpu")).param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert decay["params"] and all(p.ndim >= 2 for p in decay["params"])
    assert no_decay["params"] and all(p.ndim < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_frozen_embeddings_leave_the_optimizer(model_and_cfg):
    model, cfg = model_and_cfg
    optimizer = build_optimizer(model, cfg.with_overrides(freeze_embeddings=True), torch.device("cpu"))
    emb = model.get_input_embeddings().weight
    assert not emb.requires_grad
    assert all(p is not emb for g in optimizer.param_groups for p in g["params"])
