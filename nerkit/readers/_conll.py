"""The ``conll`` reader: one token per line, blank lines between sentences.

Columns are separated by tabs when a line has one (so a token may hold spaces:
``New York<TAB>B-LOC``), otherwise by runs of spaces (never by other Unicode spaces,
so ``10<NBSP>km`` stays one token). The token is the first column and the tag the last
(so 2-column files and the 4-column CoNLL-2003 layout both work), and every token
line has as many columns as the first: a row missing its tag column would otherwise
read another column as its tag. ``-DOCSTART-`` lines are skipped. A record's line is
its first token's line, and each token's own line is kept in
``record.meta["token_lines"]`` so a bad tag is reported where it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from nerkit.errors import DataError, not_utf8
from nerkit.labels import is_label_id
from nerkit.records import Record
from nerkit.text import is_visible

DOCSTART = "-DOCSTART-"
_SPACES = re.compile(r" +")
# A spreadsheet export's first row (`word<TAB>tag`): read as a token it would join the
# first sentence, and skipping that "invalid" record would drop the real sentence with it.
_HEADER_TOKENS = {"token", "tokens", "word", "words", "form", "text"}
_HEADER_TAGS = {"tag", "tags", "label", "labels", "ner", "ner_tag", "ner_tags", "iob", "bio", "entity"}


def _json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def split_columns(line: str) -> list[str]:
    r"""The columns of one CoNLL line (see module doc); ``[]`` for a blank line.

    >>> split_columns("New York\tB-LOC\n"), split_columns("pizza  NN  B-FOOD"), split_columns("pizza B-FOOD\t")
    (['New York', 'B-LOC'], ['pizza', 'NN', 'B-FOOD'], ['pizza', 'B-FOOD'])
    """
    # A byte-order mark starts a line where files were concatenated (`cat a.conll b.conll`).
    text = line.rstrip("\r\n").lstrip("\ufeff").strip(" \t")
    if not text or text.isspace():  # only NBSP or other spaces: it looks blank, so it is
        return []
    if "\t" in text:
        return [c.strip(" ") for c in text.split("\t")]
    return _SPACES.split(text)


def read_conll(path: str | Path, label_names: Sequence[str] | None = None) -> Iterator[Record | DataError]:
    """Read a CoNLL-style file (see module doc).

    Yields a DataError in place of a record with an entity token a tokenizer would drop
    (``nerkit.text.is_visible``: its tag would vanish), so ``on_invalid`` applies to it;
    such a token tagged ``O`` loses nothing and is read.
    With ``label_names``, tags written as integer ids (``3``) are those labels.

    Raises:
        DataError: for a line with fewer than two columns, a header row (``word<TAB>tag``)
            first, or a file that is not UTF-8.
    """
    source = str(path)
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    bad: DataError | None = None  # the current record's first invisible token
    width: tuple[int, int] | None = None  # (columns, line) of the first token line
    # utf-8-sig: a byte-order mark (Windows editors write one) is not part of line 1.
    with open(path, encoding="utf-8-sig") as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                columns = split_columns(raw)
                if not columns or columns[0] == DOCSTART:
                    if tokens:
                        yield bad or _record(tokens, tags, lines, source, label_names)
                        tokens, tags, lines, bad = [], [], [], None
                    continue
                if len(columns) < 2:
                    raise DataError(
                        source,
                        line_no,
                        f"{raw.strip()!r} has one column; expected the token first and the tag last",
                        "separate token and tag with a space or tab, e.g. 'pizza B-FOOD'",
                    )
                if width is None:
                    if raw.lstrip().startswith("{") and _json_object(raw):
                        # A .txt holding JSON Lines read as CoNLL: its tags were '"B-FOOD"]}'.
                        raise DataError(source, line_no, "the file holds JSON Lines, not CoNLL",
                                        "name it .jsonl, or pass --format jsonl-tokens (tokens and tags) or "
                                        "--format jsonl-spans (text and entities)")
                    if columns[0].lower() in _HEADER_TOKENS and columns[-1].lower() in _HEADER_TAGS:
                        raise DataError(source, line_no, f"{raw.strip()!r} looks like a header row, not a token "
                                        "and its tag", "remove the header line (CoNLL files have none)")
                    width = (len(columns), line_no)
                elif len(columns) != width[0]:
                    raise DataError(
                        source,
                        line_no,
                        f"{raw.strip()!r} has {len(columns)} columns, but line {width[1]} has {width[0]}",
                        "give every token line the same columns, the tag last (a token holding spaces "
                        "needs tab-separated columns)",
                    )
                if bad is None and _named(columns[-1], label_names) != "O" and not is_visible(columns[0]):
                    bad = DataError(
                        source, line_no, f"the token {columns[0]!r} has no visible character, so its tag "
                        f"{columns[-1]!r} would be lost", "remove the line, or join the token to a neighbouring one",
                    )
                tokens.append(columns[0])
                tags.append(columns[-1])
                lines.append(line_no)
        except UnicodeDecodeError:
            raise not_utf8(path) from None
    if tokens:
        yield bad or _record(tokens, tags, lines, source, label_names)
    elif width is None:
        # As an empty JSONL file is: a split file with nothing in it is a mistake to name.
        raise DataError(source, 0, "the file has no records",
                        "add records (a token and its tag per line, a blank line between sentences), or remove the file")


def _named(tag: str, label_names: Sequence[str] | None) -> str:
    """``tag``, or the label it is the id of (``"0"`` → ``"O"``) where ids have names."""
    if label_names is not None and is_label_id(tag) and int(tag) < len(label_names):
        return label_names[int(tag)]
    return tag


def _record(tokens: list[str], tags: list[str], lines: list[int], source: str,
            label_names: Sequence[str] | None) -> Record | DataError:
    if label_names is not None:
        names = list(label_names)
        for i, tag in enumerate(tags):
            if is_label_id(tag):  # an id ("3"), not a name
                if int(tag) >= len(names):
                    return DataError(source, lines[i], f"tag {tag} is not an id of the {len(names)} labels {names}",
                                     f"use ids 0..{len(names) - 1}")
                tags[i] = names[int(tag)]
    return Record(
        tokens=tuple(tokens),
        tags=tuple(tags),
        source=source,
        line=lines[0],
        meta={"token_lines": tuple(lines)},
    )
