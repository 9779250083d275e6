"""nerkit.precision: bf16 where the hardware has bf16 units, fp32 elsewhere, and the
attention kernel each device runs fastest in bf16."""

from __future__ import annotations

import pytest
import torch

import nerkit.precision
from nerkit.config import TrainConfig
from nerkit.data import DataConfig
from nerkit.features import prepare_data
from nerkit.precision import autocast_for, compute_precision, precision_context


@pytest.fixture()
def cfg(tiny_model_dir, small_data_dir) -> TrainConfig:
    return TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), num_threads=1)


@pytest.mark.parametrize(("precision", "native", "expected"), [
    ("fp32", True, "fp32"), ("bf16", False, "bf16"), ("auto", True, "bf16"), ("auto", False, "fp32"),
])
def test_cpu_precision_follows_the_hardware(cfg, monkeypatch, precision, native, expected):
    # `auto` is bf16 only on CPUs with bf16 units (emulated bf16 is slower than fp32);
    # an explicit fp32 or bf16 always wins.
    monkeypatch.setattr(nerkit.precision, "cpu_has_native_bf16", lambda: native)
    config = cfg.with_overrides(precision=precision)
    assert compute_precision(config, torch.device("cpu")) == expected
    with autocast_for(config, torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu") == (expected == "bf16")


@pytest.mark.parametrize("native", [False, True])
def test_gpu_precision_follows_the_gpu_and_other_devices_refuse_bf16(cfg, monkeypatch, native):
    # A GPU without bf16 units (emulated bf16 on T4/V100 is slower than fp32) gets fp32
    # under `auto`, and an explicit bf16 there is a clear error, not a silent fp32 run;
    # so is bf16 on a device type with no bf16 path.
    monkeypatch.setattr(nerkit.precision, "cuda_has_native_bf16", lambda device: native)
    cuda = torch.device("cuda")
    assert compute_precision(cfg, cuda) == ("bf16" if native else "fp32")
    if native:
        assert compute_precision(cfg.with_overrides(precision="bf16"), cuda) == "bf16"
    else:
        with pytest.raises(ValueError, match=r"precision is 'bf16', but device cuda has no bf16 units"):
            compute_precision(cfg.with_overrides(precision="bf16"), cuda)
    assert compute_precision(cfg, torch.device("mps")) == "fp32"
    with pytest.raises(ValueError, match=r"device mps has no bf16 units; use 'auto' or 'fp32'"):
        compute_precision(cfg.with_overrides(precision="bf16"), torch.device("mps"))


def _sdpa_enabled() -> dict[str, bool]:
    b = torch.backends.cuda
    return {"flash": b.flash_sdp_enabled(), "efficient": b.mem_efficient_sdp_enabled(),
            "math": b.math_sdp_enabled(), "cudnn": b.cudnn_sdp_enabled()}


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_bf16_picks_attention_kernels_per_device_and_restores_them():
    # bf16 on CUDA must not use cuDNN attention (3-4x slower steps with nerkit's
    # per-batch shapes, measured on an H200); bf16 on CPU uses the math kernel only.
    # fp32 leaves PyTorch's choice alone, and every context puts the flags back.
    before = _sdpa_enabled()
    assert all(before.values())
    with precision_context("bf16", torch.device("cuda")):
        assert _sdpa_enabled() == {"flash": True, "efficient": True, "math": True, "cudnn": False}
    with precision_context("bf16", torch.device("cpu")):
        assert _sdpa_enabled() == {"flash": False, "efficient": False, "math": True, "cudnn": False}
        assert torch.is_autocast_enabled("cpu")
    with precision_context("fp32", torch.device("cuda")):
        assert _sdpa_enabled() == before
    assert _sdpa_enabled() == before
    ctx = precision_context("bf16", torch.device("cpu"))  # one context entered twice, nested
    with ctx:
        with ctx:
            assert _sdpa_enabled()["math"] and not _sdpa_enabled()["flash"]
        assert torch.is_autocast_enabled("cpu") and not _sdpa_enabled()["flash"]
    assert _sdpa_enabled() == before and not torch.is_autocast_enabled("cpu")


def test_cpu_bf16_runs_attention_on_the_math_kernel(cfg, monkeypatch):
    # In bf16 on CPU, PyTorch's fused flash-attention kernel is several times slower than
    # attention as plain bf16 matmuls (benchmarks/RESULTS.md §1), so the context picks the
    # math kernel; fp32 keeps the default. The profiler shows which kernel ran.
    from torch.profiler import profile

    from nerkit.model import load_model

    monkeypatch.setattr(nerkit.precision, "cpu_has_native_bf16", lambda: True)
    model = load_model(cfg.model, prepare_data(cfg.data, cfg.model).label_map)
    ids = torch.randint(5, 100, (2, 7))
    ran = {}
    for precision in ("auto", "fp32"):
        context = autocast_for(cfg.with_overrides(precision=precision), torch.device("cpu"))
        for _ in range(2):  # re-entered every step, like torch.autocast
            with profile() as prof, context:
                model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.sum().backward()
        ran[precision] = {e.key for e in prof.key_averages()}
    assert "aten::_scaled_dot_product_attention_math" in ran["auto"]
    assert not any("flash_attention" in op for op in ran["auto"])
    assert any("flash_attention" in op for op in ran["fp32"])
