"""The torch device a run uses: one reading of ``auto``/``cpu``/``cuda``/``cuda:N`` for
training, prediction and promotion."""

from __future__ import annotations

import re

import torch


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a device this machine has.

    ``auto`` → CUDA when a device exists, else CPU: Ray may assign a GPU id on a machine
    without a usable CUDA device (logical GPU resources), and ``auto`` then trains on the
    CPU instead of failing. A CUDA device this machine lacks fails here, by name, rather
    than later inside torch.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            raise ValueError(f"device is {name!r}, but this machine has {count} usable CUDA device(s); "
                             "use --device cpu or auto")
        return torch.device(name)
    raise ValueError(f"device is {name!r}, but must be auto, cpu, cuda or cuda:N")
