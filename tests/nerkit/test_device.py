"""nerkit.device: one reading of the device names that train, predict and promote accept."""

from __future__ import annotations

import pytest
import torch

from nerkit.device import resolve_device


def test_auto_and_cpu_resolve_on_a_machine_without_cuda():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_a_cuda_index_the_machine_lacks_is_refused_by_name(monkeypatch):
    # Train and promote used to take cuda:3 on a one-GPU node and fail later inside torch.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"device is 'cuda:3', but this machine has 1 usable CUDA device"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "mps"])
def test_other_names_list_what_is_allowed(name):
    with pytest.raises(ValueError, match=rf"device is '{name}', but must be auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_training_refuses_a_device_this_machine_lacks(tiny_model_dir, small_data_dir, tmp_path):
    from nerkit.config import TrainConfig
    from nerkit.data import DataConfig
    from nerkit.train import train

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), epochs=1,
                      device="cuda:1")
    with pytest.raises(ValueError, match=r"device is 'cuda:1', but this machine has 0 usable CUDA device"):
        train(cfg, output_dir=tmp_path / "out")
