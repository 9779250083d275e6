"""Label statistics over the tokens the loss and metrics actually count.

Counts are over subword positions whose label is not ``IGNORE`` (with the default
alignment, one per word), so they are what the loss sees. The all-``O`` token
accuracy is the do-nothing baseline: a model that has learned nothing scores it,
which is why token accuracy near it says nothing and entity F1 is reported instead.

Example:
    >>> stats = label_stats(aligned, label_map, records)  # doctest: +SKIP
    >>> print(format_label_table(stats))  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nerkit.alignment import IGNORE, AlignedSplit
from nerkit.labels import OUTSIDE, LabelMap
from nerkit.records import Record
from nerkit.text import split_apart


@dataclass(frozen=True)
class LabelStats:
    """Label distribution of one split.

    Attributes:
        counts: Counted tokens per label, in label-map order (zeros included).
        total: Counted (non-IGNORE) tokens.
        num_records: Records in the split.
        records_with_entities: Share (0..1) of records with at least one entity.
        entity_token_share: Share (0..1) of counted tokens that are not ``O``.
        imbalance_ratio: Count of ``O`` / count of the rarest entity label present;
            ``None`` when no entity label is present.
        majority_accuracy: Token accuracy of predicting ``O`` everywhere (0..1).
    """

    counts: dict[str, int]
    total: int
    num_records: int
    records_with_entities: float
    entity_token_share: float
    imbalance_ratio: float | None
    majority_accuracy: float

    def percent(self, label: str) -> float:
        return 100.0 * self.counts.get(label, 0) / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {
            "counts": dict(self.counts),
            "percent": {label: round(self.percent(label), 4) for label in self.counts},
            "total": self.total,
            "num_records": self.num_records,
            "records_with_entities": self.records_with_entities,
            "entity_token_share": self.entity_token_share,
            "imbalance_ratio": self.imbalance_ratio,
            "majority_accuracy": self.majority_accuracy,
        }


def label_stats(aligned: AlignedSplit, label_map: LabelMap, records: Sequence[Record]) -> LabelStats:
    """Count labels over the counted tokens of ``aligned`` (see module doc).

    Args:
        aligned: The split as the model sees it (from :func:`nerkit.alignment.align_records`).
        label_map: Gives the label of each id.
        records: The same split's records (for the share of records with entities).
    """
    by_id = Counter(label for row in aligned.labels for label in row if label != IGNORE)
    counts = {label: by_id.get(i, 0) for i, label in enumerate(label_map.labels)}
    total = sum(counts.values())
    outside = counts.get(OUTSIDE, 0)
    present = [n for label, n in counts.items() if label != OUTSIDE and n > 0]
    return LabelStats(
        counts=counts,
        total=total,
        num_records=len(records),
        records_with_entities=_share(sum(r.has_entities for r in records), len(records)),
        entity_token_share=_share(total - outside, total),
        imbalance_ratio=outside / min(present) if present else None,
        majority_accuracy=_share(outside, total),
    )


def types_without_tokens(counts: Mapping[str, int], label_map: LabelMap) -> list[str]:
    """Entity types of ``label_map`` with no counted token in ``counts`` ({label: count}):
    in a train split, types the model cannot learn but that dev/test F1 still scores."""
    seen = {etype for etype, count in type_tokens(counts).items() if count}
    return sorted(set(label_map.types) - seen)


#: A type with at most this many tokens in all splits, named like another, looks like a typo.
RARE_TYPE_TOKENS = 2
#: How alike two type names must be (difflib's ratio) for the rarer to look like a typo.
LOOK_ALIKE_RATIO = 0.75


def type_tokens(counts: Mapping[str, int]) -> dict[str, int]:
    """Tokens per entity type (its B- and I- labels together) in ``counts`` ({label: count})."""
    out: dict[str, int] = {}
    for label, count in counts.items():
        if label != OUTSIDE:
            out[label[2:]] = out.get(label[2:], 0) + count
    return out


def look_alike_types(counts_by_split: Mapping[str, Mapping[str, int]], label_map: LabelMap) -> dict[str, str]:
    """``{type: the type it looks like a typo of}``: a type with at most RARE_TYPE_TOKENS
    tokens in all splits together whose name is close to a more frequent type's (``FOD``
    beside ``FOOD``), and at any count a type that differs from another only in case
    (``food`` beside ``FOOD``: two annotators' spellings of one type, split in two).
    A misspelt tag adds a type the model must learn from one example."""
    import difflib

    total: dict[str, int] = dict.fromkeys(label_map.types, 0)
    for counts in counts_by_split.values():
        for etype, n in type_tokens(counts).items():
            total[etype] = total.get(etype, 0) + n
    out = {}
    for etype, n in sorted(total.items()):
        # Case-only twins (difflib compares case-sensitively: 'food' is nothing like 'FOOD');
        # each points at the most frequent spelling, ties at the first in sorted order.
        twins = [t for t in total if t.casefold() == etype.casefold()]
        usual = min(twins, key=lambda t: (-total[t], t))
        if usual != etype:
            out[etype] = usual
            continue
        if n > RARE_TYPE_TOKENS:
            continue
        others = [t for t in total if t != etype and total[t] > n]
        match = difflib.get_close_matches(etype, others, n=1, cutoff=LOOK_ALIKE_RATIO)
        if match:
            out[etype] = match[0]
    return out


def look_alike_note(typos: Mapping[str, str], totals: Mapping[str, int], records: Sequence[Record]) -> str:
    """The doctor's and training's one sentence on :func:`look_alike_types`' finds, each
    with its token count and where it is first used (``file:line``), so it can be found."""
    first: dict[str, str] = {}
    for record in records:
        for tag in record.tags:
            if tag != OUTSIDE and tag[2:] in typos and tag[2:] not in first:
                first[tag[2:]] = f"{record.source}:{record.line}"
    return ("entity types that look like a misspelt tag (a type of its own for the model to learn): "
            + "; ".join(f"{t} ({totals.get(t, 0)} token(s), first at {first.get(t, '?')}): did you mean {m}?"
                        for t, m in typos.items()))


def split_apart_note(records: Sequence[Record]) -> str | None:
    """The doctor's and training's sentence on entity words of pre-split data (CoNLL,
    jsonl-tokens, Parquet: no text) that ``nerkit predict`` would split into pieces by
    default (``3.5``, ``AT&T``, ``New York`` as one word): a model scores them whole on
    test and returns them in pieces from raw text. None where there is none."""
    count, first = 0, None
    for record in records:
        if record.text is not None:
            continue  # the readers split its text as predict does
        for i, (word, tag) in enumerate(zip(record.tokens, record.tags)):
            if tag != OUTSIDE and (pieces := split_apart(word)) is not None:
                count += 1
                if first is None:
                    first = f"{word!r} at {record.source}:{record.line_of(i)} → {' '.join(map(repr, pieces))}"
    if not count:
        return None
    return (f"{count} entity word(s) of the pre-split data are one word there but several to nerkit predict's "
            f"default split (e.g. {first}), so from raw text their entities would come back in pieces; give "
            "predict text split into words by spaces, as the data is, with `nerkit predict --split spaces`")


def format_label_table(stats: LabelStats) -> str:
    """A plain-text table: label, count and % per label, then the summary figures."""
    width = max([len("label"), *(len(label) for label in stats.counts)])
    lines = [f"{'label':<{width}}  {'count':>9}  {'%':>7}"]
    for label, count in stats.counts.items():
        lines.append(f"{label:<{width}}  {count:>9,}  {stats.percent(label):>6.2f}%")
    ratio = (f"{stats.imbalance_ratio:.1f}" if stats.imbalance_ratio
             else "n/a (no entities)" if stats.imbalance_ratio is None else "n/a (no 'O' tokens)")
    lines += [
        f"{'total':<{width}}  {stats.total:>9,}",
        f"records with entities: {100 * stats.records_with_entities:.1f}% of {stats.num_records:,}",
        f"entity tokens: {100 * stats.entity_token_share:.1f}%",
        f"imbalance (O / rarest entity label): {ratio}",
        f"all-O baseline token accuracy: {100 * stats.majority_accuracy:.1f}%",
    ]
    return "\n".join(lines)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
