"""Readers for columnar data: ``hf-disk`` (``datasets`` ``save_to_disk``) and ``parquet``.

Both need a ``tokens`` column and a ``tags`` (or ``ner_tags``) column. Integer tags
are decoded with the ``ClassLabel`` names stored with the data (a saved dataset's
features, or the ``huggingface`` metadata ``datasets`` writes into parquet), else
with ``label_names``. A record's line is its 1-based row number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from nerkit.errors import DataError
from nerkit.readers._jsonl import tags_key, token_record
from nerkit.records import Record

TOKEN_COLUMN = "tokens"


def read_hf_disk(
    path: str | Path, split: str | None = None, label_names: Sequence[str] | None = None
) -> Iterator[Record | DataError]:
    """Read a ``Dataset`` or one split of a ``DatasetDict`` saved with ``save_to_disk``.

    Args:
        path: The saved dataset's directory.
        split: The split to read from a ``DatasetDict``; may be omitted when it has one.
        label_names: Names for integer tags when the data carries no ``ClassLabel``.

    Raises:
        DataError: for a missing split or column.
    """
    import datasets  # heavy: imported only when this format is read

    source = str(path)
    try:
        data = datasets.load_from_disk(source)
    # A damaged state.json, dataset_info.json, shard...; FileNotFoundError: the directory
    # exists (read_records checked) but is not a saved dataset, or lost one of its files.
    except (ValueError, KeyError, TypeError, FileNotFoundError) as exc:
        raise DataError(source, 0, f"cannot load the saved dataset ({type(exc).__name__}: {exc})",
                        "save it again with dataset.save_to_disk(...), or restore its files") from None
    if isinstance(data, datasets.DatasetDict):
        names = list(data)
        if split is None and len(names) == 1:
            split = names[0]
        if split is None:
            # Named as one split's file (--train DIR): nothing on the command line picks a
            # split, but each is a saved Dataset of its own in DIR/<split>.
            raise DataError(source, 0, f"a saved DatasetDict with several splits ({names}) is not one split's data",
                            f"give it as --data {source} (its splits are used), or one split's own directory, "
                            f"e.g. {Path(source) / names[0]}")
        if split not in data:
            raise DataError(source, 0, f"split {split!r} is not in the saved DatasetDict (splits: {names})",
                            f"pick one of {names}")
        data = data[split]
        source = f"{source}[{split}]"
    tags_column = _columns(list(data.column_names), source)
    names = _names(_class_label_names(data.features[tags_column]), label_names, source)
    columns = data.select_columns([TOKEN_COLUMN, tags_column]).to_dict()
    yield from _rows(columns[TOKEN_COLUMN], columns[tags_column], source, names)


def read_parquet(
    path: str | Path, label_names: Sequence[str] | None = None
) -> Iterator[Record | DataError]:
    """Read a parquet file with ``tokens`` and ``tags``/``ner_tags`` columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = str(path)
    try:
        schema = pq.read_schema(source)
        tags_column = _columns(list(schema.names), source)
        table = pq.read_table(source, columns=[TOKEN_COLUMN, tags_column])
    except pa.ArrowException as exc:  # truncated, or not parquet: pyarrow's message names no file
        raise DataError(source, 0, f"cannot read it as Parquet ({exc})",
                        "write the file again (e.g. df.to_parquet(...)), or pass --format for its real "
                        "format") from None
    names = _names(_parquet_label_names(schema.metadata, tags_column), label_names, source)
    yield from _rows(
        table.column(TOKEN_COLUMN).to_pylist(), table.column(tags_column).to_pylist(), source, names
    )


def _names(stored: list[str] | None, given: Sequence[str] | None, source: str) -> Sequence[str] | None:
    """The label of each id: the data's own ``ClassLabel`` names, else ``--label-names``.
    Both, disagreeing, is refused: the given names were ignored without a word, and a
    split without ``ClassLabel`` beside one with it read the same ids as other labels."""
    if stored and given and list(given) != stored:
        raise DataError(source, 0, f"its ClassLabel names the label ids {stored}, but --label-names gives "
                                   f"{list(given)}",
                        "leave out --label-names (the data names its own labels), or give the same names in "
                        "the same order")
    return stored or given


def _rows(tokens: list, tags: list, source: str, names: Sequence[str] | None) -> Iterator:
    for row, (words, labels) in enumerate(zip(tokens, tags), start=1):
        yield token_record(words, labels, source, row, names)


def _columns(columns: list[str], source: str) -> str:
    """The tags column's name, after checking both columns are there."""
    tags_column = tags_key(columns, source, 0)
    if TOKEN_COLUMN not in columns or tags_column not in columns:
        raise DataError(
            source,
            0,
            f"expected columns 'tokens' and 'tags' (or 'ner_tags'); found {columns}",
            "rename the columns, e.g. dataset.rename_column('words', 'tokens')",
        )
    return tags_column


def _class_label_names(feature: object) -> list[str] | None:
    # A tags column is List(ClassLabel) / Sequence(ClassLabel); names live on the inner one.
    inner = getattr(feature, "feature", None)
    names = getattr(inner, "names", None)
    return list(names) if names else None


def _parquet_label_names(metadata: dict | None, column: str) -> list[str] | None:
    if not metadata or b"huggingface" not in metadata:
        return None
    try:
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
        names = features[column]["feature"]["names"]
    except (KeyError, TypeError, ValueError):
        return None
    return list(names) if isinstance(names, list) else None
