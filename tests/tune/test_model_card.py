"""tune.model_card: the card says how its model was chosen."""

from __future__ import annotations

import pytest

from nerkit.config import TrainConfig
from tune.model_card import render_card


def _manifest(**selection) -> dict:
    metrics = {"f1": 0.8, "precision": 0.8, "recall": 0.8, "entity_pred_ratio": 0.3}
    return {
        "config": TrainConfig().to_dict(), "test_metrics": metrics, "dev_metrics": {"dev_f1": 0.81},
        "label_map": {"labels": ["O", "B-FOOD", "I-FOOD"]}, "per_type": {}, "versions": {"nerkit": "0"},
        "created": "2026-11-26T00:00:00", "data_fingerprint": "f" * 64, "experiment": "runs/s1", "search": "s1",
        "gates": {"min_f1": 0.0, "min_entity_ratio": 0.005}, "model_name": "ner", "trial_id": "t1",
        "selection": {"metric": "best_dev_f1", "confirm_seeds": 0, "candidates": [], "trial": None, **selection},
    }


@pytest.mark.parametrize(("selection", "says", "not_said"), [
    ({}, "the best trial by `best_dev_f1`, from its best checkpoint", "by hand"),
    # Ranked by the checkpoint's dev F1 (tune.promote.ranking_column): said so, not best_dev_f1.
    ({"ranked_by": "checkpoint_dev_f1"}, "the best trial by `checkpoint_dev_f1`, from its best checkpoint",
     "`best_dev_f1`"),
    ({"trial": "t1"}, "trial `t1`, chosen by hand (`--trial`), from its best checkpoint", "the best trial"),
    ({"confirm_seeds": 2, "candidates": ["a", "b", "c"], "chosen_seed": 7},
     "re-trained the top 3 configurations with 2 extra seed(s) each", "by hand"),
    # --trial with --confirm-seeds said "the top 1 configurations", as if ranked.
    ({"trial": "t1", "confirm_seeds": 2, "candidates": ["t1"], "chosen_seed": 7},
     "trial `t1`'s configuration, chosen by hand (`--trial`), re-trained with 2 extra seed(s) each", "the top"),
], ids=["ranked", "ranked-by-checkpoint", "by-hand", "confirmed", "by-hand-confirmed"])
def test_the_card_says_how_the_model_was_chosen(selection, says, not_said):
    card = " ".join(render_card(_manifest(**selection), 1, "reg/ner").split())
    assert says in card and not_said not in card
