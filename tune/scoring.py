"""A trial's checkpoint fetched and its model scored on the test split (for promotion).

What is scored is what is published: the checkpoint is copied first (a running
search's retention may delete it meanwhile), without its optimizer state, and scored
with its own tokenizer.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from nerkit.model_files import TRAINING_STATE
from tune.storage import filesystem, uri_in

#: The way on from a trial whose model cannot be published.
_OTHER_TRIAL = "Promote another trial with --trial ID (nerkit trials NAME lists them), or re-train with --confirm-seeds K"


class PromotionRefused(ValueError):
    """The chosen model failed a promotion gate; nothing was written to the registry."""


def local_checkpoint(row: dict[str, Any], experiment: str, workdir: Path) -> Path:
    """The trial's best checkpoint as a local directory (downloaded from object storage)."""
    ckpt = row.get("checkpoint") or ""
    if not ckpt:
        raise ValueError(f"trial {row['trial_id']} has no checkpoint to promote (it failed, or stopped before "
                         "its first checkpoint under --checkpoint-every); re-run with --confirm-seeds K to "
                         "re-train its config instead")
    dest = workdir / "checkpoint"
    gone = ValueError(f"trial {row['trial_id']}'s checkpoint {ckpt} is gone (a running search keeps only its latest "
                      "checkpoints, and this one was removed); promote once the search has ended")
    if "://" not in experiment:
        # Copied, not used in place: a running search's retention may delete it meanwhile,
        # and what is scored must be what is published.
        try:
            # Without the optimizer state (about twice the weights), which is not published.
            shutil.copytree(ckpt, dest, ignore=shutil.ignore_patterns(*TRAINING_STATE))
        except FileNotFoundError:
            raise gone from None
        return dest
    import pyarrow.fs as pafs

    # Ray records remote checkpoint paths without the scheme ("bucket/runs/…").
    uri = uri_in(experiment, ckpt)
    fs, path = filesystem(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except FileNotFoundError:
        raise gone from None
    files = [i for i in infos if i.type == pafs.FileType.File and i.base_name not in TRAINING_STATE]
    if not files:
        raise gone
    for info in files:  # file by file: the optimizer state stays where it is, as above
        target = dest / info.path[len(path):].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(info.path, str(target), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return dest


def check_model_files(model_dir: Path, name: str | None = None) -> None:
    """Refuse a model directory that lacks what a published model needs: its config, its
    weights and a tokenizer (the files ``nerkit predict`` and transformers load).
    ``name``: what errors call it (a trial's checkpoint, not promote's temporary copy)."""
    from nerkit.model import TOKENIZER_FILES

    missing = [f for f in ("config.json", "model.safetensors") if not (model_dir / f).is_file()]
    if not any((model_dir / f).is_file() for f in TOKENIZER_FILES):
        missing.append(f"a tokenizer (one of {list(TOKENIZER_FILES)})")
    if missing:
        raise ValueError(f"{name or model_dir} lacks {', '.join(missing)}, so it is not a whole model; nothing was "
                         f"promoted. {_OTHER_TRIAL}")


def evaluate_test(model_dir: Path, config, name: str | None = None) -> tuple[dict[str, Any], Any]:
    """Test-split metrics of the model in ``model_dir``, with its own tokenizer (what is
    published is what is scored), and the prepared data they came from.

    Raises:
        ValueError: the model's files are missing or do not load (named, with the error).
        PromotionRefused: the data has no test split.
    """
    import torch
    from transformers import AutoModelForTokenClassification

    from nerkit.alignment import load_tokenizer
    from nerkit.data import TEST_SPLIT_FIX
    from nerkit.device import resolve_device
    from nerkit.evaluate import evaluate_split
    from nerkit.features import prepare_data
    from nerkit.labels import labels_from_config
    from nerkit.model import resolve_model

    check_model_files(model_dir, name)
    try:
        own = load_tokenizer(str(model_dir))
        # Loaded in float32, as the trials loaded it (nerkit.model.load_model), and scored
        # below without autocast, in fp32, as `nerkit predict` runs the published model; the
        # trials' dev scores ran in their compute_precision (bf16 where the CPU or GPU has
        # bf16 units), so a test score can differ from a bf16 one in the last digits.
        model = AutoModelForTokenClassification.from_pretrained(str(model_dir), use_safetensors=True,
                                                                dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - tokenizers and safetensors raise their own types on damaged files
        raise ValueError(f"the model in {name or model_dir} does not load ({type(exc).__name__}: {exc}); its files "
                         f"are damaged, so nothing was promoted. {_OTHER_TRIAL}") from exc
    # The data as the search prepared it (cached) when the checkpoint's tokenizer is the
    # base model's, byte for byte as serialised; else tokenised again with its own. The
    # base model need not be on this machine (a path on the cluster's nodes, a hub name
    # offline): the checkpoint's own tokenizer is what is published and scored.
    try:
        base = load_tokenizer(resolve_model(config.model)).backend_tokenizer.to_str()
    except (OSError, ValueError):
        base = None
    same = own.backend_tokenizer.to_str() == base
    prepared = prepare_data(config.data, config.model if same else str(model_dir), config.max_length,
                            config.label_all_subwords)
    if prepared.test is None or not prepared.test.input_ids:
        raise PromotionRefused("the data has no test split, so the model cannot be checked before "
                               f"promotion; search again with one: {TEST_SPLIT_FIX}")
    labels = labels_from_config(model.config, str(model_dir))
    if labels != list(prepared.label_map.labels):
        raise ValueError(f"{model_dir} predicts labels {labels}, but the data has "
                         f"{list(prepared.label_map.labels)}; promote a model trained on this data")
    device = resolve_device(config.device)
    metrics = evaluate_split(model.to(device), prepared.test, prepared.label_map, pad_id=prepared.pad_token_id,
                             device=device, collapse_eps=config.collapse_eps)
    return metrics, prepared
