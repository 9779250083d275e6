"""Word labels to subword labels: the one place records meet a tokenizer.

As in transformers' ``run_ner.py``: the first subword of each word carries the
word's label; continuation subwords and special tokens get :data:`IGNORE` (the
loss and the metrics skip them), or, with ``label_all_subwords=True``, the
word's label with ``B-X`` turned into ``I-X`` (so a word still starts one entity).

>>> from nerkit.labels import LabelMap
>>> lm = LabelMap.from_types(["FOOD"])  # O, B-FOOD, I-FOOD
>>> align_word_labels([None, 0, 1, 1, None], [0, 1], lm)
[-100, 0, 1, -100, -100]
>>> align_word_labels([None, 0, 1, 1, None], [0, 1], lm, label_all_subwords=True)
[-100, 0, 1, 2, -100]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from nerkit.errors import DataError
from nerkit.hub import load_options
from nerkit.labels import LabelMap
from nerkit.model import DEFAULT_MAX_LENGTH, TOKENIZER_FILES, cannot_load, check_max_length, check_model_dir
from nerkit.records import Record

logger = logging.getLogger(__name__)

IGNORE = -100
# Fewer tokens than this is a tokenizer of special tokens only (its vocabulary file lost).
_MIN_VOCAB = 32
# Records per tokenizer call: big enough for the fast tokenizer's batching, small
# enough that one call's encodings stay modest in memory.
_BATCH = 1000


def check_tokenizer_source(name_or_path: str | os.PathLike) -> None:
    """What :func:`load_tokenizer` checks before importing transformers: a local path
    must exist and hold a model or tokenizer file (a hub name passes)."""
    check_model_dir(str(name_or_path), ("config.json", *TOKENIZER_FILES))


def load_tokenizer(name_or_path: str | os.PathLike):
    """Load a fast tokenizer (local path or cached hub name).

    Byte-level BPE tokenizers (RoBERTa, GPT-2 style) are loaded with
    ``add_prefix_space=True``, which they need for pre-split words.

    Raises:
        ValueError: if it does not load (no such directory or hub name), or only a slow
            tokenizer exists: alignment needs ``word_ids()``, which only fast tokenizers
            provide.
    """
    from transformers import AutoTokenizer

    name_or_path = str(name_or_path)  # a Path works as well as its string
    check_tokenizer_source(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True, **load_options(name_or_path))
    except Exception as exc:  # noqa: BLE001 - missing files, and damaged ones (a cut tokenizer.json, tokenizers' errors)
        raise cannot_load(name_or_path, exc) from exc
    if len(tokenizer) < _MIN_VOCAB:
        # tokenizer_config.json alone loads a tokenizer of its special tokens: every word
        # would be [UNK], silently.
        raise ValueError(f"the tokenizer of {name_or_path!r} has {len(tokenizer)} tokens, so its vocabulary "
                         "(tokenizer.json or vocab.txt) is missing: the model directory is incomplete; pull it "
                         "again, or save the tokenizer beside the model")
    if not tokenizer.is_fast:
        raise ValueError(
            f"the tokenizer of {name_or_path!r} ({type(tokenizer).__name__}) is a slow tokenizer; "
            "nerkit needs a fast (Rust tokenizers) one because subword alignment uses word_ids(). "
            "Use a model that ships tokenizer.json, or convert and save the tokenizer as fast"
        )
    if _needs_prefix_space(tokenizer) and not getattr(tokenizer, "add_prefix_space", False):
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True, add_prefix_space=True,
                                                  **load_options(name_or_path))
        _apply_prefix_space(tokenizer)
    return tokenizer


def _apply_prefix_space(tokenizer) -> None:
    # Only model classes that rebuild their pre-tokenizer (RobertaTokenizer, GPT2Tokenizer)
    # honour add_prefix_space=True; a generic fast tokenizer (PreTrainedTokenizerFast, e.g.
    # ModernBERT's) only sets the attribute, so every pre-split word was still encoded as
    # if it continued the previous one ("se" -> "s", "e" instead of "Ġse").
    import json

    from tokenizers import pre_tokenizers

    backend = tokenizer.backend_tokenizer
    if backend.pre_tokenizer is None:
        return
    state = json.loads(backend.pre_tokenizer.__getstate__())
    if state.pop("type", None) == "ByteLevel" and not state.get("add_prefix_space", False):
        state["add_prefix_space"] = True
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(**state)


def _needs_prefix_space(tokenizer) -> bool:
    # Byte-level BPE marks a word start with a leading space; without it every
    # pre-split word is encoded as if it continued the previous one.
    try:
        pre_tokenizer = tokenizer.backend_tokenizer.pre_tokenizer
        state = repr(pre_tokenizer.__getstate__()) if pre_tokenizer is not None else ""
    except Exception:  # noqa: BLE001 - an exotic backend: fall back to the class name
        state = ""
    name = type(tokenizer).__name__.lower()
    return "ByteLevel" in state or any(k in name for k in ("roberta", "gpt2", "bart", "longformer"))


def align_word_labels(
    word_ids: Sequence[int | None],
    word_label_ids: Sequence[int],
    label_map: LabelMap,
    label_all_subwords: bool = False,
) -> list[int]:
    """Subword label ids for one sequence (see module doc).

    Args:
        word_ids: The word index of each subword, ``None`` for special tokens.
        word_label_ids: The label id of each word.
        label_map: Used to turn ``B-X`` into ``I-X`` for continuation subwords.
        label_all_subwords: Label continuation subwords instead of ignoring them.

    Returns:
        One label id (or :data:`IGNORE`) per subword.
    """
    labels = label_map.labels
    label2id = label_map.label2id
    out: list[int] = []
    previous = None
    for word in word_ids:
        if word is None:
            out.append(IGNORE)
        elif word != previous:
            out.append(word_label_ids[word])
        elif label_all_subwords:
            tag = labels[word_label_ids[word]]
            out.append(label2id["I-" + tag[2:]] if tag.startswith("B-") else label2id[tag])
        else:
            out.append(IGNORE)
        previous = word
    return out


@dataclass(frozen=True)
class AlignedSplit:
    """Tokenised records with subword labels.

    Attributes:
        input_ids: Subword ids per record (with special tokens, not padded).
        labels: Label id per subword, :data:`IGNORE` where not counted.
        word_ids: Word index per subword, ``None`` for special tokens.
        num_truncated: Records whose words did not all fit ``max_length``.
        num_words_dropped: Words lost to truncation, summed over records.
        cut_labels: Per record, the label ids of the words truncation cut off (those
            with a subword), empty where none: the metrics count them as missed.
    """

    input_ids: list[list[int]]
    labels: list[list[int]]
    word_ids: list[list[int | None]]
    num_truncated: int
    num_words_dropped: int
    cut_labels: list[list[int]] = field(default_factory=list)

    def word_labels(self) -> list[list[int]]:
        """``labels`` kept at each word's first subword only (:data:`IGNORE` elsewhere).

        What the metrics count: a word is tagged by its first subword at prediction time
        (nerkit predict, ``aggregation_strategy="first"``), so with ``label_all_subwords``
        the continuation subwords, labelled for the loss, must not count as more tokens.
        Without it this equals ``labels``.
        """
        out = []
        for labels, words in zip(self.labels, self.word_ids):
            previous, row = None, []
            for label, word in zip(labels, words):
                row.append(label if word is not None and word != previous else IGNORE)
                previous = word
            out.append(row)
        return out

    def scored_rows(self, preds: Sequence[Sequence[int]], o_id: int) -> tuple[list[list[int]], list[list[int]]]:
        """Gold and predicted ids per record as the metrics count them: each word at its
        first subword (:meth:`word_labels`), then the words truncation cut off, as gold
        against a prediction of 'O'. The model never saw those words, so it found none
        of their entities; leaving them out would score a model that finds the one entity
        it saw of two at recall 1.0."""
        cut = self.cut_labels or [[] for _ in self.labels]
        gold = [row + extra for row, extra in zip(self.word_labels(), cut)]
        pred = [list(row) + [o_id] * len(extra) for row, extra in zip(preds, cut)]
        return gold, pred


def align_records(
    records: Sequence[Record],
    tokenizer,
    label_map: LabelMap,
    max_length: int = DEFAULT_MAX_LENGTH,
    label_all_subwords: bool = False,
) -> AlignedSplit:
    """Tokenise records (pre-split words) and align their labels to subwords.

    Truncation is never silent: it is counted on the result and logged as a warning.

    Raises:
        ValueError: if ``max_length`` < 3, or above what the tokenizer's model takes.
        DataError: for a record with a tag the label map does not have, or an entity
            word the tokenizer gives no subword (its label would be lost).
    """
    if not isinstance(max_length, int) or max_length < 3:
        raise ValueError(f"max_length is {max_length!r}, but must be an integer >= 3")
    check_max_length(max_length, tokenizer)
    input_ids: list[list[int]] = []
    labels: list[list[int]] = []
    word_ids: list[list[int | None]] = []
    cut_labels: list[list[int]] = []
    truncated = dropped = vanished = 0
    first_vanished: str | None = None  # file:line of the first record with such a word
    for start in range(0, len(records), _BATCH):
        batch = records[start : start + _BATCH]
        encoding = tokenizer(
            [list(r.tokens) for r in batch],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        for i, record in enumerate(batch):
            before = vanished
            ids = encoding.word_ids(i)
            present = {w for w in ids if w is not None}
            kept = max(present) + 1 if present else 0
            # Words missing at the end were cut only if the encoding hit max_length and
            # one of them has a subword; otherwise they produced no subword (control
            # characters) and vanished, even in a record that exactly fills max_length.
            had: list[int] = []
            if kept < len(record.tokens) and len(ids) >= max_length:
                had = sorted({w for w in tokenizer(list(record.tokens[kept:]), is_split_into_words=True,
                                                   add_special_tokens=False).word_ids() if w is not None})
            encoded = None  # the record's label ids, encoded once (a cut record needs them early)
            checked = len(record.tokens)  # words whose entity label must reach a subword
            if had:
                truncated += 1
                # Of the words cut off, those that would have had no subword anyway
                # (control characters) vanished, and are counted so, not as dropped.
                dropped += len(had)
                vanished += len(record.tokens) - kept - len(had)
                encoded = _encode(record, label_map)
                cut_labels.append([encoded[kept + w] for w in had])
                checked = kept + had[0]  # the words before the first cut one were not cut
            else:
                vanished += len(record.tokens) - kept
                cut_labels.append([])
            vanished += kept - len(present)
            if vanished > before and first_vanished is None:
                first_vanished = f"{record.source}:{record.line}"
            _check_labels_kept(record, present, checked)
            input_ids.append(list(encoding["input_ids"][i]))
            if encoded is None:
                encoded = _encode(record, label_map)
            labels.append(align_word_labels(ids, encoded, label_map, label_all_subwords))
            word_ids.append(list(ids))
    if truncated:
        logger.warning(
            "%d of %d records were truncated to max_length=%d subwords; %d words lost their labels",
            truncated, len(records), max_length, dropped,
        )
    if vanished:
        logger.warning("%d words produced no subwords (e.g. control characters) and carry no label (first at %s)",
                       vanished, first_vanished)
    return AlignedSplit(input_ids, labels, word_ids, truncated, dropped, cut_labels)


def _check_labels_kept(record: Record, present: set[int], within: int) -> None:
    """A word of an entity that the tokenizer gave no subword (a character it deletes,
    such as a lone combining mark, where the readers' visibility check cannot know the
    tokenizer) would lose its label unseen: raise instead. An ``O`` word losing nothing,
    it only counts as vanished; words cut by truncation are counted as dropped."""
    for w in range(within):
        if w not in present and record.tags[w] != "O":
            raise DataError(
                record.source, record.line_of(w),
                f"word {w + 1} {record.tokens[w]!r} (tag {record.tags[w]}) gets no subword from this tokenizer, "
                "so its label would be lost",
                "remove the word and its tag, or join it to a neighbouring word",
            )


def _encode(record: Record, label_map: LabelMap) -> list[int]:
    try:
        return label_map.encode(record.tags)
    except ValueError as exc:
        raise DataError(
            record.source,
            record.line,
            str(exc),
            "build the label map from every split (nerkit.data.load_dataset does), or drop the type",
        ) from None
