"""IOB2 validation and repair, and the ``on_invalid`` policy that applies them.

Every reader hands its records (or the per-record :class:`DataError` it found) to
:func:`apply_policy`, so one function decides what happens to bad data:

* ``"error"`` (default): raise the first problem, naming file, line, tag and fix.
* ``"repair"``: turn an ``I-X`` that starts an entity into ``B-X``. Malformed tags
  and span errors cannot be repaired and stay fatal.
* ``"skip"``: drop any record with a problem.

Repairs and skips are counted in a :class:`FileReport`, so nothing is ever
dropped or changed silently.

>>> [str(p) for p in find_problems(["B-LOC", "I-FOOD", "O"], ["to", "pizza", "now"])]
["tags[1] = 'I-FOOD' (on 'pizza') follows 'B-LOC' with no 'B-FOOD'"]
>>> repair_tags(["O", "I-FOOD", "I-FOOD"])
(('O', 'B-FOOD', 'I-FOOD'), 1)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from nerkit.errors import DataError
from nerkit.labels import OUTSIDE, is_label_id, split_tag
from nerkit.records import Record
from nerkit.text import is_hidden_in_name

ON_INVALID = ("error", "repair", "skip")


@dataclass(frozen=True)
class TagProblem:
    """One bad tag in a sequence.

    Attributes:
        index: 0-based position of the tag.
        tag: The tag as given.
        word: The word it labels.
        kind: ``"malformed"`` (not ``O``/``B-X``/``I-X``) or ``"orphan"`` (an
            ``I-X`` with no ``B-X``/``I-X`` before it).
        previous: The tag before it (``"O"`` at the start of the sequence).
    """

    index: int
    tag: str
    word: str
    kind: str
    previous: str = OUTSIDE

    @property
    def repaired(self) -> str | None:
        """The tag ``repair`` would write, or ``None`` when it cannot repair this."""
        return "B-" + self.tag[2:] if self.kind == "orphan" else None

    def __str__(self) -> str:
        where = f"tags[{self.index}] = {self.tag!r} (on {self.word!r})"
        if self.kind == "malformed":
            return f"{where} is not IOB2"
        return f"{where} follows {self.previous!r} with no {self.repaired!r}"

    def fix(self) -> str:
        if self.kind == "malformed" and self.tag[:2] in ("S-", "E-", "L-", "U-"):
            # Dropping such records (skip) would drop every entity of a BIOES file.
            return (
                f"tags[{self.index}] ({self.tag!r}) is BIOES/BILOU; nerkit reads IOB2: convert the file "
                "(S-/U-X → B-X, E-/L-X → I-X; B-, I- and O stay)"
            )
        if self.kind == "malformed" and is_label_id(self.tag):
            return (f"tags[{self.index}] ({self.tag!r}) looks like a label id: give the label of each id in "
                    "id order with --label-names O,B-FOOD,I-FOOD (DataConfig.label_names), or write tags as names")
        meant = _meant(self.tag) if self.kind == "malformed" else None
        if meant is not None and meant == visible_form(self.tag):
            # 'B-FOOD\u200b', or an accent written decomposed: it prints as another tag.
            return (f"change tags[{self.index}] ({self.tag!r} on {self.word!r}) to {meant!r}: an invisible "
                    "character or a decomposed accent (NFD) makes it another type that prints the same")
        if meant is not None:  # 'b-food', 'B-FOOD ', 'B_FOOD': the type is there, the spelling is off
            return (f"change tags[{self.index}] ({self.tag!r} on {self.word!r}) to {meant!r}, as IOB2 spells it "
                    "(B- or I-, a hyphen, the type)")
        if self.kind == "malformed":
            return (
                f"change tags[{self.index}] ({self.tag!r} on {self.word!r}) to 'O', "
                "'B-<TYPE>' or 'I-<TYPE>' (repair cannot guess the type), "
                "or pass --on-invalid skip"
            )
        return (
            f"change tags[{self.index}] ({self.tag!r} on {self.word!r}) to "
            f"{self.repaired!r}, or pass --on-invalid repair"
        )


def visible_form(tag: str) -> str:
    """``tag`` as it prints: without invisible characters (spaces are visible enough: a
    trailing one gets its own fix), accents composed (NFC)."""
    return unicodedata.normalize("NFC", "".join(ch for ch in tag if ch.isspace() or not is_hidden_in_name(ch)))


def _meant(tag: str) -> str | None:
    """The IOB2 tag a malformed ``tag`` is a misspelling of (``'b-food'`` → ``'B-food'``,
    ``'B-FOOD '`` → ``'B-FOOD'``, ``'B_FOOD'`` → ``'B-FOOD'``), or ``None``."""
    text = visible_form(tag).strip()
    if text in ("o", "O"):
        return "O"
    if len(text) > 2 and text[0] in "bBiI" and text[1] in "-_":
        candidate = f"{text[0].upper()}-{text[2:]}"
        try:
            split_tag(candidate)
        except ValueError:
            return None
        return candidate
    return None


def find_problems(tags: Sequence[str], tokens: Sequence[str]) -> list[TagProblem]:
    """All malformed tags and orphan ``I-X`` tags in one sequence, in order."""
    problems = []
    previous = OUTSIDE
    for i, tag in enumerate(tags):
        word = tokens[i] if i < len(tokens) else ""
        try:
            prefix, etype = split_tag(tag) if isinstance(tag, str) else ("", None)
        except ValueError:
            prefix, etype = "", None
        if not prefix:
            problems.append(TagProblem(i, str(tag), word, "malformed", previous))
        elif prefix == "I" and previous[2:] != etype:
            # previous is O, B-Y/I-Y of another type, or itself malformed.
            problems.append(TagProblem(i, tag, word, "orphan", previous))
        previous = tag if isinstance(tag, str) else str(tag)
    return problems


def repair_tags(tags: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """Turn every ``I-X`` that starts an entity into ``B-X``.

    Returns:
        The repaired tags and how many were changed.

    Raises:
        ValueError: for a malformed tag, which cannot be repaired.
    """
    out: list[str] = []
    changed = 0
    for tag in tags:
        prefix, etype = split_tag(tag)
        previous = out[-1] if out else OUTSIDE
        if prefix == "I" and previous[2:] != etype:
            tag = f"B-{etype}"
            changed += 1
        out.append(tag)
    return tuple(out), changed


@dataclass
class FileReport:
    """What loading one file did: records read, repaired and skipped, with reasons."""

    source: str
    read: int = 0
    repaired: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)

    def note(self, reason: str) -> None:
        # Every reason is kept (the doctor promises every bad record); displays cut the list.
        self.reasons.append(reason)

    @property
    def kept(self) -> int:
        return self.read - self.skipped

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "read": self.read,
            "kept": self.kept,
            "repaired": self.repaired,
            "skipped": self.skipped,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class LoadReport:
    """The per-file reports of one load, in the order the files were read."""

    files: tuple[FileReport, ...] = ()

    @property
    def repaired(self) -> int:
        return sum(f.repaired for f in self.files)

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.files)

    def to_dict(self) -> dict:
        return {
            "repaired": self.repaired,
            "skipped": self.skipped,
            "files": [f.to_dict() for f in self.files],
        }


def check_policy(on_invalid: str) -> None:
    """Raise ValueError unless ``on_invalid`` is one of :data:`ON_INVALID`."""
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid is {on_invalid!r}, but must be one of {list(ON_INVALID)}")


def apply_policy(
    items: Iterable[Record | DataError], source: str, on_invalid: str = "error"
) -> tuple[list[Record], FileReport]:
    """Validate each record's tags and apply ``on_invalid`` to every problem.

    Args:
        items: A reader's output: records, or the :class:`DataError` of a record the
            reader could not build (a bad span, an unknown label).
        source: The file the items came from (for the report).
        on_invalid: ``"error"``, ``"repair"`` or ``"skip"`` (see module doc).

    Returns:
        The kept (possibly repaired) records and the file's report.

    Raises:
        DataError: for the first problem the policy does not absorb.
    """
    check_policy(on_invalid)
    report = FileReport(source)
    kept: list[Record] = []
    for item in items:
        report.read += 1
        if isinstance(item, DataError):
            if on_invalid == "error":
                raise item
            if on_invalid == "repair":
                raise DataError(
                    item.source,
                    item.line,
                    item.problem + " (--on-invalid repair only fixes I- tags that start "
                    "an entity; it cannot fix this)",
                    item.fix or "fix the record, or pass --on-invalid skip",
                )
            report.skipped += 1
            report.note(str(item))
            continue
        record = _apply_to_record(item, on_invalid, report)
        if record is not None:
            kept.append(record)
    return kept, report


def _apply_to_record(record: Record, on_invalid: str, report: FileReport) -> Record | None:
    problems = find_problems(record.tags, record.tokens)
    if not problems:
        return record
    first = problems[0]
    line = record.line_of(first.index)
    if on_invalid == "skip":
        report.skipped += 1
        report.note(f"{record.source}:{line}: {first} (record skipped)")
        return None
    malformed = [p for p in problems if p.kind == "malformed"]
    if on_invalid == "error" or malformed:
        bad = first if on_invalid == "error" else malformed[0]
        raise DataError(record.source, record.line_of(bad.index), str(bad), bad.fix())
    tags, changed = repair_tags(record.tags)
    report.repaired += 1
    report.note(f"{record.source}:{line}: {first}; repaired {changed} tag(s)")
    return replace(record, tags=tags)


