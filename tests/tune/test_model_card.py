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


def _candidate(trial_id: str, dev_f1=(0.7, 0.8), **more) -> dict:
    """A candidate as tune.confirm records it."""
    return {"trial_id": trial_id, "search_score": 0.8, "seeds": [7, 8][:len(dev_f1)], "dev_f1": list(dev_f1),
            "mean_dev_f1": sum(dev_f1) / len(dev_f1) if dev_f1 else None, **more}


@pytest.mark.parametrize(("selection", "says", "not_said"), [
    ({}, "the best trial by `best_dev_f1`, from its best checkpoint", "by hand"),
    # Ranked by the checkpoint's dev F1 (tune.promote.ranking_column): said so, not best_dev_f1.
    ({"ranked_by": "checkpoint_dev_f1"}, "the best trial by `checkpoint_dev_f1`, from its best checkpoint",
     "`best_dev_f1`"),
    ({"trial": "t1"}, "trial `t1`, chosen by hand (`--trial`), from its best checkpoint", "the best trial"),
    ({"confirm_seeds": 2, "candidates": [_candidate("a"), _candidate("b"), _candidate("c")], "chosen_seed": 7},
     "re-trained the top 3 configurations with 2 extra seed(s) each", "by hand"),
    # --trial with --confirm-seeds said "the top 1 configurations", as if ranked.
    ({"trial": "t1", "confirm_seeds": 2, "candidates": [_candidate("t1")], "chosen_seed": 7},
     "trial `t1`'s configuration, chosen by hand (`--trial`), re-trained with 2 extra seed(s) each", "the top"),
], ids=["ranked", "ranked-by-checkpoint", "by-hand", "confirmed", "by-hand-confirmed"])
def test_the_card_says_how_the_model_was_chosen(selection, says, not_said):
    card = " ".join(render_card(_manifest(**selection), 1, "reg/ner").split())
    assert says in card and not_said not in card


def test_a_confirmed_card_gives_the_mean_it_chose_by_and_the_configs_left_out():
    # The published run is its config's best seed, so its own dev F1 is optimistic: the
    # card gives the mean over seeds the choice was made on, and names a config whose
    # re-training failed (left out, not outscored).
    candidates = [_candidate("t0", dev_f1=(), mean_dev_f1=None, error="OSError: no model at /m"),
                  _candidate("t1", dev_f1=(0.70, 0.80))]
    card = " ".join(render_card(_manifest(confirm_seeds=2, candidates=candidates, chosen_seed=8), 1,
                                "reg/ner").split())
    assert "kept the best mean dev F1 (0.7500 over seeds [7, 8]); this is its seed-8 run" in card
    assert "left out because re-training failed: trial `t0` (OSError: no model at /m)" in card


@pytest.mark.parametrize(("overrides", "says", "not_said"), [
    ({"loss": "ce", "weight_strategy": "seed", "o_weight": 0.5, "entity_boost": 3.0},
     "ce, weight strategy seed (O weight 0.5000, entity boost 3.0000)", "gamma"),
    # A ratio.yaml model read as unweighted (O weight 1, boost 1), a focal one without its gamma.
    ({"loss": "focal", "gamma": 1.5939, "weight_strategy": "inverse", "entity_o_ratio": 4.6543},
     "focal (gamma 1.5939), weight strategy inverse (entity:O weight ratio 4.6543)", "entity boost"),
    ({"loss": "ce", "weight_strategy": "inverse", "max_weight": 10.0},
     "weights capped at 10.0000", "gamma"),
], ids=["team-weights", "focal-ratio", "capped"])
def test_the_card_gives_the_loss_the_model_trained_with(overrides, says, not_said):
    manifest = {**_manifest(), "config": TrainConfig().with_overrides(**overrides).to_dict()}
    loss = next(line for line in render_card(manifest, 1, "reg/ner").splitlines() if line.startswith("- **Loss**"))
    assert says in loss and not_said not in loss


def test_the_card_says_what_the_model_trained_with_and_what_promoted_it():
    # Promotion may run on another machine than the search: the card names both sets of
    # versions, and says so when an older manifest recorded only promotion's.
    manifest = {**_manifest(), "training_versions": {"torch": "2.13.0"}, "versions": {"torch": "2.14.0"}}
    card = " ".join(render_card(manifest, 1, "reg/ner").split())
    assert "Trained with**: torch 2.13.0" in card and "with torch 2.14.0" in card
    assert "Trained with**: not recorded" in " ".join(render_card(_manifest(), 1, "reg/ner").split())


def test_the_card_tries_the_model_on_its_own_example_sentence_quoted_for_the_shell():
    # The card once showed the bundled corpus's Hinglish for every model.
    import shlex

    card = render_card({**_manifest(), "example_input": "it's Paris"}, 1, "reg/ner")
    (line,) = [ln for ln in card.splitlines() if ln.startswith("nerkit predict")]
    assert shlex.split(line) == ["nerkit", "predict", "--model", "./model", "--", "it's Paris"]
    # After "--": a sentence starting with "-" is not read as an option.
    dashed = render_card({**_manifest(), "example_input": "-5 degrees"}, 1, "reg/ner")
    assert "nerkit predict --model ./model -- '-5 degrees'" in dashed
    # A manifest from before example_input: a placeholder, not another corpus's sentence.
    old = render_card(_manifest(), 1, "reg/ner")
    assert "'a sentence to tag'" in old and "mangwao" not in old
