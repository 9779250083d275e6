"""Checkpoints: a model directory anyone can load, plus the state to resume training.

A **model directory** is what ``save_pretrained`` writes (safetensors weights, the
config with ``id2label``/``label2id``) plus the tokenizer, ``nerkit_config.json``
(the whole resolved training config) and ``metrics.json`` (the evaluation's metrics, with
the class weights and package versions the run trained with). It loads in
``transformers.pipeline("token-classification", model=DIR)`` and ``nerkit predict``.

A **training checkpoint** is a model directory plus ``training_state.safetensors``
(optimizer moments, RNG states; a mostly-zero moment matrix as its non-zero rows) and
``training_state.json`` (step, epoch, scheduler, history). Nothing is pickled:
checkpoints may come from shared storage, and unpickling is code execution.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from nerkit.model_files import CARD_FILE, CONFIG_FILE, MANIFEST_FILE, METRICS_FILE, STATE_JSON, STATE_TENSORS

#: Subdirectories save_pretrained writes into a model directory (transformers 5: a
#: tokenizer's named chat templates).
_SAVED_SUBDIRS = frozenset({"additional_chat_templates"})


def save_model_dir(
    path: str | Path, model, tokenizer, config: dict[str, Any], metrics: dict[str, Any] | None = None
) -> Path:
    """Write a self-explaining model directory (see module doc)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    # The weights under the model's own names: transformers 5 otherwise writes them back
    # under the names of the checkpoint it loaded (BERT's legacy LayerNorm.gamma/beta),
    # and a resume (load_training_checkpoint, by the model's names) would miss them.
    # transformers 4 has no such option, and writes the model's own names anyway.
    own_names = ({"save_original_format": False}
                 if "save_original_format" in inspect.signature(model.save_pretrained).parameters else {})
    model.save_pretrained(path, safe_serialization=True, **own_names)
    tokenizer.save_pretrained(path)
    write_json(path / CONFIG_FILE, config)
    if metrics is not None:
        write_json(path / METRICS_FILE, metrics)
    return path


def replace_model_dir(
    path: str | Path, model, tokenizer, config: dict[str, Any], metrics: dict[str, Any] | None = None
) -> Path:
    """Write a model directory at ``path``, replacing whatever model directory is there.

    Written aside first, then swapped in: saving into the old directory would leave
    its files the new model does not write (another model's tokenizer files, a training
    state that makes it look resumable, a pulled model's checksummed manifest), and a
    save that fails half-way would leave a mix of the two models. An existing directory
    keeps its identity and only its entries are swapped: renaming it would replace a
    symlink with a directory, fail on ``-o .`` (after the whole run), delete the working
    directory from under the process, and need write access to its parent.
    """
    path = Path(path)
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.saving-"))
        try:
            save_model_dir(staging, model, tokenizer, config, metrics)
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; a model directory is not
            os.replace(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename succeeded
        return path
    staging = Path(tempfile.mkdtemp(dir=path, prefix=".saving-"))
    try:
        save_model_dir(staging, model, tokenizer, config, metrics)
        old = Path(tempfile.mkdtemp(dir=path, prefix=".old-"))
        aside = {staging.name, old.name}
        try:
            for entry in [e for e in path.iterdir() if e.name not in aside]:
                os.replace(entry, old / entry.name)
            for entry in list(staging.iterdir()):
                os.replace(entry, path / entry.name)
        except BaseException:
            # Put the old model back whole (the new model's entries back in staging); if
            # that fails too, what is left of it stays in .old-*, not deleted.
            for entry in [e for e in path.iterdir() if e.name not in aside]:
                os.replace(entry, staging / entry.name)
            for entry in list(old.iterdir()):
                os.replace(entry, path / entry.name)
            old.rmdir()
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


#: The files a model directory may hold besides the weights (``model*.safetensors``) and
#: sentencepiece models (``*.model``): nerkit's own, what transformers' model and tokenizer
#: saves write (every tokenizer's vocabulary file names in transformers 5.24), and a pulled
#: model's manifest and card (tune.registry). Anything else is the user's, and replacing
#: the directory would delete it.
_SAVED_FILES = frozenset({
    CONFIG_FILE, METRICS_FILE, STATE_TENSORS, STATE_JSON, "config.json", "generation_config.json",
    "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "chat_template.jinja", "chat_template.json", "vocab.txt", "vocab.json", "merges.txt",
    "bpe.codes", "byte_maps.json", "dict.txt", "emoji.json", "entity_vocab.json", "normalizer.json",
    "prophetnet.tokenizer", "vocab-src.json", "vocab-tgt.json", "word_pronunciation.json", "word_shape.json",
    MANIFEST_FILE, CARD_FILE,
})
_SAVED_PATTERNS = ("model*.safetensors", "*.model")
#: What an operating system or file server leaves in any folder: not the user's work, and
#: refusing an earlier model directory for them would fail `nerkit train -o` after a look
#: at it in Finder.
_SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def _saved_entry(entry: Path) -> bool:
    if entry.name.startswith((".saving-", ".old-")):  # what an interrupted replace leaves
        return entry.is_dir()
    if entry.is_dir():
        return entry.name in _SAVED_SUBDIRS
    return (entry.name in _SAVED_FILES or entry.name in _SYSTEM_FILES or entry.name.startswith(".nfs")
            or any(entry.match(p) for p in _SAVED_PATTERNS))


def foreign_entries(path: str | Path) -> list[str]:
    """What in directory ``path`` a model save would not have written (sorted names, a
    directory's with a trailing ``/``): what :func:`replace_model_dir` must not delete."""
    return sorted(e.name + ("/" if e.is_dir() else "") for e in Path(path).iterdir() if not _saved_entry(e))


def is_model_dir_of_nerkit(path: str | Path) -> bool:
    """Whether ``path`` is a model directory :func:`save_model_dir` wrote, which
    :func:`replace_model_dir` may empty: its ``nerkit_config.json`` and ``config.json``,
    and nothing that a model save does not write (:func:`foreign_entries`)."""
    path = Path(path)
    if not ((path / CONFIG_FILE).is_file() and (path / "config.json").is_file()):
        return False
    return not foreign_entries(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    # The length-grouping pool (nerkit.batching) the run's batch order was made with: a
    # run resumed mid-epoch keeps it, whatever the code's default is by then. Checkpoints
    # from before it was recorded used pools of 50.
    pool_batches: int = 50


#: A 2-D optimizer tensor is written as its non-zero rows when at least this share of its
#: rows is zero. AdamW's moments of a word-embedding matrix are zero, bit for bit, in
#: every row whose token the training data never holds: 29,865 of MiniLM's 30,522 rows
#: on the bundled corpus, 90 of a dense checkpoint's 259 MiB (168 MiB written this way).
SPARSE_ROWS_MIN_ZERO_SHARE = 0.5
ROWS, VALUES = "@rows", "@values"


def _sparse_rows(t: torch.Tensor) -> torch.Tensor | None:
    """Indices of the rows of ``t`` that are not all +0.0 bits, when enough rows are."""
    if t.ndim != 2 or t.numel() == 0:
        return None
    # Bit pattern, not value: a -0.0 row is kept as it is, so the round trip is exact.
    nonzero = t.view(torch.uint8).reshape(t.shape[0], -1).any(dim=1)
    kept = nonzero.nonzero().flatten()
    return kept if len(kept) <= (1 - SPARSE_ROWS_MIN_ZERO_SHARE) * t.shape[0] else None


def _flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars, sparse = {}, {}, {}
    for idx, slots in opt_state["state"].items():
        for name, value in slots.items():
            key = f"opt.{idx}.{name}"
            if not torch.is_tensor(value):
                scalars[f"{idx}.{name}"] = value
                continue
            value = value.detach().cpu().contiguous()
            rows = _sparse_rows(value)
            if rows is None:
                tensors[key] = value
            else:
                tensors[key + ROWS], tensors[key + VALUES] = rows, value[rows].contiguous()
                sparse[key] = list(value.shape)
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars, "sparse_rows": sparse}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    tensors = dict(tensors)
    for key, shape in meta.get("sparse_rows", {}).items():  # checkpoints before it have none
        values = tensors.pop(key + VALUES)
        full = torch.zeros(shape, dtype=values.dtype)
        full[tensors.pop(key + ROWS)] = values
        tensors[key] = full
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
    if hasattr(optimizer, "materialize"):
        # nerkit.sparse_embedding owes untouched embedding rows their weight decay
        # until read; a checkpoint holds the weights dense AdamW would.
        optimizer.materialize()
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


class DamagedCheckpoint(ValueError):
    """A training checkpoint whose files do not load (cut off, or not what they claim)."""


def is_training_checkpoint(path: str | Path) -> bool:
    return (Path(path) / STATE_JSON).is_file() and (Path(path) / STATE_TENSORS).is_file()


def load_training_checkpoint(path: str | Path, *, model, optimizer, scheduler) -> TrainingState:
    """Restore model weights, optimizer, scheduler and RNGs; return the progress."""
    from safetensors.torch import load_model

    path = Path(path)
    if not is_training_checkpoint(path):
        # A model directory given by mistake, or a checkpoint whose state files were lost.
        raise DamagedCheckpoint(
            f"{path} is not a nerkit training checkpoint (no {STATE_JSON}/{STATE_TENSORS}); "
            "resume from a directory written during training"
        )
    try:
        # strict=False, then checked here: the error then names the checkpoint, and
        # safetensors has already left out the names of weights the model shares (tied).
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise ValueError(f"its weights do not fit the model: missing {sorted(missing)[:5]}, "
                             f"unexpected {sorted(unexpected)[:5]}")
        meta = json.loads((path / STATE_JSON).read_text())
        tensors = load_file(str(path / STATE_TENSORS))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own types on a cut-off file
        # A file cut off (a node that died mid-write, a full disk): safetensors' own error
        # names no file, and every retry would fail on it alike.
        raise DamagedCheckpoint(f"the training checkpoint {path} is damaged and cannot be resumed from "
                                f"({type(exc).__name__}: {exc})") from exc
    try:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        scheduler.load_state_dict({**scheduler.state_dict(), **meta["scheduler"]})
        torch.set_rng_state(tensors["rng.torch"])
        progress = TrainingState(**meta["progress"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        # Whole files whose contents do not fit together (an interrupted copy mixing two
        # checkpoints, a hand edit): as damaged as a cut-off one.
        raise DamagedCheckpoint(f"the training checkpoint {path} is damaged and cannot be resumed from: its "
                                f"training state does not fit ({type(exc).__name__}: {exc})") from exc
    # In device order: sorted by name, rng.cuda.10 would come before rng.cuda.2.
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    v, internal, gauss = meta["rng_python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = meta["rng_numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    return progress
