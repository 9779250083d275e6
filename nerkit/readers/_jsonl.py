"""JSON Lines plumbing shared by the two JSONL readers, and the ``jsonl-tokens`` reader.

``jsonl-tokens`` lines look like ``{"tokens": ["2", "pizza"], "tags": ["O", "B-FOOD"]}``;
``ner_tags`` is accepted for ``tags``, and integer tags are decoded with
``label_names`` (there is no other way to know what ``3`` means).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from nerkit.errors import DataError, not_utf8
from nerkit.labels import is_label_id
from nerkit.records import Record
from nerkit.text import is_visible

TAG_COLUMNS = ("tags", "ner_tags")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: object, where: str = "") -> str | None:
    """Where in a decoded JSON value a string holds a surrogate code point, quoted."""
    if isinstance(value, str):
        return f"{where or 'the value'} = {value!r}" if any("\ud800" <= c <= "\udfff" for c in value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and not where and _lone_surrogate(key):
            return f"the key {key!r}"
        found = _lone_surrogate(item, f"{where}[{key}]" if where else str(key))
        if found:
            return found
    return None


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-empty line of a JSONL file.

    Raises:
        DataError: for a line that is not a JSON object, or a file that is not UTF-8.
    """
    source = str(path)
    # utf-8-sig: a byte-order mark (Windows editors write one) is not part of line 1.
    with open(path, encoding="utf-8-sig") as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                # A byte-order mark also starts a line where files were concatenated
                # (`cat a.jsonl b.jsonl`), as the conll reader reads them.
                raw = raw.lstrip("\ufeff")
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw, object_pairs_hook=_unique_keys)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        source,
                        line_no,
                        f"bad JSON ({exc.msg} at column {exc.colno}): {_clip(raw)}",
                        "write one JSON object per line (JSON Lines)",
                    ) from None
                except _RepeatedKey as exc:
                    # json.loads keeps the last of two equal keys without a word, so
                    # {"tags": [...B-FOOD...], "tags": [...O...]} would lose an entity.
                    raise DataError(
                        source, line_no, f"the key {exc.key!r} is given twice in one object: {_clip(raw)}",
                        f"keep one {exc.key!r}",
                    ) from None
                except RecursionError:
                    raise DataError(
                        source, line_no, f"bad JSON (nested too deeply to read): {_clip(raw)}",
                        "write one flat JSON object per line (JSON Lines)",
                    ) from None
                if not isinstance(obj, dict):
                    raise DataError(
                        source,
                        line_no,
                        f"expected a JSON object, got {type(obj).__name__}: {_clip(raw)}",
                        "write one JSON object per line (JSON Lines), not an array",
                    )
                if _SURROGATE_ESCAPE.search(raw) and (where := _lone_surrogate(obj)):
                    # Only a \uD8xx–\uDFxx escape makes one; no text can hold it (UTF-8
                    # cannot encode it), and loading failed later naming no file or line.
                    raise DataError(
                        source, line_no, f"{where} holds a lone surrogate (half of a \\uXXXX\\uXXXX pair)",
                        "write the character whole (both escapes of its pair, or the character itself) or "
                        "remove it",
                    )
                yield line_no, obj
        except UnicodeDecodeError:
            raise not_utf8(path) from None


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook`` for ``json.loads``: a dict, refusing a key given twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return obj


def tags_key(keys, source: str, line: int) -> str:
    """Which of ``tags``/``ner_tags`` holds the tags; both given is an error, since one
    would be ignored without a word (``tags`` when neither is, for ``require`` to name)."""
    found = [k for k in TAG_COLUMNS if k in keys]
    if len(found) > 1:
        raise DataError(
            source, line, f"both {found[0]!r} and {found[1]!r} are given, and only one can be the tags",
            "keep one of them (drop or rename the other)",
        )
    return found[0] if found else TAG_COLUMNS[0]


def require(obj: dict, key: str, kind: type, source: str, line: int, example: str):
    """``obj[key]`` if present and of type ``kind``; DataError naming the key otherwise."""
    if key not in obj:
        raise DataError(
            source, line, f"missing key {key!r} (keys found: {sorted(obj)})", f"add it, e.g. {example}"
        )
    value = obj[key]
    if not isinstance(value, kind):
        raise DataError(
            source,
            line,
            f"{key!r} must be a {kind.__name__}, got {type(value).__name__}: {_clip(repr(value))}",
            f"write it like {example}",
        )
    return value


def decode_tags(
    values: Sequence, label_names: Sequence[str] | None, source: str, line: int
) -> tuple[str, ...]:
    """Tags as strings; integer tags (and, with ``label_names``, ids written as strings:
    ``"3"``, as the conll reader reads them) are looked up in ``label_names``.

    Raises:
        DataError: for integer tags without ``label_names``, ids out of range, or
            values that are neither strings nor integers.
    """
    if all(isinstance(v, str) for v in values) and (label_names is None or not any(is_label_id(v) for v in values)):
        return tuple(values)
    out = []
    for i, value in enumerate(values):
        if isinstance(value, str) and label_names is not None and is_label_id(value):
            # An id written as a string ("3", as CSV exports and the conll reader have them).
            value = int(value)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            if label_names is None:
                raise DataError(
                    source,
                    line,
                    f"tags[{i}] is the integer {value} and no label list was given",
                    "write tags as strings ('B-FOOD'), or give the label of each id in id order: "
                    "--label-names O,B-FOOD,I-FOOD (DataConfig.label_names)",
                )
            if not 0 <= value < len(label_names):
                raise DataError(
                    source,
                    line,
                    f"tags[{i}] = {value} is not an id of the {len(label_names)} labels "
                    f"{list(label_names)}",
                    f"use ids 0..{len(label_names) - 1}",
                )
            out.append(label_names[value])
        else:
            raise _NotATag(
                source, line, f"tags[{i}] = {value!r} is neither a string nor an integer id",
                "write tags as strings like 'O', 'B-FOOD', 'I-FOOD'",
            )
    return tuple(out)


class _NotATag(DataError):
    """A tag value of no tag's type (null, a float, a list): the record's own fault. An
    integer without --label-names, or an id out of range, is the option's, and stops the read."""


def token_record(
    tokens: object, tags: object, source: str, line: int, label_names: Sequence[str] | None
) -> Record | DataError:
    """Build a Record from parallel token and tag lists, shared by every tokens-style reader.

    Returns a :class:`DataError` for a bad record (for the policy to apply: the doctor
    lists every one, ``--on-invalid skip`` skips it): lists that disagree, values that are
    not lists of words, tags that are not labels.
    """
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        return DataError(
            source, line, f"tokens must be a list of strings, got {_clip(repr(tokens))}",
            'write them like ["2", "pizza"]',
        )
    if not isinstance(tags, (list, tuple)):
        return DataError(
            source, line, f"tags must be a list, got {_clip(repr(tags))}", 'write them like ["O", "B-FOOD"]'
        )
    if len(tokens) != len(tags):
        return DataError(
            source,
            line,
            f"{len(tokens)} tokens but {len(tags)} tags",
            "give exactly one tag per token",
        )
    if not tokens:
        return DataError(source, line, "the record has no tokens", "remove the empty record")
    try:
        decoded = decode_tags(tags, label_names, source, line)
    except _NotATag as exc:  # a null or float tag: this record's own
        return exc
    for i, token in enumerate(tokens):
        if decoded[i] != "O" and not is_visible(token):
            # A tokenizer gives such a token no subword, so its tag would vanish unseen
            # (an O token loses nothing, and is read).
            return DataError(
                source, line, f"tokens[{i}] = {token!r} has no visible character, so its tag {decoded[i]!r} "
                "would be lost", "remove the token and its tag, or join it to a neighbouring token",
            )
    return Record(tokens=tuple(tokens), tags=decoded, source=source, line=line)


def read_jsonl_tokens(
    path: str | Path, label_names: Sequence[str] | None = None
) -> Iterator[Record | DataError]:
    """Read ``{"tokens": [...], "tags": [...]}`` lines (``ner_tags`` also accepted)."""
    source = str(path)
    example = '{"tokens": ["2", "pizza"], "tags": ["O", "B-FOOD"]}'
    for line, obj in iter_json_lines(path):
        # A missing key stops the read (another format?); a value of the wrong type is
        # this record's own fault, for the policy (token_record).
        tokens = require(obj, "tokens", object, source, line, example)
        key = tags_key(obj, source, line)
        tags = require(obj, key, object, source, line, example)
        yield token_record(tokens, tags, source, line, label_names)


def _clip(text: str, limit: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
