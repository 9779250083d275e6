"""The one in-memory form every reader produces: a word-tokenised, BIO-tagged record."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Record:
    """One sentence/utterance.

    Attributes:
        tokens: Words (not subwords).
        tags: One IOB2 tag per word (``O``, ``B-X``, ``I-X``).
        text: The original string when the source had one (text + character spans);
            ``None`` for pre-tokenised sources.
        offsets: ``(start, end)`` character offsets of each word in ``text``, so
            predictions map back to the original string; ``None`` without ``text``.
        source: File (or dataset path) the record came from.
        line: 1-based line number (or record number) in ``source``.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    text: str | None = None
    offsets: tuple[tuple[int, int], ...] | None = None
    source: str = ""
    line: int = 0
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def has_entities(self) -> bool:
        return any(tag != "O" for tag in self.tags)

    def line_of(self, index: int) -> int:
        """The line of word ``index``: its own where the reader kept it (CoNLL, one word
        per line, in ``meta["token_lines"]``), else the record's."""
        token_lines = self.meta.get("token_lines")
        if token_lines and index < len(token_lines):
            return token_lines[index]
        return self.line
