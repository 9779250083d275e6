r"""Split raw text into words with character offsets.

A word is a maximal run of letters, digits and combining marks (so Devanagari
words with their vowel signs stay whole: ``मंगवाओ`` is one word), optionally joined
by an apostrophe or hyphen between such runs (``domino's``, ``wi-fi``), or by a
zero-width joiner or non-joiner (ZWJ/ZWNJ, common inside Devanagari words); every other
visible character is a word of its own (``,``, ``!``), as is each Chinese character and
Japanese kana (scripts written without spaces: character-level, as their NER corpora
label), a symbol with what belongs to it
(an emoji with its variation selector, skin tone or ZWJ-joined parts; a flag's pair). Spaces and zero-width characters
outside a word, and every other invisible character (:func:`is_invisible`: controls, bidi
marks, private use), separate words and are never words themselves (a tokenizer would give
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
# What BERT-style tokenizers delete besides whitespace: the replacement character.
_DELETED = "\ufffd"


# Control, format (zero-width and bidi marks), private use, surrogate. Not "Cn"
# (unassigned): Python's tables lag the tokenizers', and a newer emoji is [UNK], a subword.
_DELETED_CATEGORIES = ("Cc", "Cf", "Co", "Cs")


def is_invisible(ch: str) -> bool:
    """Whether a tokenizer gives ``ch`` no subword of its own: whitespace, control and
    format characters (zero-width and bidi marks), private use, and the replacement
    character U+FFFD, which BERT-style tokenizers delete.

    >>> [is_invisible(c) for c in " \u200e\ue000a,\U0001fa77"]
    [True, True, True, False, False, False]
    """
    return ch.isspace() or unicodedata.category(ch) in _DELETED_CATEGORIES or ch in _DELETED


#: Invisible characters that belong inside words (ZWNJ, ZWJ: Persian and Devanagari
#: spelling; removing one changes how the word renders).
WORD_JOINERS = "\u200c\u200d"


def is_hidden_in_name(ch: str) -> bool:
    """Whether ``ch`` in a name (an entity type) prints as nothing and means nothing: an
    invisible character (:func:`is_invisible`) other than the word joiners."""
    return is_invisible(ch) and ch not in WORD_JOINERS


def is_visible(token: str) -> bool:
    """Whether ``token`` has a character a tokenizer keeps (see :func:`is_invisible`)."""
    return not all(is_invisible(ch) for ch in token)


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


#: Scripts written without spaces between words, where a run of letters is a sentence:
#: Chinese characters, and Japanese kana. Each character is a word (character-level NER,
#: as Chinese NER corpora label), so an entity can start and end inside such a run.
_CHARACTER_SCRIPTS = (("\u3040", "\u30ff"), ("\u31f0", "\u31ff"), ("\u3400", "\u4dbf"), ("\u4e00", "\u9fff"),
                      ("\uf900", "\ufaff"), ("\uff66", "\uff9f"), ("\U00020000", "\U0003134f"))


def _is_character_word(ch: str) -> bool:
    return any(low <= ch <= high for low, high in _CHARACTER_SCRIPTS)


def _is_regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _emoji_part(ch: str) -> bool:
    """What continues an emoji: variation selectors and other combining marks (U+FE0F,
    the keycap U+20E3), skin-tone modifiers, and the tag characters of subdivision flags."""
    return (unicodedata.category(ch) in ("Mn", "Me") or "\U0001f3fb" <= ch <= "\U0001f3ff"
            or "\U000e0020" <= ch <= "\U000e007f")


def _symbol_end(text: str, i: int) -> int:
    """End of the one-symbol word at ``i``: a symbol with what belongs to it, so an emoji
    is one word (``☕️`` with its U+FE0F, ``👨‍🍳`` joined by ZWJ, a flag's pair of regional
    indicators) and its label is never cut or lost to a mark the tokenizer drops."""
    n, start = len(text), i
    i += 1
    if unicodedata.category(text[start])[0] != "S":
        return i  # punctuation stands alone
    while i < n:
        if _emoji_part(text[i]):
            i += 1
        elif text[i] == "\u200d" and i + 1 < n and unicodedata.category(text[i + 1])[0] == "S":
            i += 2
        elif i == start + 1 and _is_regional(text[start]) and _is_regional(text[i]):
            i += 1
        else:
            break
    return i


#: How `nerkit predict` splits a text into words: ``text`` by :func:`split_words` (as
#: the readers split a record's text), ``spaces`` at whitespace only (text split into
#: words beforehand, as pre-tokenised data is: ``3.5``, ``AT&T`` stay one word).
WORD_SPLITS = ("text", "spaces")


def split_spaces(text: str) -> list[tuple[str, int, int]]:
    """``(word, start, end)`` for each run of non-whitespace in ``text``; a run of only
    invisible characters is no word (a tokenizer gives it no subword).

    >>> split_spaces("order 3.5 kg from AT&T")
    [('order', 0, 5), ('3.5', 6, 9), ('kg', 10, 12), ('from', 13, 17), ('AT&T', 18, 22)]
    """
    words, start = [], None
    for i, ch in enumerate(text + " "):
        if ch.isspace():
            if start is not None and is_visible(text[start:i]):
                words.append((text[start:i], start, i))
            start = None
        elif start is None:
            start = i
    return words


def splitter(mode: str):
    """The word splitter of a :data:`WORD_SPLITS` mode."""
    if mode not in WORD_SPLITS:
        raise ValueError(f"split is {mode!r}, but must be one of {list(WORD_SPLITS)}")
    return split_words if mode == "text" else split_spaces


def split_apart(word: str) -> list[str] | None:
    """The pieces :func:`split_words` makes of a pre-split data word, or None where it
    keeps it one word (``3.5`` → ``['3', '.', '5']``; ``pizza\u200b`` stays one, its
    invisible character dropped)."""
    pieces = [w for w, _, _ in split_words(word)]
    return pieces if len(pieces) > 1 else None


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Return ``(word, start, end)`` for each word of ``text`` (see module doc)."""
    words: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if is_invisible(ch):
            i += 1
            continue
        if not _is_word_char(ch):
            end = _symbol_end(text, i)
            words.append((text[i:end], i, end))
            i = end
            continue
        start = i
        if _is_character_word(ch):
            i += 1
            while i < n and unicodedata.category(text[i]) in ("Mn", "Me"):  # its combining marks
                i += 1
            words.append((text[start:i], start, i))
            continue
        while i < n:
            if _is_character_word(text[i]):
                break
            if _is_word_char(text[i]):
                i += 1
            elif (
                text[i] in _JOINERS
                and i + 1 < n
                and _is_word_char(text[i + 1])
                and not _is_character_word(text[i + 1])
                and i > start
            ):
                i += 1
            else:
                break
        words.append((text[start:i], start, i))
    return words
