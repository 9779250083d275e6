"""Write the trial tables as Parquet files beside the experiment, readable with pandas alone.

``trials.parquet`` and ``history.parquet`` hold the rows of :func:`tune.tables.collect`
(schema and meaning: tune/tables.py and docs/TRIAL_TABLES.md). Columns differ between
searches (one ``param_<name>`` per searched parameter, one ``f1_<TYPE>`` per entity
type), so the Arrow schema is built from the rows themselves: every row gets the union
of all keys (missing → null) and each column's type follows its values.

Example:
    >>> from tune.parquet import refresh_tables, read_tables   # doctest: +SKIP
    >>> refresh_tables("runs/s1")                               # doctest: +SKIP
    >>> trials, history = read_tables("runs/s1")                # doctest: +SKIP
    >>> trials.sort_values("best_dev_f1", ascending=False).head()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tune.storage import filesystem, join
from tune.tables import SCHEMA_VERSION, TrialTables, collect

TRIALS_FILE = "trials.parquet"
HISTORY_FILE = "history.parquet"
#: Keys of the Parquet schema metadata (bytes, as Parquet stores them).
META_VERSION = b"nerkit.schema_version"
META_TABLE = b"nerkit.table"
META_COLLECTED = b"nerkit.collected_at"


def _arrow_type(values: list[Any]) -> pa.DataType:
    """The Arrow type of one column from its non-null values.

    Order matters: ``bool`` is a subclass of ``int`` in Python, so it is tested first.
    A column with no value at all is stored as float64 (most nullable columns are
    metrics), never as Arrow's ``null`` type, which some readers handle poorly.
    """
    present = [v for v in values if v is not None]
    if not present:
        return pa.float64()
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def _cell(value: Any, kind: pa.DataType) -> Any:
    """A value converted to its column's type (mixed columns fall back to text)."""
    if value is None:
        return None
    if pa.types.is_string(kind) and not isinstance(value, str):
        return json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
    if pa.types.is_floating(kind):
        return float(value)
    return value


def to_arrow(rows: list[dict[str, Any]], table: str, declared: dict[str, Any] | None = None,
             collected_at: float = 0.0) -> pa.Table:
    """Rows (dicts that may lack keys) as an Arrow table with the union of their columns.

    Args:
        rows: Trial rows or history rows from :func:`tune.tables.collect`.
        table: ``"trials"`` or ``"history"``; stored in the schema metadata.
        declared: Columns the table always has, first and in this order, each with a value
            (or a list of values) of its type: the type of a column no row has a value in
            (``TrialTables.trial_columns`` / ``history_columns``).
        collected_at: When the rows were read (``TrialTables.collected_at``).

    Returns:
        A table whose schema metadata carries ``nerkit.schema_version``, ``nerkit.table``
        and ``nerkit.collected_at``.
    """
    declared = dict(declared or {})
    names: dict[str, None] = dict.fromkeys(declared)  # an insertion-ordered set
    for row in rows:
        names.update(dict.fromkeys(row))
    if not names:
        names = {"trial_id": None, "schema_version": None}
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if name in declared:
            # The declared values count too, so a column keeps one type however far the
            # search has got: a choice of [1, 0.5] is double even while only 1 was sampled.
            example = declared[name]
            values_for_type = values + (list(example) if isinstance(example, (list, tuple)) else [example])
        else:
            values_for_type = values
        kind = _arrow_type(values_for_type)
        if name == "trial_id":
            kind = pa.string()
        columns[name] = pa.array([_cell(v, kind) for v in values], type=kind)
    metadata = {META_VERSION: str(SCHEMA_VERSION).encode(), META_TABLE: table.encode(),
                META_COLLECTED: repr(float(collected_at)).encode()}
    return pa.table(columns).replace_schema_metadata(metadata)


def _write(arrow: pa.Table, uri: str) -> None:
    """Write to a temporary name, then move over the target: readers never see half a file."""
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{path.rsplit('/', 1)[-1]}.tmp-{uuid.uuid4().hex}"
    pq.write_table(arrow, tmp, filesystem=fs)
    fs.move(tmp, path)


def write_tables(tables: TrialTables, dest: str | None = None, *, newer_only: bool = False) -> tuple[str, str]:
    """Write ``trials.parquet`` and ``history.parquet``.

    Args:
        tables: What :func:`tune.tables.collect` returned.
        dest: Directory (local path or ``s3://``/``gs://`` URI); default: the experiment dir.
        newer_only: Leave the tables there if they were read from Ray's state later than
            ``tables`` were. For readers (``nerkit trials``): one that read a running
            search can finish after the search wrote its final tables, and written over
            them it would show trials as running for good. It goes by when each reading
            began (wall clock, as Ray's state only moves forward); the search's own
            writes do not use it, so a reader's clock running ahead never holds them back.

    Returns:
        The URIs of the trials file and the history file.
    """
    root = dest or tables.experiment
    trials_uri, history_uri = join(root, TRIALS_FILE), join(root, HISTORY_FILE)
    if newer_only and _collected_at(trials_uri) > tables.collected_at:
        return trials_uri, history_uri
    _write(to_arrow(tables.trials, "trials", tables.trial_columns, tables.collected_at), trials_uri)
    _write(to_arrow(tables.history, "history", tables.history_columns, tables.collected_at), history_uri)
    return trials_uri, history_uri


def _collected_at(uri: str) -> float:
    """When the table at ``uri`` was read from Ray's state; 0.0 if unknown or unreadable."""
    fs, path = filesystem(uri)
    try:
        metadata = pq.read_schema(path, filesystem=fs).metadata or {}
        return float(metadata.get(META_COLLECTED, b"0"))
    except (OSError, ValueError, pa.ArrowException):
        return 0.0  # none yet, or not one nerkit wrote: write over it


def refresh_tables(experiment_path: str) -> TrialTables:
    """Re-read Ray's state of an experiment (finished, running or interrupted) and rewrite its tables."""
    tables = collect(experiment_path)
    write_tables(tables)
    return tables


def read_table(uri: str):
    """One Parquet table as a pandas DataFrame (local path or object-store URI)."""
    fs, path = filesystem(uri)
    return to_pandas(pq.read_table(path, filesystem=fs))


def to_pandas(arrow: pa.Table):
    """An Arrow table as a DataFrame whose int64 and bool columns keep their type when a
    row is null (pandas' nullable Int64 and boolean; plain pandas would turn ``3`` into
    ``3.0``, and a bool column with a null into objects)."""
    import pandas as pd

    return arrow.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get)


def frames(tables: TrialTables):
    """``(trials, history)`` DataFrames straight from :func:`tune.tables.collect`, unwritten."""
    return (to_pandas(to_arrow(tables.trials, "trials", tables.trial_columns)),
            to_pandas(to_arrow(tables.history, "history", tables.history_columns)))


def read_tables(experiment_path: str):
    """``(trials, history)`` DataFrames of an experiment whose tables were written."""
    return read_table(join(experiment_path, TRIALS_FILE)), read_table(join(experiment_path, HISTORY_FILE))


def schema_version(uri: str) -> int:
    """The ``nerkit.schema_version`` stored in a Parquet file's schema metadata."""
    fs, path = filesystem(uri)
    meta = pq.read_schema(path, filesystem=fs).metadata or {}
    if META_VERSION not in meta:
        raise ValueError(f"{uri} has no {META_VERSION.decode()} in its schema metadata; "
                         "it was not written by tune.parquet.write_tables")
    return int(meta[META_VERSION])
