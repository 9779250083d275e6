"""Which reader a path needs: by the ``format=`` given, or detected from the path."""

from __future__ import annotations

from pathlib import Path

from nerkit.errors import DataError
from nerkit.readers._jsonl import iter_json_lines

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
    # The first record decides; iter_json_lines reports bad JSON with file and line.
    for line_no, obj in iter_json_lines(path):
        keys = sorted(obj)
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
