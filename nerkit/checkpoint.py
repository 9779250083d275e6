"""Checkpoints: a model directory anyone can load, plus the state to resume training.

A **model directory** is what ``save_pretrained`` writes (safetensors weights, the
config with ``id2label``/``label2id``) plus the tokenizer, ``nerkit_config.json``
(the whole resolved training config) and ``metrics.json``. It loads in
``transformers.pipeline("token-classification", model=DIR)`` and ``nerkit predict``.

A **training checkpoint** is a model directory plus ``training_state.safetensors``
(optimizer moments, RNG states) and ``training_state.json`` (step, epoch,
scheduler, history). Nothing is pickled: checkpoints may come from shared storage,
and unpickling is code execution.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

CONFIG_FILE = "nerkit_config.json"
METRICS_FILE = "metrics.json"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"


def save_model_dir(
    path: str | Path, model, tokenizer, config: dict[str, Any], metrics: dict[str, Any] | None = None
) -> Path:
    """Write a self-explaining model directory (see module doc)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    write_json(path / CONFIG_FILE, config)
    if metrics is not None:
        write_json(path / METRICS_FILE, metrics)
    return path


def write_json(path: Path, value: Any) -> None:
    Path(path).write_text(json.dumps(value, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


@dataclass
class TrainingState:
    """Progress counters that, with model + optimizer + RNG, resume a run exactly."""

    step: int = 0                 # optimizer steps done
    epoch: int = 0                # current epoch index
    batch_in_epoch: int = 0       # batches of `epoch` already consumed
    tokens_seen: int = 0          # real (non-padding) training tokens
    best_f1: float = -1.0
    best_step: int = -1
    evals_since_best: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def _flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, slots in opt_state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"opt.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_checkpoint(
    path: str | Path, *, model, tokenizer, optimizer, scheduler, state: TrainingState,
    config: dict[str, Any], metrics: dict[str, Any] | None = None,
) -> Path:
    """Model directory + everything needed to continue training from ``state``."""
    path = save_model_dir(path, model, tokenizer, config, metrics)
    tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    save_file(tensors, str(path / STATE_TENSORS))
    py_state = random.getstate()
    write_json(path / STATE_JSON, {
        "progress": state.__dict__,
        "optimizer": opt_meta,
        "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"},
        "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
        "rng_numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    })
    return path


def is_training_checkpoint(path: str | Path) -> bool:
    return (Path(path) / STATE_JSON).is_file() and (Path(path) / STATE_TENSORS).is_file()


def load_training_checkpoint(path: str | Path, *, model, optimizer, scheduler) -> TrainingState:
    """Restore model weights, optimizer, scheduler and RNGs; return the progress."""
    from safetensors.torch import load_model

    path = Path(path)
    if not is_training_checkpoint(path):
        raise ValueError(
            f"{path} is not a nerkit training checkpoint (no {STATE_JSON}/{STATE_TENSORS}); "
            "resume from a directory written during training"
        )
    load_model(model, str(path / "model.safetensors"), strict=False)
    meta = json.loads((path / STATE_JSON).read_text())
    tensors = load_file(str(path / STATE_TENSORS))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    scheduler.load_state_dict({**scheduler.state_dict(), **meta["scheduler"]})
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    v, internal, gauss = meta["rng_python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = meta["rng_numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    return TrainingState(**meta["progress"])
