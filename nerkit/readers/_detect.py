"""Which reader a path needs: by the ``format=`` given, or detected from the path."""

from __future__ import annotations

import json
from pathlib import Path

from nerkit.errors import DataError

FORMATS = ("jsonl-spans", "jsonl-tokens", "conll", "hf-disk", "parquet")
# A directory written by datasets' save_to_disk holds one of these.
HF_DISK_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
JSONL_SUFFIXES = (".jsonl", ".json")
CONLL_SUFFIXES = (".conll", ".txt", ".tsv", ".bio")
PARQUET_SUFFIXES = (".parquet",)


def is_hf_disk(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in HF_DISK_MARKERS)


def detect_format(path: str | Path) -> str:
    """The format of ``path``, one of :data:`FORMATS`.

    JSONL files are told apart by their first non-empty line: ``"text"`` with
    ``"entities"`` is ``jsonl-spans``, ``"tokens"`` is ``jsonl-tokens``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the format cannot be told from the path.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    suffix = path.suffix.lower()
    if is_hf_disk(path):
        return "hf-disk"
    if path.is_file() and suffix in PARQUET_SUFFIXES:
        return "parquet"
    if path.is_file() and suffix in CONLL_SUFFIXES:
        return "conll"
    if path.is_file() and suffix in JSONL_SUFFIXES:
        return _peek_jsonl(path)
    raise ValueError(
        f"cannot tell the format of {str(path)!r}: allowed formats are {list(FORMATS)} "
        f"(detected from {', '.join(JSONL_SUFFIXES + CONLL_SUFFIXES + PARQUET_SUFFIXES)} files "
        f"or a save_to_disk directory); pass format= / --format to choose one"
    )


def _peek_jsonl(path: Path) -> str:
    with open(path, encoding="utf-8") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(
                    str(path), line_no, f"bad JSON ({exc.msg} at column {exc.colno})",
                    "write one JSON object per line (JSON Lines)",
                ) from None
            keys = sorted(obj) if isinstance(obj, dict) else []
            if "text" in keys and "entities" in keys:
                return "jsonl-spans"
            if "tokens" in keys:
                return "jsonl-tokens"
            raise DataError(
                str(path),
                line_no,
                f"cannot tell the JSONL format from the keys {keys}",
                "use {\"text\", \"entities\"} (jsonl-spans) or {\"tokens\", \"tags\"} (jsonl-tokens), "
                "or pass --format",
            )
    raise DataError(str(path), 0, "the file is empty", "add records, one JSON object per line")
