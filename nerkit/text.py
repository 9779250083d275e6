r"""Split raw text into words with character offsets.

A word is a maximal run of letters, digits and combining marks (so Devanagari
words with their vowel signs stay whole: ``मंगवाओ`` is one word), optionally joined
by an apostrophe or hyphen between such runs (``domino's``, ``wi-fi``), or by a
zero-width joiner or non-joiner (ZWJ/ZWNJ, common inside Devanagari words); every other
visible character is a word of its own (``,``, ``!``). Spaces and zero-width characters
outside a word separate words and are never words themselves (a tokenizer would give
them no subword, and their label would vanish). Offsets index the original string, so
predictions map back to it exactly.

>>> split_words("inayat se 2 pizza, jaldi!")
[('inayat', 0, 6), ('se', 7, 9), ('2', 10, 11), ('pizza', 12, 17), (',', 17, 18), ('jaldi', 19, 24), ('!', 24, 25)]
>>> [w for w, _, _ in split_words("\u200bक्\u200dष\u200b ok")]
['क्\u200dष', 'ok']
"""

from __future__ import annotations

import unicodedata

_JOINERS = "'-\u2019\u200c\u200d"
# Zero-width space, non-joiner, joiner, word joiner, byte-order mark.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Return ``(word, start, end)`` for each word of ``text`` (see module doc)."""
    words: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace() or ch in _ZERO_WIDTH:
            i += 1
            continue
        if not _is_word_char(ch):
            words.append((ch, i, i + 1))
            i += 1
            continue
        start = i
        while i < n:
            if _is_word_char(text[i]):
                i += 1
            elif (
                text[i] in _JOINERS
                and i + 1 < n
                and _is_word_char(text[i + 1])
                and i > start
            ):
                i += 1
            else:
                break
        words.append((text[start:i], start, i))
    return words
