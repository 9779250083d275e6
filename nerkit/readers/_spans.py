"""The ``jsonl-spans`` reader: raw text with character-span entities.

A line looks like ``{"text": "2 pizza", "entities": [{"start": 2, "end": 7,
"label": "FOOD"}]}`` (``end`` exclusive). The text is split into words with
:func:`nerkit.text.split_words`, the word offsets are kept on the record, and the
spans become IOB2 tags. A span must cover whole words: a span that cuts a word
is an error naming the word and the word-aligned span to use instead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

from nerkit.errors import DataError
from nerkit.readers._jsonl import iter_json_lines, require
from nerkit.records import Record
from nerkit.text import split_words

_EXAMPLE = '{"text": "2 pizza", "entities": [{"start": 2, "end": 7, "label": "FOOD"}]}'
_SPAN_EXAMPLE = '{"start": 2, "end": 7, "label": "FOOD"}'


def read_jsonl_spans(
    path: str | Path, entity_types: Collection[str] | None = None
) -> Iterator[Record | DataError]:
    """Read a ``jsonl-spans`` file.

    Args:
        path: The JSONL file.
        entity_types: When given, the only labels allowed; any other is an error.

    Yields:
        A :class:`Record` per line, or the :class:`DataError` of a line whose
        entities are wrong (for :func:`nerkit.bio.apply_policy` to apply).

    Raises:
        DataError: for bad JSON, missing keys or values of the wrong type.
    """
    source = str(path)
    for line, obj in iter_json_lines(path):
        text = require(obj, "text", str, source, line, _EXAMPLE)
        entities = require(obj, "entities", list, source, line, _EXAMPLE)
        spans = [_parse_span(e, i, source, line) for i, e in enumerate(entities)]
        yield _to_record(text, spans, source, line, entity_types)


def _parse_span(entity: object, i: int, source: str, line: int) -> tuple[int, int, object, int]:
    where = f"entities[{i}]"
    if not isinstance(entity, dict):
        raise DataError(
            source, line, f"{where} is not an object: {entity!r}", f"write it like {_SPAN_EXAMPLE}"
        )
    for key in ("start", "end", "label"):
        if key not in entity:
            raise DataError(
                source, line, f"{where} is missing key {key!r} (keys found: {sorted(entity)})",
                f"write it like {_SPAN_EXAMPLE}",
            )
    for key in ("start", "end"):
        value = entity[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise DataError(
                source, line, f"{where}.{key} must be an integer character offset, got {value!r}",
                f"write it like {_SPAN_EXAMPLE}",
            )
    return entity["start"], entity["end"], entity["label"], i


def _to_record(
    text: str,
    spans: list[tuple[int, int, object, int]],
    source: str,
    line: int,
    entity_types: Collection[str] | None,
) -> Record | DataError:
    words = split_words(text)
    if not words:
        return DataError(source, line, "the text has no words", "remove the empty record")
    tags = ["O"] * len(words)
    spans = sorted(spans, key=lambda s: (s[0], s[1]))
    previous = None
    for start, end, label, i in spans:
        problem = _label_problem(label, entity_types) or _span_problem(text, words, start, end)
        if problem:
            return DataError(source, line, f"entities[{i}] {problem[0]}", problem[1])
        if previous is not None and start < previous[1]:
            return DataError(
                source,
                line,
                f"entities[{i}] [{start}, {end}) {text[start:end]!r} overlaps entities[{previous[3]}] "
                f"[{previous[0]}, {previous[1]}) {text[previous[0]:previous[1]]!r}",
                "IOB2 cannot nest entities: keep one of the two spans",
            )
        covered = [k for k, (_, ws, we) in enumerate(words) if ws < end and we > start]
        tags[covered[0]] = f"B-{label}"
        for k in covered[1:]:
            tags[k] = f"I-{label}"
        previous = (start, end, label, i)
    return Record(
        tokens=tuple(w for w, _, _ in words),
        tags=tuple(tags),
        text=text,
        offsets=tuple((s, e) for _, s, e in words),
        source=source,
        line=line,
    )


def _label_problem(label: object, entity_types: Collection[str] | None) -> tuple[str, str] | None:
    if not isinstance(label, str) or not label.strip():
        return f"has an empty or non-string label {label!r}", "give every entity a type, e.g. \"FOOD\""
    if label != label.strip() or any(ch.isspace() for ch in label):
        return f"label {label!r} contains whitespace", f"use {label.strip().replace(' ', '_')!r}"
    if label == "O" or label[:2] in ("B-", "I-"):
        return (
            f"label {label!r} is a tag, not an entity type",
            f"give the type only, e.g. {label[2:] or 'FOOD'!r}; the reader writes B-/I- itself",
        )
    if entity_types is not None and label not in entity_types:
        return f"label {label!r} is unknown", f"use one of {sorted(entity_types)}"
    return None


def _span_problem(
    text: str, words: list[tuple[str, int, int]], start: int, end: int
) -> tuple[str, str] | None:
    span = f"[{start}, {end})"
    if start < 0 or end > len(text):
        return (
            f"{span} is outside the text (length {len(text)})",
            f"use offsets within 0..{len(text)} (end is exclusive)",
        )
    if start >= end:
        return f"{span} is empty (start must be < end)", "use end = start + the entity's length"
    covered = [(w, ws, we) for w, ws, we in words if ws < end and we > start]
    if not covered:
        return f"{span} {text[start:end]!r} covers no word", "point the span at the entity's words"
    first, last = covered[0], covered[-1]
    cut = first if first[1] < start else last if end < last[2] else None
    if cut is None:
        return None
    aligned = f'"start": {first[1]}, "end": {last[2]}'
    return (
        f"{span} {text[start:end]!r} cuts through the word {cut[0]!r} at [{cut[1]}, {cut[2]})",
        f"use the word-aligned span {{{aligned}}} ({text[first[1]:last[2]]!r})",
    )
