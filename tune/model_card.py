"""MODEL_CARD.md for a promoted model, rendered from its manifest."""

from __future__ import annotations

import shlex
from typing import Any

#: Manifests from before example_input was recorded: a placeholder, not the bundled
#: corpus's Hinglish, which means nothing for a model trained on other data.
PLACEHOLDER_INPUT = "a sentence to tag"


def try_command(manifest: dict[str, Any], model_dir: str) -> str:
    """``nerkit predict`` on the model's own example sentence, quoted for a POSIX shell;
    after ``--``, so a sentence starting with ``-`` ("-5 degrees") is not read as an option."""
    text = manifest.get("example_input") or PLACEHOLDER_INPUT
    return f"nerkit predict --model {shlex.quote(model_dir)} -- {shlex.quote(text)}"


def _f(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _loss(cfg: dict[str, Any]) -> str:
    """The loss as trained: focal's gamma, and the entity:O ratio where it replaced the O
    weight and entity boost (which then stay at 1 and read as unweighted)."""
    name = f"focal (gamma {_f(float(cfg['gamma']))})" if cfg["loss"] == "focal" else cfg["loss"]
    if cfg.get("entity_o_ratio") is not None:
        weights = f"entity:O weight ratio {_f(float(cfg['entity_o_ratio']))}"
    else:
        weights = f"O weight {_f(cfg['o_weight'])}, entity boost {_f(cfg['entity_boost'])}"
    cap = f", weights capped at {_f(float(cfg['max_weight']))}" if cfg.get("max_weight") is not None else ""
    return f"{name}, weight strategy {cfg['weight_strategy']} ({weights}{cap})"


def render_card(manifest: dict[str, Any], version: int, registry_uri: str) -> str:
    """The model card of version ``version`` (Markdown).

    Args:
        manifest: The promotion manifest (without ``version``/``files``).
        version: The version number this card is published under.
        registry_uri: ``<registry>/<model-name>``, for the pull command.
    """
    cfg, test, dev = manifest["config"], manifest["test_metrics"], manifest["dev_metrics"]
    labels = ", ".join(manifest["label_map"]["labels"])
    per_type = manifest.get("per_type", {})
    rows = "\n".join(
        f"| {t} | {_f(m['precision'])} | {_f(m['recall'])} | {_f(m['f1'])} | {m['support']} |"
        for t, m in sorted(per_type.items())
    )
    sel = manifest["selection"]
    if sel["confirm_seeds"]:
        picked = (f"trial `{sel['trial']}`'s configuration, chosen by hand (`--trial`), re-trained"
                  if sel.get("trial") else f"re-trained the top {len(sel['candidates'])} configurations")
        # The published run is its config's best seed: its own dev F1 is a maximum again
        # (optimistic), so the card gives the mean the choice was made on beside it.
        mine = next((c for c in sel["candidates"] if c["trial_id"] == manifest["trial_id"]), {})
        mean_f1 = mine.get("mean_dev_f1")
        over = f" ({_f(mean_f1)} over seeds {mine.get('seeds')})" if mean_f1 is not None else ""
        chosen = (f"{picked} with {sel['confirm_seeds']} extra seed(s) each and kept the best mean dev F1{over}; "
                  f"this is its seed-{sel['chosen_seed']} run, whose own dev F1 is the dev row below")
        failed = [c for c in sel["candidates"] if c.get("error")]
        if failed:
            chosen += "; left out because re-training failed: " + "; ".join(
                f"trial `{c['trial_id']}` ({c['error']})" for c in failed)
    elif sel.get("trial"):
        chosen = f"trial `{sel['trial']}`, chosen by hand (`--trial`), from its best checkpoint"
    else:
        # ranked_by: the column trials were ranked by (checkpoint_dev_f1 stands in for
        # best_dev_f1: tune.promote.ranking_column); absent in manifests from before it.
        ranked = sel.get("ranked_by") or sel["metric"]
        chosen = f"the best trial by `{ranked}`, from its best checkpoint"
    versions = ", ".join(f"{k} {v}" for k, v in sorted(manifest["versions"].items()))
    # Manifests from before training_versions was recorded say only promote's machine's.
    trained = manifest.get("training_versions")
    trained_with = ", ".join(f"{k} {v}" for k, v in sorted(trained.items())) if trained else "not recorded"
    if trained and manifest.get("training_record_from", "checkpoint") != "checkpoint":
        trained_with += " (as the search started: the checkpoint did not record its own)"
    dev_row = " | ".join(_f(dev.get(k)) for k in ("dev_f1", "dev_precision", "dev_recall", "entity_pred_ratio"))
    test_row = " | ".join(_f(test[k]) for k in ("f1", "precision", "recall", "entity_pred_ratio"))
    # "first" takes each word's label from its first subword, as nerkit predict does;
    # "simple" returns pieces ("tu", "##shar") as entities of their own wherever a
    # continuation subword's label differs (always possible for a first-subword model).
    aggregation = "first"
    words = ("Every subword of a word was trained with its label; predictions take each word's from its first"
             if cfg.get("label_all_subwords") else "Words are labelled by their first subword")
    return f"""# {manifest['model_name']} v{version}

Token-classification (NER) model fine-tuned by nerkit from `{cfg['model']}`.

- **Search**: `{manifest['search']}` ({manifest['experiment']}), trial `{manifest['trial_id']}`
- **Selection**: {chosen}
- **Labels**: {labels}
- **Data fingerprint**: `{manifest['data_fingerprint']}`
- **Loss**: {_loss(cfg)}; learning rate {cfg['learning_rate']:.3g}, batch size {cfg['batch_size']}
- **Trained with**: {trained_with}
- **Promoted**: {manifest['created']} with {versions}

## Scores

| split | F1 | precision | recall | entity_pred_ratio |
|---|---|---|---|---|
| dev | {dev_row} |
| test | {test_row} |

Test F1 per entity type:

| type | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}

Promotion gates: test F1 ≥ {manifest['gates']['min_f1']}, test entity_pred_ratio ≥
{manifest['gates']['min_entity_ratio']}.

## Use

```
nerkit pull {registry_uri}@v{version} --to ./model
{try_command(manifest, "./model")}
```

```python
from transformers import pipeline
ner = pipeline("token-classification", model="./model", aggregation_strategy="{aggregation}")
```

The pipeline splits words at punctuation itself: on words like `2-3` or `kareem's` it
returns pieces, and it can drop a combining mark from a span. `nerkit predict` (or
`nerkit.predict.Predictor`) tags words as the training data split them, with exact
character spans.

`manifest.json` lists the full training config, the class weights it trained with, all
metrics (test scored in fp32, as `nerkit predict` runs the model), the label map, package
versions (training's and promotion's) and the sha256 and size of every file; `nerkit pull`
verifies them.

## Limitations

Scores are from the data with the fingerprint above; text from other domains, spelling
conventions or entity definitions will score lower. {words}. Training cut records at {cfg['max_length']} subword tokens; `nerkit predict`
tags longer inputs in overlapping windows, so every word gets a label.
"""
