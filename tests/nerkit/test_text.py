"""Word splitting with offsets (nerkit.text), the words predictions and span data map to."""

from __future__ import annotations

from nerkit.text import split_words


def test_words_punctuation_and_offsets():
    text = "inayat se 2 pizza, jaldi!"
    words = split_words(text)
    assert [w for w, _, _ in words] == ["inayat", "se", "2", "pizza", ",", "jaldi", "!"]
    assert all(text[s:e] == w for w, s, e in words)


def test_zero_width_joiners_stay_inside_a_word_and_never_stand_alone():
    # ZWJ/ZWNJ inside Devanagari words keep the word whole; zero-width characters
    # elsewhere separate words and are not words themselves (they would get no subword,
    # and a label on them would vanish).
    text = "\u200bक्\u200dष \u200c pizza\u200bbhejo\ufeff"
    words = split_words(text)
    assert [w for w, _, _ in words] == ["क्\u200dष", "pizza", "bhejo"]
    assert all(text[s:e] == w for w, s, e in words)
