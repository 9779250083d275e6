"""Precision for training and evaluation: bf16 autocast where the hardware has bf16
units (CUDA GPUs from Ampere on, CPUs with AVX512-BF16 or AMX), fp32 elsewhere, and the
attention kernel that is fastest in bf16 on each device (benchmarks/RESULTS.md §1)."""

from __future__ import annotations

import contextlib

import torch

from nerkit.config import TrainConfig


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 matrix multiplies in hardware (AVX512-BF16 or AMX).

    Without them oneDNN emulates bf16 and is slower than fp32, so ``auto`` keeps fp32.
    """
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` (a CUDA GPU) has bf16 units (Ampere and later).

    ``torch.cuda.is_bf16_supported()`` alone also says yes to emulated bf16 (T4,
    V100), which is slower than fp32, so emulation is excluded.
    """
    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def compute_precision(config: TrainConfig, device: torch.device) -> str:
    """The precision a run computes in: ``bf16`` (autocast) or ``fp32``.

    ``auto`` is bf16 where the hardware has bf16 units: CUDA GPUs from Ampere on, CPUs
    with AVX512-BF16/AMX; fp32 elsewhere. On MiniLM with the bundled corpus bf16 is
    1.42x the tokens/s of fp32 on one AVX512-BF16 EPYC core at equal F1
    (benchmarks/RESULTS.md §1). An explicit ``bf16`` always runs on CPU (emulated if it
    must be); on a GPU without bf16 units, or a device type nerkit has no bf16 path for
    (mps, xpu), it is an error rather than a silent fp32 run.
    """
    if config.precision == "fp32":
        return "fp32"
    if device.type == "cuda":
        native = cuda_has_native_bf16(device)
    elif device.type == "cpu":
        # On CPU an explicit bf16 runs even when emulated: slower, but what was asked.
        return "bf16" if config.precision == "bf16" or cpu_has_native_bf16() else "fp32"
    else:
        native = False
    if config.precision == "bf16" and not native:
        raise ValueError(f"precision is 'bf16', but device {device} has no bf16 units; use 'auto' or 'fp32'")
    return "bf16" if native else "fp32"


def _attention_backends(device_type: str) -> list:
    """The scaled-dot-product attention kernels nerkit's bf16 runs may use on a device.

    CPU: the math kernel only. PyTorch's fused CPU flash-attention kernel is slow in
    bf16 at some shapes: at 13 tokens x 16 its backward took 57 of 198 ms per MiniLM
    step (1 thread), against about 5 ms in fp32. The math kernel runs attention as
    matrix multiplies, which autocast sends to the CPU's bf16 units. Over lengths 6 to
    32 (about 208 tokens a batch) it was 1.0x to 1.4x faster per step and never slower,
    with the same loss to 4 digits; on the bundled corpus's real, length-grouped batches
    it gained about 3% tokens/s (benchmarks/RESULTS.md §1).

    CUDA: every kernel but cuDNN's. nerkit pads each batch to its own longest record, so
    batch shapes change from step to step, and on an H200 (torch 2.11) bf16 steps with
    the cuDNN kernel allowed took 0.060-0.096 s against 0.022 s without it; fp32, which
    never uses cuDNN attention, took 0.021 s (benchmarks/RESULTS.md §1, GPU). Flash and
    memory-efficient attention still serve bf16.
    """
    from torch.nn.attention import SDPBackend

    if device_type == "cpu":
        return [SDPBackend.MATH]
    return [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class _Bf16Context:
    """bf16 autocast on ``device_type`` with the attention kernels of
    :func:`_attention_backends`. Re-enterable, like ``torch.autocast``. In fp32 neither
    change is faster, so only bf16 makes them."""

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type
        self._stacks: list[contextlib.ExitStack] = []  # one per entry: nesting unwinds in order

    def __enter__(self):
        from torch.nn.attention import sdpa_kernel

        stack = contextlib.ExitStack()
        stack.enter_context(torch.autocast(self.device_type, dtype=torch.bfloat16))
        stack.enter_context(sdpa_kernel(_attention_backends(self.device_type)))
        self._stacks.append(stack)
        return self

    def __exit__(self, *exc):
        return self._stacks.pop().__exit__(*exc)


def precision_context(precision: str, device: torch.device):
    """The compute context for a resolved ``precision``: bf16 autocast with the attention
    kernels that suit the device (:func:`_attention_backends`), or a no-op for fp32."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return _Bf16Context(device.type)


def autocast_for(config: TrainConfig, device: torch.device):
    """The compute context ``config`` gets on ``device`` (:func:`compute_precision`)."""
    return precision_context(compute_precision(config, device), device)
