"""The doctor's first check: the data loads, and every bad record is named."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from nerkit.data import SPLITS, TEST_SPLIT_FIX, DataConfig, NerDataset, TooFewRecordsError, load_dataset
from nerkit.doctor._report import DoctorReport
from nerkit.readers import detect_format

# Bad records listed in the text report; --json has them all.
_LISTED = 20


def check_data(cfg: DataConfig, report: DoctorReport) -> NerDataset | None:
    """Load the data; on failure report the error and, where possible, every bad record."""
    try:
        dataset = load_dataset(cfg)
    except TooFewRecordsError as exc:
        if cfg.on_invalid == "skip":  # the records were skipped already: list them
            _too_few_left(exc, exc, report)
            return None
        return _reload_skipping(cfg, exc, report)
    except (ValueError, FileNotFoundError) as exc:
        if cfg.on_invalid == "skip":
            report.add("data", "fail", str(exc))
            return None
        return _reload_skipping(cfg, exc, report)
    return _loaded(cfg, dataset, report)


def _reload_skipping(cfg: DataConfig, exc: Exception, report: DoctorReport) -> NerDataset | None:
    """Collect every bad record rather than only the first: reload dropping them."""
    try:
        dataset = load_dataset(replace(cfg, on_invalid="skip"))
    except TooFewRecordsError as empty:
        _too_few_left(exc, empty, report)
        return None
    except (ValueError, FileNotFoundError):
        report.add("data", "fail", str(exc))
        return None
    reasons = [r for f in dataset.report.files for r in f.reasons]
    report.add(
        "data",
        "fail",
        f"{exc}\n{dataset.report.skipped} record(s) have problems:\n  " + _listing(reasons)
        + "\n(the checks below ran without them)",
        **dataset.report.to_dict(),
    )
    return dataset


def _too_few_left(exc: Exception, empty: TooFewRecordsError, report: DoctorReport) -> None:
    """Too few records are left without the bad ones: list them all the same, and stop the checks."""
    if not empty.report.skipped:  # none was bad: the data is simply too small
        report.add("data", "fail", str(exc))
        return
    reasons = [r for f in empty.report.files for r in f.reasons]
    first = empty.unnoted if exc is empty else str(exc)  # the listing below names what the note would
    report.add(
        "data", "fail",
        f"{first}\n{empty.report.skipped} record(s) have problems:\n  " + _listing(reasons)
        + f"\n(without them {empty.left}, so no check below ran)",
        **empty.report.to_dict(),
    )


def _loaded(cfg: DataConfig, dataset: NerDataset, report: DoctorReport) -> NerDataset:
    """The data loaded: what was read, in which format, and what the policy changed."""
    formats = {f.source: _format_of(f.source, cfg.format) for f in dataset.report.files}
    sizes = ", ".join(f"{name} {len(dataset.split(name)):,}" for name in SPLITS)
    detail = (
        f"records: {sizes}\nformat: "
        + ", ".join(f"{src} ({fmt})" for src, fmt in formats.items())
        + f"\nlabels ({len(dataset.label_map)}): {', '.join(dataset.label_map.labels)}"
    )
    changed = dataset.report.repaired + dataset.report.skipped
    if changed:
        reasons = [r for f in dataset.report.files for r in f.reasons]
        detail += (
            f"\n{dataset.report.repaired} record(s) repaired, {dataset.report.skipped} skipped "
            f"(on_invalid={cfg.on_invalid!r}):\n  " + _listing(reasons)
        )
    no_test = not dataset.split("test")
    if no_test:
        # Promotion scores a search's chosen model on test first, and refuses without one.
        detail += f"\nno test split: `nerkit promote` will refuse a search on this data; {TEST_SPLIT_FIX}"
    status = "warn" if changed or no_test else "ok"
    report.add("data", status, detail, formats=formats, **dataset.report.to_dict())
    return dataset


def _listing(reasons: list[str]) -> str:
    """The reasons one per line; a long list is cut, the JSON report keeps every one."""
    shown = reasons[:_LISTED]
    more = len(reasons) - len(shown)
    return "\n  ".join(shown) + (f"\n  ... and {more} more (--json lists every one)" if more else "")


def _format_of(source: str, given: str) -> str:
    if given != "auto":
        return given
    path = Path(re.sub(r"\[[^\]]*\]$", "", source))  # "dir[validation]" names a DatasetDict split
    try:
        return detect_format(path)
    except (OSError, ValueError):
        return "unknown"
