"""The label map: one source of truth for label order, ids and entity types.

Order is ``O`` first, then ``B-X``, ``I-X`` for each entity type ``X`` in sorted
order, so the same set of types always gives the same ids.

>>> LabelMap.from_types(["LOC", "FOOD"]).labels
('O', 'B-FOOD', 'I-FOOD', 'B-LOC', 'I-LOC')
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nerkit.text import is_hidden_in_name

OUTSIDE = "O"
PREFIXES = ("B", "I")


def is_label_id(tag: str) -> bool:
    """Whether ``tag`` is an integer label id written as text (``"3"``, not ``"²"``)."""
    return tag.isascii() and tag.isdigit()


def split_tag(tag: str) -> tuple[str, str | None]:
    """Split an IOB2 tag into ``(prefix, type)``; ``("O", None)`` for ``O``.

    Raises:
        ValueError: for a tag that is neither ``O`` nor ``B-X``/``I-X``.
    """
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, sep, etype = tag.partition("-")
    if not sep or prefix not in PREFIXES or not etype:
        raise ValueError(
            f"tag {tag!r} is not IOB2: allowed are 'O', 'B-<TYPE>' and 'I-<TYPE>'"
        )
    if any(ch.isspace() for ch in etype):
        # 'B-FOOD ' would otherwise be an entity type of its own, beside 'FOOD'.
        raise ValueError(f"tag {tag!r} has whitespace in its type {etype!r}: types are single words like 'FOOD'")
    if any(is_hidden_in_name(ch) for ch in etype):
        # 'FOOD\u200b' prints as 'FOOD' and would be a type of its own beside it.
        raise ValueError(f"tag {tag!r} has an invisible character (a control, zero-width or bidi mark) in its type "
                         f"{etype!r}: remove it; types are single visible words like 'FOOD'")
    if unicodedata.normalize("NFC", etype) != etype:
        # 'DRINKÉ' written with a combining accent prints as the composed one, and would be
        # a type of its own beside it.
        raise ValueError(f"tag {tag!r} has its type {etype!r} in decomposed Unicode (NFD); write it composed, "
                         f"{unicodedata.normalize('NFC', etype)!r} (NFC), as the same type is written elsewhere")
    return prefix, etype



@dataclass(frozen=True)
class LabelMap:
    """Ordered labels with their ids. Build it with :meth:`from_types` or :meth:`from_tags`."""

    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.labels or self.labels[0] != OUTSIDE:
            raise ValueError(f"a label map starts with 'O'; got {list(self.labels)[:3]}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"duplicate labels in {list(self.labels)}")

    @classmethod
    def from_types(cls, types: Iterable[str]) -> "LabelMap":
        labels = [OUTSIDE]
        for etype in sorted(set(types)):
            labels += [f"B-{etype}", f"I-{etype}"]
        return cls(tuple(labels))

    @classmethod
    def from_tags(cls, tags: Iterable[str]) -> "LabelMap":
        """The map covering every entity type seen in ``tags``."""
        types = {split_tag(tag)[1] for tag in tags} - {None}
        return cls.from_types(types)  # type: ignore[arg-type]

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(label[2:] for label in self.labels if label.startswith("B-"))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def o_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, tags: Iterable[str]) -> list[int]:
        table = self.label2id
        out = []
        for tag in tags:
            if tag not in table:
                raise ValueError(f"label {tag!r} is not in the label map {list(self.labels)}")
            out.append(table[tag])
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.labels[i] for i in ids]


def labels_from_config(config, name: str = "the model") -> list[str]:
    """A Hugging Face config's labels in id order (``id2label``; its keys may be str).

    Raises:
        ValueError: the ids are not exactly 0..n-1 (a hand-edited or damaged config),
            naming ``name`` (what errors call the model, e.g. its directory).
    """
    id2label: Mapping = getattr(config, "id2label", None) or {}
    try:
        by_id = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{name}: its config's id2label has keys {sorted(map(str, id2label))}, but they must "
                         "be integer ids 0..n-1; fix id2label in its config.json") from None
    missing = sorted(set(range(len(by_id))) - set(by_id))
    if missing:
        raise ValueError(f"{name}: its config's id2label has ids {sorted(by_id)}, but they must be 0.."
                         f"{len(by_id) - 1} (missing {missing}); fix id2label in its config.json")
    return [by_id[i] for i in range(len(by_id))]
