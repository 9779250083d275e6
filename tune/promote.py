"""Promote a search's best model to a registry, after it passes gates on the test split.

Steps: 1) pick the best trial by a metric of the trial table (or, with
``confirm_seeds``, the configuration with the best mean dev F1 over fresh seeds, see
tune.confirm); 2) score its model on the **test** split, which the search never looked
at; 3) refuse (:class:`PromotionRefused`, nothing written) when the test F1 or the
test entity_pred_ratio is below its gate — a collapsed, all-'O' model must never
become ``latest``; 4) publish the model files, ``manifest.json`` and ``MODEL_CARD.md``
as a new immutable version (tune.registry) — unless the newest version holds these very
model files already: then nothing is written and ``latest`` is moved to it if it lagged.

Example:
    >>> p = promote("s1", "s3://bucket/models", storage="runs")   # doctest: +SKIP
    >>> p.uri                                                       # doctest: +SKIP
    's3://bucket/models/ner/v3'
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerkit.model_files import METRICS_FILE, TRAINING_STATE
from nerkit.versions import package_versions
from nerkit.weights import config_weights
from tune.confirm import confirm_with_seeds, row_config
from tune.model_card import render_card
from tune.registry import Registry, hash_stream
from tune.scoring import PromotionRefused, evaluate_test, local_checkpoint
from tune.settings import check_same_data, check_same_model, experiment_path
from tune.summary import unfinished as trials_unfinished
from tune.tables import collect

logger = logging.getLogger(__name__)

#: Files of a checkpoint that are not part of a published model: optimizer/RNG state,
#: and metrics that the manifest carries instead.
EXCLUDED = (*TRAINING_STATE, METRICS_FILE)


@dataclass(frozen=True)
class Promotion:
    version: int
    uri: str                    # <registry>/<model-name>/v<N>
    manifest: dict[str, Any]    # without "version"/"files" (see the published manifest.json)
    published: bool = True      # False: the newest version already held this model (see promote)
    latest_before: int | None = None  # where `latest` pointed before this promote (None: nowhere)


def ranking_column(metric: str, confirm_seeds: int) -> str:
    """The trial-table column promotion ranks trials by.

    Without re-training, what is published is a trial's best *checkpointed* evaluation.
    With ``--checkpoint-every N`` a trial's best evaluation can have no checkpoint, and a
    trial first by ``best_dev_f1`` (0.80, checkpoint 0.60) would publish a weaker model
    than the runner-up's (0.79, checkpointed): rank by the checkpoint's dev F1 then. With
    ``confirm_seeds`` the configs are trained again, and ``metric`` ranks them as asked.
    """
    return "checkpoint_dev_f1" if metric == "best_dev_f1" and confirm_seeds == 0 else metric


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _candidates(rows: list[dict[str, Any]], metric: str, ended: bool = False) -> list[dict[str, Any]]:
    numeric = sorted({k for r in rows for k, v in r.items() if _number(v)})
    if rows and metric not in {k for r in rows for k in r}:
        raise ValueError(f"metric is {metric!r}, which is not a trial-table column; use one of {numeric}")
    if any(r.get(metric) is not None and not _number(r[metric]) for r in rows):
        # A text column (trial_id, param_loss) would otherwise read as "no value yet".
        raise ValueError(f"metric is {metric!r}, which is not a numeric column; use one of {numeric}")
    scored = [r for r in rows if _number(r.get(metric))]
    if not scored and ended and metric == "checkpoint_dev_f1" and any(_number(r.get("best_dev_f1")) for r in rows):
        # Evaluated, but pruned or stopped before a checkpoint (--checkpoint-every N):
        # nothing failed, and the fix is a re-training, not the trials' errors.
        raise ValueError("no trial kept a checkpoint to publish (with --checkpoint-every N, each ended before its "
                         "first); --confirm-seeds K trains the top configurations again and publishes the best "
                         "of those runs")
    if not scored and ended:
        raise ValueError(f"no trial has a value for {metric!r}, and the search has ended: its trials failed or "
                         "diverged before reporting one (nerkit trials NAME --stop-reason error,diverged shows why)")
    if not scored:
        raise ValueError(f"no trial has a value for {metric!r} yet; wait for the search to report "
                         "an evaluation (nerkit trials NAME shows progress)")
    return sorted(scored, key=lambda r: r[metric], reverse=True)


def _refuse_trial(rows: list[dict[str, Any]], trial: str, column: str, confirm_seeds: int, name: str,
                  storage: str) -> None:
    """Say why ``--trial`` names no trial that can be promoted: it is not in the search,
    it kept no checkpoint (then --confirm-seeds re-trains its config), or it reported no
    evaluation. (Said as "no such trial", while listing that very id among the trials.)"""
    row = next((r for r in rows if r["trial_id"] == trial), None)
    if row is None:
        ids = [r["trial_id"] for r in rows]
        raise ValueError(f"trial is {trial!r}, but search {name} has no such trial; its trials are {ids} "
                         f"(nerkit trials {name} --storage {storage})")
    if confirm_seeds == 0 and not row.get("checkpoint") and _number(row.get("best_dev_f1")):
        raise ValueError(f"trial {trial} has no checkpoint to promote (it stopped before its first checkpoint "
                         "under --checkpoint-every, or failed); --confirm-seeds K re-trains its config instead")
    raise ValueError(f"trial {trial} has no value for {column!r}: it reported no evaluation (nerkit trials {name} "
                     f"--storage {storage} --columns trial_id,stop_reason,error shows why)")


def with_checkpoint(ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without re-training only a checkpoint can be published: a trial first by a column
    other than the checkpoint's F1 (a ``param_``, ``wall_time_s``) but without one gives way
    to the next that has one. None has one: the first stays, to be refused by name."""
    return [r for r in ranked if r.get("checkpoint")] or ranked[:1]


# Below this share of entity predictions, the gate's refusal is a collapse toward 'O'
# (a higher --min-entity-ratio can refuse a model that predicts plenty).
_NEAR_ZERO = 0.01
_COLLAPSED = " (the model predicts almost only 'O')"


#: What training writes beside a checkpoint's metrics about the run itself
#: (nerkit.training_run.TrainingRun.model_record), not about its evaluation.
MODEL_RECORD = ("class_weights", "versions")


def _read_metrics(model_dir: Path) -> dict[str, Any]:
    path = model_dir / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _training_record(metrics: dict[str, Any], config, prepared, record: dict[str, Any]) -> dict[str, Any]:
    """The class weights and package versions the published model trained with.

    As its run wrote them beside the model (the trial's worker, or promote's own re-training
    with --confirm-seeds). A checkpoint from before nerkit wrote them gives its config's
    weights on this train split, recomputed here, and the versions the search started with,
    and says so: a nerkit since changed could weigh the same counts otherwise."""
    if "class_weights" in metrics and "versions" in metrics:
        return {"class_weights": metrics["class_weights"], "training_versions": metrics["versions"],
                "training_record_from": "checkpoint"}
    return {"class_weights": dict(zip(prepared.label_map.labels, config_weights(config, prepared.train_counts))),
            "training_versions": record.get("versions", {}),
            "training_record_from": "search.json and the config (a checkpoint from before nerkit recorded them)"}


def example_input(records) -> str | None:
    """A sentence from the test split for the card's and pull's "try it" command: the
    shortest of the first 50 records that hold an entity (so trying it shows one), as the
    source wrote it where it had text, else its words joined by spaces. None without a
    test record; the bundled corpus's Hinglish would mean nothing on a user's own data."""
    with_entity = [r for r in records[:50] if r.has_entities] or list(records[:50])
    if not with_entity:
        return None
    record = min(with_entity, key=lambda r: len(r.tokens))
    # A line break in the text would end the shell command it is pasted into.
    return " ".join((record.text or " ".join(record.tokens)).split())


def _check_gates(test: dict[str, Any], min_f1: float, min_entity_ratio: float, who: str) -> None:
    # The collapse gate refuses a model that is no use at finding entities: one that
    # predicts almost only 'O', or one whose entities are all wrong (F1 0 whatever
    # --min-f1 says). --min-entity-ratio 0 turns both off.
    if test["entity_pred_ratio"] < min_entity_ratio:
        raise PromotionRefused(
            f"{who}: test entity_pred_ratio {test['entity_pred_ratio']:.4f} < --min-entity-ratio "
            f"{min_entity_ratio}{_COLLAPSED if test['entity_pred_ratio'] < _NEAR_ZERO else ''}; nothing was promoted")
    if min_entity_ratio > 0 and not test["f1"] > 0:
        raise PromotionRefused(f"{who}: test F1 is {test['f1']:.4f} (no test entity found correctly); "
                               "nothing was promoted")
    if test["f1"] < min_f1:
        raise PromotionRefused(f"{who}: test F1 {test['f1']:.4f} < --min-f1 {min_f1}; nothing was promoted")


def _check_data(record: dict[str, Any], row: dict[str, Any]) -> None:
    """Before any re-training or scoring: the data is still the search's.

    The fingerprint is of the records themselves (words and tags), so the search's base
    model is not needed for it: a checkpoint carries its own tokenizer, and promoting on
    a machine without the base model (a path on the cluster's nodes) must still work.
    """
    from nerkit.data import load_dataset

    cfg = row_config(row)
    check_same_data(record, load_dataset(cfg.data).fingerprint, "promoting")


DEFAULT_TOP_K = 3  # configurations --confirm-seeds re-trains unless --top-k says


def promote(
    name: str, registry: str, *, model_name: str = "ner", metric: str = "best_dev_f1",
    confirm_seeds: int = 0, top_k: int | None = None, min_f1: float = 0.0, min_entity_ratio: float = 0.005,
    storage: str = "runs", allow_unfinished: bool = False, trial: str | None = None, example: str | None = None,
) -> Promotion:
    """Promote the best model of search ``name`` to ``registry`` (see module doc).

    ``trial`` promotes that trial (its id in the trial table) instead of the best.
    ``example`` is the sentence the model card and pull's "try it" tag (default: a short
    test sentence holding an entity, :func:`example_input`; ``""``: none, for test data
    that must not leave the team, names and addresses, say).
    ``top_k`` (default 3) is how many of the best configurations ``confirm_seeds``
    re-trains; it means nothing without ``confirm_seeds`` or with ``trial``, so it is
    refused there rather than ignored.
    A search still running, or stopped before its end, is refused unless
    ``allow_unfinished``: its best so far is not the search's answer, and a running
    search removes superseded checkpoints. The manifest records which it was.

    Raises:
        PromotionRefused: the model failed a gate (nothing was written).
        ValueError: bad arguments, no trial to promote, or an unfinished search.
    """
    if confirm_seeds < 0:
        raise ValueError(f"confirm_seeds is {confirm_seeds}, but must be >= 0 (0: no re-training)")
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k is {top_k}, but must be >= 1")
        # Silently ignoring it would publish a model chosen other than the user believes.
        if confirm_seeds == 0:
            raise ValueError(f"top_k is {top_k}, but only confirm_seeds re-trains the top configurations, and "
                             "confirm_seeds is 0 (none); give confirm_seeds too (--confirm-seeds K) or leave top_k out")
        if trial is not None:
            raise ValueError(f"top_k is {top_k}, but trial {trial!r} names the one configuration to re-train "
                             "(--trial); give one of the two")
    else:
        top_k = DEFAULT_TOP_K
    # `not 0 <= x <= 1` also refuses NaN, which would silently turn a gate off.
    if not 0 <= min_f1 <= 1:
        raise ValueError(f"min_f1 is {min_f1}, but must be in [0, 1]")
    if not 0 <= min_entity_ratio <= 1:
        raise ValueError(f"min_entity_ratio is {min_entity_ratio}, but must be in [0, 1]")
    target = Registry(registry, model_name)  # validates the name; writes nothing yet
    target.check_publishable()  # before minutes of scoring, not after
    exp = experiment_path(name, storage)
    tables = collect(exp)
    left = trials_unfinished(tables)
    unfinished = sum(left.values())
    if unfinished and not allow_unfinished:
        # As the report counts them: created and not ended, and planned but not created yet.
        raise ValueError(f"search {name} has not ended: {left['stopped']} trial(s) running or stopped and "
                         f"{left['not_started']} not started yet (if its driver has stopped, continue it with "
                         f"nerkit search --resume {name} --storage {storage}); promote once it has ended, or pass "
                         "--allow-unfinished to publish its best so far")
    column = ranking_column(metric, confirm_seeds)
    ranked = _candidates(tables.trials, column, ended=not unfinished)
    if trial is not None:
        ranked = [r for r in ranked if r["trial_id"] == trial]
        if not ranked:
            _refuse_trial(tables.trials, trial, column, confirm_seeds, name, storage)
    if confirm_seeds == 0:
        ranked = with_checkpoint(ranked)
    _check_data(tables.record, ranked[0])
    if confirm_seeds > 0:  # re-trains from the base model: it must be the search's
        check_same_model(tables.record, "re-training with --confirm-seeds")
    with tempfile.TemporaryDirectory(prefix="nerkit-promote-") as tmp:
        work = Path(tmp)
        selection: dict[str, Any] = {"metric": metric, "confirm_seeds": confirm_seeds, "candidates": [],
                                     "trial": trial}  # set: chosen by hand (--trial), not ranked
        if confirm_seeds > 0:
            conf = confirm_with_seeds(ranked[:top_k], confirm_seeds, work)
            row, model_dir, dev = conf.row, conf.run.model_dir, conf.run.best
            selection.update(candidates=conf.candidates, chosen_seed=conf.run.seed)
        else:
            row = ranked[0]
            model_dir = local_checkpoint(row, exp, work)
        recorded = _read_metrics(model_dir)  # class weights and versions; a checkpoint's evaluation too
        if confirm_seeds == 0:
            dev = recorded
        config = row_config(row)
        if confirm_seeds > 0:
            config = config.with_overrides(seed=conf.run.seed, num_threads=None)  # as confirm_with_seeds ran it
        source = (f"trial {row['trial_id']}'s checkpoint {row.get('checkpoint')}" if confirm_seeds == 0
                  else f"the re-trained model of trial {row['trial_id']}")
        test, prepared = evaluate_test(model_dir, config, source)
        _check_gates(test, min_f1, min_entity_ratio, f"trial {row['trial_id']} of {name}")
        trained = _training_record(recorded, config, prepared, tables.record)
        manifest = {
            "format": 1,
            "model_name": model_name,
            "promotion_id": uuid.uuid4().hex,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "search": name,
            "search_unfinished_trials": unfinished,  # 0: the search had ended
            "search_trials_not_started": left["not_started"],  # of those, planned but not created
            "experiment": exp,
            "trial_id": row["trial_id"],
            "selection": {**selection, "metric_value": row[metric], "ranked_by": column,
                          "ranked_value": row.get(column)},
            "config": config.to_dict(),
            "dev_metrics": {k: v for k, v in dev.items() if k not in MODEL_RECORD},
            "test_metrics": {k: v for k, v in test.items() if k != "per_type"},
            "per_type": test["per_type"],
            "data_fingerprint": prepared.fingerprint,
            "label_map": {"labels": list(prepared.label_map.labels)},
            # The card's and pull's "try it" sentence.
            "example_input": example_input(prepared.dataset.test) if example is None else (example or None),
            "gates": {"min_f1": min_f1, "min_entity_ratio": min_entity_ratio},
            # The test scores above are fp32 (no autocast), as `nerkit predict` runs the
            # model; the trials' dev scores ran in their compute_precision (the row's).
            "test_precision": "fp32",
            "versions": package_versions(),  # promote's machine
            **trained,  # class_weights, training_versions, training_record_from
        }
        files = {p.name: p for p in sorted(model_dir.iterdir())
                 if p.is_file() and p.name not in EXCLUDED and not p.name.startswith(".")}
        # Promoting again (a pipeline re-run, a retry after `latest` failed to move) must not
        # publish the same weights as one more version: the newest already holds them.
        hashes = {}
        for file_name, path in files.items():
            with open(path, "rb") as f:
                hashes[file_name] = hash_stream(f)
        with target.publishing():  # two pipeline runs at once: one publishes, one finds it held
            held = target.holds(hashes)
            if held is not None:
                before = target.advance_latest(held)
                logger.info("trial %s of %s is already published as %s/v%d", row["trial_id"], name, target.uri,
                            held)
                stored = target.manifest(held) or {}
                kept = {k: v for k, v in stored.items() if k not in ("version", "files")}
                return Promotion(held, f"{target.uri}/v{held}", kept, published=False, latest_before=before)
            before = target.latest()
            number = target.publish(files, manifest, lambda n: render_card(manifest, n, target.uri))
    logger.info("promoted trial %s of %s as %s/v%d", row["trial_id"], name, target.uri, number)
    return Promotion(number, f"{target.uri}/v{number}", manifest, latest_before=before)
