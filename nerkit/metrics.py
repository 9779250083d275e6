"""Evaluation metrics: entity-level scores (seqeval, strict IOB2) plus token-level
signals that make collapse visible.

``entity_pred_ratio`` is the share of counted tokens predicted as non-``O``. A model
that predicts ``O`` everywhere scores the majority-class token accuracy (67.8% on the
team's data) and entity F1 = 0; its ``entity_pred_ratio`` is 0, which is what the
search's collapse guard watches.
"""

from __future__ import annotations

from collections.abc import Sequence

from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.v1 import precision_recall_fscore_support
from seqeval.scheme import IOB2, Entities

from nerkit.labels import LabelMap

IGNORE = -100
#: entity_pred_ratio below this marks an evaluation as collapsed (all-'O').
DEFAULT_COLLAPSE_EPS = 0.005


def entity_metrics(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict:
    """Entity-level micro P/R/F1, per-type P/R/F1/support and macro F1 (seqeval, strict IOB2).

    >>> entity_metrics([["B-FOOD", "I-FOOD", "O"]], [["B-FOOD", "I-FOOD", "O"]])["f1"]
    1.0
    """
    if len(gold_tags) != len(pred_tags):
        raise ValueError(f"{len(gold_tags)} gold sequences but {len(pred_tags)} predicted")
    gold = [list(s) for s in gold_tags]
    pred = [list(s) for s in pred_tags]
    kwargs = dict(mode="strict", scheme=IOB2, zero_division=0)
    out: dict = {
        "precision": float(precision_score(gold, pred, **kwargs)),
        "recall": float(recall_score(gold, pred, **kwargs)),
        "f1": float(f1_score(gold, pred, **kwargs)),
    }
    p, r, f, s = precision_recall_fscore_support(gold, pred, average=None, scheme=IOB2, zero_division=0)
    types = _types(gold, pred)
    out["per_type"] = {
        t: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, t in enumerate(types)
    }
    gold_types = [t for t in types if out["per_type"][t]["support"] > 0]
    out["macro_f1"] = (
        sum(out["per_type"][t]["f1"] for t in gold_types) / len(gold_types) if gold_types else 0.0
    )
    return out


def _types(gold: list[list[str]], pred: list[list[str]]) -> list[str]:
    # seqeval (strict) orders its per-type arrays by the sorted types of the entities
    # it extracts from gold and pred together, so name them the same way.
    found = Entities(gold, IOB2, False).unique_tags | Entities(pred, IOB2, False).unique_tags
    return sorted(found)


def decode_counted(
    label_rows: Sequence[Sequence[int]], pred_rows: Sequence[Sequence[int]], label_map: LabelMap
) -> tuple[list[list[str]], list[list[str]]]:
    """Drop ``-100`` positions and map ids to tags (gold and predicted, row by row)."""
    gold_tags, pred_tags = [], []
    for labels, preds in zip(label_rows, pred_rows):
        keep = [i for i, y in enumerate(labels) if y != IGNORE]
        gold_tags.append([label_map.labels[labels[i]] for i in keep])
        pred_tags.append([label_map.labels[preds[i]] for i in keep])
    return gold_tags, pred_tags


def evaluation_metrics(
    label_rows: Sequence[Sequence[int]],
    pred_rows: Sequence[Sequence[int]],
    label_map: LabelMap,
    collapse_eps: float = DEFAULT_COLLAPSE_EPS,
) -> dict:
    """All metrics of one evaluation from aligned gold ids and predicted ids.

    Returns a flat-ish dict: ``f1``, ``precision``, ``recall``, ``macro_f1``,
    ``per_type``, ``token_accuracy``, ``entity_pred_ratio``, ``gold_entity_ratio``,
    ``counted_tokens`` and ``collapsed`` (``entity_pred_ratio < collapse_eps``).
    """
    gold_tags, pred_tags = decode_counted(label_rows, pred_rows, label_map)
    out = entity_metrics(gold_tags, pred_tags)
    counted = sum(len(s) for s in gold_tags)
    correct = sum(g == p for gs, ps in zip(gold_tags, pred_tags) for g, p in zip(gs, ps))
    pred_entities = sum(p != "O" for ps in pred_tags for p in ps)
    gold_entities = sum(g != "O" for gs in gold_tags for g in gs)
    out["counted_tokens"] = counted
    out["token_accuracy"] = correct / counted if counted else 0.0
    out["entity_pred_ratio"] = pred_entities / counted if counted else 0.0
    out["gold_entity_ratio"] = gold_entities / counted if counted else 0.0
    out["collapsed"] = out["entity_pred_ratio"] < collapse_eps
    return out
