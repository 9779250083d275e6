"""Load train/dev/test records, with one label map and a fingerprint for caching.

Where the splits come from (:class:`DataConfig`):

1. ``path=None`` (and no ``train``): the bundled corpus directory.
2. A directory: ``train.*``, ``dev.*`` (or ``validation.*``/``valid.*``) and an
   optional ``test.*``; or a saved ``DatasetDict`` with those split names.
3. A single file (or saved ``Dataset``): shuffled with ``random.Random(split_seed)``
   and cut by ``split_ratios`` into the splits not given explicitly.
4. ``train``/``dev``/``test`` name files that override the above.

Example:
    >>> ds = load_dataset(DataConfig(path="orders.jsonl"))  # doctest: +SKIP
    >>> len(ds.train), ds.label_map.labels, ds.fingerprint[:12]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from nerkit.bio import FileReport, LoadReport
from nerkit.data_config import SPLITS, DataConfig
from nerkit.errors import DataError
from nerkit.labels import LabelMap
from nerkit.readers import FORMATS, is_hf_disk, read_records
from nerkit.readers._detect import CONLL_SUFFIXES, JSONL_SUFFIXES, PARQUET_SUFFIXES
from nerkit.records import Record


# File stems (or DatasetDict split names) accepted for each split, in preference order.
#: How to give data a test split (promotion scores on it, and refuses without one): the doctor,
#: the search's warning and promote's refusal say it in these words.
TEST_SPLIT_FIX = "give --test FILE, or a test file (test.jsonl, test.conll, ...) beside train in the --data directory"
SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "validation", "valid"), "test": ("test",)}
_SUFFIXES = JSONL_SUFFIXES + CONLL_SUFFIXES + PARQUET_SUFFIXES


@dataclass(frozen=True)
class NerDataset:
    """Loaded splits with their shared label map.

    Attributes:
        train: Training records.
        dev: Dev records.
        test: Test records (may be empty).
        label_map: Built from the tags of all splits, so ids are stable.
        report: What loading read, repaired and skipped, per file.
        fingerprint: sha256 hex of every split's tokens and tags (a cache key).
    """

    train: tuple[Record, ...]
    dev: tuple[Record, ...]
    test: tuple[Record, ...]
    label_map: LabelMap
    report: LoadReport
    fingerprint: str

    @property
    def all_records(self) -> tuple[Record, ...]:
        """Every split's records: train, dev, then test."""
        return (*self.train, *self.dev, *self.test)

    def split(self, name: str) -> tuple[Record, ...]:
        if name not in SPLITS:
            raise ValueError(f"split is {name!r}, but must be one of {list(SPLITS)}")
        return getattr(self, name)


class TooFewRecordsError(DataError):
    """Too few records are left to train and evaluate on; ``report`` holds what loading
    read and skipped (with ``on_invalid="skip"``, every bad record's reason), and ``left``
    says what is missing, for a listing of the records that were dropped."""

    def __init__(self, source: str, problem: str, fix: str, report: LoadReport, left: str) -> None:
        super().__init__(source, 0, problem + _skipped_note(report, source),
                         fix + (", or fix the skipped ones" if report.skipped else ""))
        self.report = report
        self.left = left
        #: The message without the skipped records' note, for a listing of them all (the doctor).
        self.unnoted = str(DataError(source, 0, problem, self.fix))


class EmptySplitError(TooFewRecordsError):
    """The ``split`` (train or dev) has no records."""

    def __init__(self, source: str, split: str, on_invalid: str, report: LoadReport) -> None:
        super().__init__(source, f"the {split} split has no records (after {on_invalid!r} handling)", "add records",
                         report, left=f"the {split} split has no records")
        self.split = split


def _skipped_note(report: LoadReport, source: str) -> str:
    """How many records skipping dropped from ``source`` (else from all files) and the first
    of them: what an error about the records left must say, or the user reads it as the
    data's size (the CLI shows no load report)."""
    files = [f for f in report.files if f.source == source and f.skipped] or [f for f in report.files if f.skipped]
    if not files:
        return ""
    return (f"; {sum(f.skipped for f in files)} bad record(s) were skipped (`nerkit doctor` lists each with its file "
            f"and line), the first: {files[0].reasons[0]}")


def load_dataset(cfg: DataConfig) -> NerDataset:
    """Read, validate and split the data ``cfg`` points at (see module doc).

    Raises:
        DataError: for bad data (file, line, fix) or a missing split.
        TooFewRecordsError: (a DataError) for records too few to split, or a train or dev
            split left with none (EmptySplitError).
        FileNotFoundError: for a path that does not exist.
    """
    sources, single = _resolve(cfg)
    splits: dict[str, list[Record]] = {name: [] for name in SPLITS}
    reports: list[FileReport] = []
    read_from: dict[str, str] = {}  # split -> its report's source (a DatasetDict's: DIR[split])
    for name, (path, hf_split) in sources.items():
        records, report = read_records(path, cfg.format, cfg.on_invalid, split=hf_split,
                                       label_names=cfg.label_names)
        splits[name] = records
        reports.append(report)
        read_from[name] = report.source
    if single is not None:
        records, report = read_records(single, cfg.format, cfg.on_invalid, label_names=cfg.label_names)
        reports.append(report)
        wanted = [name for name in SPLITS if name not in sources]
        if 0 < len(records) <= len(wanted):
            # Too few to give each split one record and train the rest: say so, rather
            # than report an empty dev split as if records had been skipped.
            raise TooFewRecordsError(
                str(single), f"{len(records)} record(s) are too few to split into {'/'.join(wanted)}",
                f"give at least {len(wanted) + 1} records, or a dev file (--dev FILE)", LoadReport(tuple(reports)),
                left="too few records are left to split")
        splits.update(_split(records, wanted, cfg.split_ratios, cfg.split_seed))
    for name in ("train", "dev"):
        if not splits[name]:
            where = read_from.get(name, str(single))
            raise EmptySplitError(where, name, cfg.on_invalid, LoadReport(tuple(reports)))
    tags = (tag for records in splits.values() for r in records for tag in r.tags)
    return NerDataset(
        train=tuple(splits["train"]),
        dev=tuple(splits["dev"]),
        test=tuple(splits["test"]),
        label_map=LabelMap.from_tags(tags),
        report=LoadReport(tuple(reports)),
        fingerprint=fingerprint(splits),
    )


def fingerprint(splits: dict[str, list[Record] | tuple[Record, ...]]) -> str:
    """sha256 hex over each split's name and its records' tokens and tags, in order."""
    digest = hashlib.sha256(b"nerkit-data-v1\n")
    for name in SPLITS:
        digest.update(f"#{name}\n".encode())
        for record in splits.get(name, ()):
            row = json.dumps([record.tokens, record.tags], ensure_ascii=False)
            digest.update(row.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _resolve(cfg: DataConfig) -> tuple[dict[str, tuple[str, str | None]], str | None]:
    """Map split name -> ``(path, DatasetDict split)``, plus a single file to split, if any."""
    explicit = {name: (getattr(cfg, name), None) for name in SPLITS if getattr(cfg, name)}
    path = cfg.path
    if path is None and cfg.train is None:
        given = [f"{name} {getattr(cfg, name)!r}" for name in ("dev", "test") if getattr(cfg, name)]
        if given:
            # Without a train file the bundled corpus would be the training data, mixed
            # with these splits' labels: almost surely a forgotten --train.
            raise ValueError(f"{' and '.join(given)} given without train or a data path, so training would use "
                             "the bundled corpus. Fix: give --train FILE (or --data DIR/FILE)")
        from nerkit.corpus import bundled_data_dir

        path = str(bundled_data_dir())
    if path is None:
        found: dict[str, tuple[str, str | None]] = {}
    elif not Path(path).exists():
        raise FileNotFoundError(f"no such file or directory: {path!r}")
    elif Path(path).is_dir() and (Path(path) / "dataset_dict.json").is_file():
        found = _dataset_dict_splits(Path(path))
    elif Path(path).is_dir() and not is_hf_disk(Path(path)):
        found = _split_files(Path(path))
    else:
        if cfg.train is not None:
            raise ValueError(
                f"path {path!r} is a single file to split, and train {cfg.train!r} was also "
                "given: pass either one file to split or --train/--dev files"
            )
        return explicit, path
    sources = {**found, **explicit}
    if "train" not in sources:
        raise DataError(
            str(path or "."), 0, "no train split found" + _near_misses(path, "train"),
            "add train.jsonl (or another format's train.*) to the directory, or give a single file to split "
            "into train/dev/test (nerkit train and search also take --train FILE)",
        )
    if "dev" not in sources:
        raise DataError(
            str(path or sources["train"][0]),
            0,
            "no dev split found (looked for dev.*, validation.*, valid.*)" + _near_misses(path, "dev"),
            "add dev.jsonl, or give a single file to split into train/dev/test (nerkit train and search also take "
            "--dev FILE)",
        )
    return sources, None


# Names people give split files that nerkit does not read as that split (val.jsonl, Train.jsonl).
_LOOK_ALIKE_STEMS = {"train": ("train", "training"), "dev": ("dev", "validation", "valid", "val", "eval")}


def _near_misses(path: str | None, split: str) -> str:
    """``"; found [...]"``: entries of directory ``path`` named like ``split`` but not read
    as it (another case, a suffix no reader takes, an alias), so the error says why."""
    if path is None or not Path(path).is_dir():
        return ""
    if (Path(path) / "dataset_dict.json").is_file():
        names = json.loads((Path(path) / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        return f" in the saved DatasetDict (its splits: {names})"
    stems = _LOOK_ALIKE_STEMS[split]
    near = sorted(p.name for p in Path(path).iterdir() if p.name.split(".")[0].lower() in stems)
    if not near:
        return ""
    return (f"; found {near}, not read as the {split} split (it is read from "
            f"{'/'.join(f'{s}.*' for s in SPLIT_NAMES[split])}, names case-sensitive, with a suffix of "
            f"{list(_SUFFIXES)})")


def _split_files(directory: Path) -> dict[str, tuple[str, None]]:
    found = {}
    for split, stems in SPLIT_NAMES.items():
        matches = [
            p
            for stem in stems
            for p in sorted(directory.glob(f"{stem}.*")) + [directory / stem]
            if (p.is_file() and p.suffix.lower() in _SUFFIXES) or is_hf_disk(p)
        ]
        if len(matches) > 1:
            raise ValueError(
                f"{directory}: several files for the {split} split: {[m.name for m in matches]}; "
                "keep one, or name it with --" + split
            )
        if matches:
            found[split] = (str(matches[0]), None)
    return found


def _dataset_dict_splits(directory: Path) -> dict[str, tuple[str, str]]:
    marker = directory / "dataset_dict.json"
    try:
        names = json.loads(marker.read_text(encoding="utf-8"))["splits"]
        if not isinstance(names, list):
            raise TypeError(f"'splits' is {names!r}, not a list")
    except (ValueError, KeyError, TypeError) as exc:  # bad JSON, not UTF-8, no "splits"
        raise DataError(str(marker), 0, f"cannot read the DatasetDict's split list ({type(exc).__name__}: {exc})",
                        "save the DatasetDict again with save_to_disk(...), or restore dataset_dict.json") from None
    found = {}
    for split, aliases in SPLIT_NAMES.items():
        match = next((a for a in aliases if a in names), None)
        if match is not None:
            found[split] = (str(directory), match)
    return found


def _split(
    records: list[Record], wanted: list[str], ratios: tuple[float, float, float], seed: int
) -> dict[str, list[Record]]:
    """Shuffle deterministically and cut into ``wanted`` splits by their renormalised ratios."""
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    shares = {name: ratios[SPLITS.index(name)] for name in wanted}
    total = sum(shares.values())
    n = len(shuffled)
    sizes = {}
    for name in wanted:
        if name == "train" or total == 0:
            continue
        size = round(n * shares[name] / total)
        # A split asked for gets at least one record while train keeps one.
        sizes[name] = max(size, 1) if shares[name] > 0 and n > len(wanted) else size
    out, start = {}, 0
    for name in wanted:
        if name == "train":
            continue
        out[name] = shuffled[start : start + sizes[name]]
        start += sizes[name]
    if "train" in wanted:
        out["train"] = shuffled[start:]
    return out


__all__ = ["FORMATS", "SPLITS", "DataConfig", "EmptySplitError", "NerDataset", "TooFewRecordsError", "fingerprint",
           "load_dataset"]
