"""Readers: every supported input format becomes a list of :class:`~nerkit.records.Record`.

Formats (see :data:`FORMATS`): ``jsonl-spans`` (text + character spans),
``jsonl-tokens`` (tokens + tags), ``conll``, ``hf-disk`` (``save_to_disk``) and
``parquet``. :func:`read_records` picks the reader (by ``format=`` or by
:func:`detect_format`) and applies the ``on_invalid`` policy of
:mod:`nerkit.bio` to what it reads.

Example:
    >>> records, report = read_records("data/train.jsonl")  # doctest: +SKIP
    >>> records[0].tags, report.read  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from nerkit.bio import FileReport, apply_policy, check_policy
from nerkit.errors import DataError
from nerkit.readers._columnar import read_hf_disk, read_parquet
from nerkit.readers._conll import read_conll
from nerkit.readers._detect import FORMATS, HF_DISK_MARKERS, detect_format, is_hf_disk
from nerkit.readers._jsonl import read_jsonl_tokens
from nerkit.readers._spans import read_jsonl_spans
from nerkit.records import Record

__all__ = [
    "FORMATS",
    "HF_DISK_MARKERS",
    "check_format",
    "detect_format",
    "is_hf_disk",
    "read_conll",
    "read_hf_disk",
    "read_jsonl_spans",
    "read_jsonl_tokens",
    "read_parquet",
    "read_records",
]


def check_format(format: str) -> None:
    """Raise ValueError unless ``format`` is ``"auto"`` or one of :data:`FORMATS`."""
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"format is {format!r}, but must be 'auto' or one of {list(FORMATS)}")


def read_records(
    path: str | Path,
    format: str = "auto",
    on_invalid: str = "error",
    split: str | None = None,
    label_names: Sequence[str] | None = None,
    entity_types: Collection[str] | None = None,
) -> tuple[list[Record], FileReport]:
    """Read one file (or saved dataset) and validate its records.

    Args:
        path: The file, or a ``save_to_disk`` directory.
        format: ``"auto"`` (detect) or one of :data:`FORMATS`.
        on_invalid: ``"error"``, ``"repair"`` or ``"skip"`` (see :mod:`nerkit.bio`).
        split: Split to read from a saved ``DatasetDict``.
        label_names: Label names for integer tags (jsonl-tokens, conll, parquet, hf-disk
            without ``ClassLabel``).
        entity_types: For ``jsonl-spans``, the only labels allowed (others are errors).

    Returns:
        The kept records and the file's report (records read, repaired, skipped).

    Raises:
        ValueError: for an unknown ``format``/``on_invalid`` or an undetectable path.
        DataError: (a ValueError) for bad data, naming file, line and fix.
        FileNotFoundError: if ``path`` does not exist.
    """
    check_format(format)
    check_policy(on_invalid)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    chosen = detect_format(path) if format == "auto" else format
    if path.is_dir() and chosen != "hf-disk":
        raise DataError(str(path), 0, f"is a directory, and {chosen} data is a file",
                        "give the file itself, or --format hf-disk for a save_to_disk directory")
    if chosen == "jsonl-spans":
        items = read_jsonl_spans(path, entity_types)
    elif chosen == "jsonl-tokens":
        items = read_jsonl_tokens(path, label_names)
    elif chosen == "conll":
        items = read_conll(path, label_names)
    elif chosen == "hf-disk":
        items = read_hf_disk(path, split, label_names)
    else:
        items = read_parquet(path, label_names)
    source = str(path) if split is None or chosen != "hf-disk" else f"{path}[{split}]"
    records, report = apply_policy(items, source, on_invalid)
    if report.read == 0:
        # In every format, as auto-detection and the CoNLL reader say it: a split file with
        # nothing in it is a mistake to name, and read as one it left a split silently empty.
        gone = "save the dataset without that split" if chosen == "hf-disk" else "remove the file"
        raise DataError(source, 0, "the file has no records", f"add records ({_ONE_RECORD[chosen]}), or {gone}")
    return records, report


_ONE_RECORD = {
    "jsonl-spans": 'one {"text", "entities"} object per line',
    "jsonl-tokens": 'one {"tokens", "tags"} object per line',
    "conll": "a token and its tag per line, a blank line between sentences",
    "parquet": "a row of tokens and tags each",
    "hf-disk": "a row of tokens and tags each",
}
