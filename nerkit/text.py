"""Split raw text into words with character offsets.

A word is a maximal run of letters, digits and combining marks (so Devanagari
words with their vowel signs stay whole: ``मंगवाओ`` is one word), optionally joined
by an apostrophe or hyphen between such runs (``domino's``, ``wi-fi``); every other
non-space character is a word of its own (``,``, ``!``). Offsets index the original
string, so predictions map back to it exactly.

>>> split_words("inayat se 2 pizza, jaldi!")
[('inayat', 0, 6), ('se', 7, 9), ('2', 10, 11), ('pizza', 12, 17), (',', 17, 18), ('jaldi', 19, 24), ('!', 24, 25)]
"""

from __future__ import annotations

import unicodedata

_JOINERS = "'-\u2019"


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Return ``(word, start, end)`` for each word of ``text`` (see module doc)."""
    words: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
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
