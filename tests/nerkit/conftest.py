"""Fixtures shared by the nerkit tests (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerkit.train import train


@pytest.fixture()
def checkpoint_at_first_eval(tmp_path):
    """A function: train a config until its first evaluation, save that checkpoint and
    stop there, as a run killed right after it would; returns the checkpoint's path."""

    def run(cfg) -> Path:
        class Stop(Exception):
            pass

        def save_then_stop(metrics, save):
            save(tmp_path / "ckpt")
            raise Stop

        with pytest.raises(Stop):
            train(cfg, report=save_then_stop)
        return tmp_path / "ckpt"

    return run
