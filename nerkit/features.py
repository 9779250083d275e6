"""Tokenise and align a dataset once, and reuse it.

:func:`prepare_data` is the one place data becomes model inputs. Its result is
cached in-process by (data fingerprint, tokenizer, max length, alignment mode), so
repeated runs in one process (and the search driver, which prepares once and ships
the result to every trial through Ray's object store) never re-tokenise per epoch or
per trial.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from nerkit.alignment import AlignedSplit, align_records, load_tokenizer
from nerkit.data import DataConfig, NerDataset, load_dataset
from nerkit.labels import LabelMap
from nerkit.model import DEFAULT_MAX_LENGTH, check_max_length, model_config, resolve_model
from nerkit.stats import look_alike_note, look_alike_types, split_apart_note, type_tokens, types_without_tokens
from nerkit.weights import count_labels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    """Everything a training run needs from the data, already tokenised."""

    key: tuple
    label_map: LabelMap
    train: AlignedSplit
    dev: AlignedSplit
    test: AlignedSplit | None
    train_counts: tuple[int, ...]   # counted tokens per label id (what the loss sees)
    pad_token_id: int
    fingerprint: str
    dataset: NerDataset

    @property
    def max_length(self) -> int:
        return self.key[4]

    @property
    def label_all_subwords(self) -> bool:
        return self.key[5]


_CACHE: dict[tuple, PreparedData] = {}


def prepare_data(
    data: DataConfig, model: str, max_length: int = DEFAULT_MAX_LENGTH, label_all_subwords: bool = False
) -> PreparedData:
    """Load, validate, tokenise and align train/dev/test (cached; see module doc)."""
    return prepare_loaded(load_dataset(data), model, max_length, label_all_subwords)


def prepare_loaded(
    dataset: NerDataset, model: str, max_length: int = DEFAULT_MAX_LENGTH, label_all_subwords: bool = False
) -> PreparedData:
    """:func:`prepare_data` of a dataset already read by ``load_dataset``: the search driver
    reads and checks the records at once, then tokenises while Ray starts."""
    path = resolve_model(model)
    tokenizer = load_tokenizer(path)
    # Before any work: a max_length past the model's positions fails only in training,
    # in every trial of a search.
    check_max_length(max_length, tokenizer, model_config(path))
    key = (
        dataset.fingerprint,
        type(tokenizer).__name__,
        tokenizer.name_or_path,
        len(tokenizer),
        max_length,
        label_all_subwords,
    )
    if key in _CACHE:
        # The same records may come from other files or another on_invalid policy: the
        # tokenised splits are shared, the load report (what was skipped) is this load's.
        return replace(_CACHE[key], dataset=dataset)
    lm = dataset.label_map

    def align(records) -> AlignedSplit:
        return align_records(records, tokenizer, lm, max_length, label_all_subwords)

    train = align(dataset.train)
    prepared = PreparedData(
        key=key,
        label_map=lm,
        train=train,
        dev=align(dataset.dev),
        test=align(dataset.test) if dataset.test else None,
        train_counts=tuple(count_labels(train.labels, len(lm))),
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        fingerprint=dataset.fingerprint,
        dataset=dataset,
    )
    unseen = types_without_tokens(dict(zip(lm.labels, prepared.train_counts)), lm)
    if unseen:
        logger.warning("entity types with no training tokens (the model cannot learn them, and dev/test F1 "
                       "still scores them): %s", unseen)
    # A misspelt tag (B-per beside B-PER) only the doctor named: training learnt it as a type.
    counts = {"train": dict(zip(lm.labels, prepared.train_counts)),
              **{name: dict(zip(lm.labels, count_labels(split.labels, len(lm))))
                 for name, split in (("dev", prepared.dev), ("test", prepared.test)) if split is not None}}
    typos = look_alike_types(counts, lm)
    if typos:
        totals = {t: sum(type_tokens(c).get(t, 0) for c in counts.values()) for t in typos}
        logger.warning("%s (check the data with `nerkit doctor`)",
                       look_alike_note(typos, totals, dataset.all_records))
    if not any(r.has_entities for r in dataset.dev):
        # The doctor fails such data; a run trained on without a word (best dev F1 0.0000).
        sources = sorted({r.source for r in dataset.dev})
        logger.warning("dev has no entities (%s), so its entity F1 is 0.0 for any model: the best checkpoint, "
                       "early stopping and a search's ranking cannot tell models apart; give a dev split with "
                       "entities", ", ".join(sources) or "no records")
    apart = split_apart_note(dataset.all_records)
    if apart:
        logger.warning("%s", apart)
    _CACHE[key] = prepared
    return prepared
