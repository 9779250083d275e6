"""The ``conll`` reader: one token per line, blank lines between sentences.

Columns are separated by whitespace; the token is the first column and the tag the
last (so 2-column files and the 4-column CoNLL-2003 layout both work).
``-DOCSTART-`` lines are skipped. A record's line is its first token's line, and
each token's own line is kept in ``record.meta["token_lines"]`` so a bad tag is
reported where it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nerkit.errors import DataError
from nerkit.records import Record

DOCSTART = "-DOCSTART-"


def read_conll(path: str | Path) -> Iterator[Record | DataError]:
    """Read a CoNLL-style file (see module doc).

    Raises:
        DataError: for a line with fewer than two columns, or a file that is not UTF-8.
    """
    source = str(path)
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    with open(path, encoding="utf-8") as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                columns = raw.split()
                if not columns or columns[0] == DOCSTART:
                    if tokens:
                        yield _record(tokens, tags, lines, source)
                        tokens, tags, lines = [], [], []
                    continue
                if len(columns) < 2:
                    raise DataError(
                        source,
                        line_no,
                        f"{raw.strip()!r} has one column; expected the token first and the tag last",
                        "separate token and tag with a space or tab, e.g. 'pizza B-FOOD'",
                    )
                tokens.append(columns[0])
                tags.append(columns[-1])
                lines.append(line_no)
        except UnicodeDecodeError as exc:
            raise DataError(source, 0, f"not UTF-8 text ({exc.reason})", "save the file as UTF-8") from None
    if tokens:
        yield _record(tokens, tags, lines, source)


def _record(tokens: list[str], tags: list[str], lines: list[int], source: str) -> Record:
    return Record(
        tokens=tuple(tokens),
        tags=tuple(tags),
        source=source,
        line=lines[0],
        meta={"token_lines": tuple(lines)},
    )
