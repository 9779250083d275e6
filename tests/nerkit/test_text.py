"""Word splitting with offsets (nerkit.text), the words predictions and span data map to."""

from __future__ import annotations

from nerkit.text import split_apart, split_spaces, split_words


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


def test_every_invisible_character_separates_words_and_is_never_one():
    # A bidi mark (U+200E) at the start of a span file's text became a word of its own,
    # which the tokenizer dropped with its label; so did private-use characters and U+FFFD.
    assert split_words("\u200eDominos se\ue000 2 \ufffd pizza") == [
        ("Dominos", 1, 8), ("se", 9, 11), ("2", 13, 14), ("pizza", 17, 22)]


def test_an_emoji_is_one_word_with_what_belongs_to_it():
    # U+FE0F after ☕ became a word of its own that the tokenizer dropped, so a span over
    # "☕️" lost its I- tag and was refused; "👨‍🍳" was split into two entities in predictions.
    text = "2 ☕️ aur 👨\u200d🍳 🇮🇳🇮🇳 👍🏽!"
    words = split_words(text)
    assert [w for w, _, _ in words] == ["2", "☕️", "aur", "👨\u200d🍳", "🇮🇳", "🇮🇳", "👍🏽", "!"]
    assert all(text[s:e] == w for w, s, e in words)


def test_split_spaces_keeps_words_whole_and_drops_invisible_runs():
    text = "order\t3.5 kg\u200b \u200b from  AT&T"
    assert split_spaces(text) == [("order", 0, 5), ("3.5", 6, 9), ("kg\u200b", 10, 13), ("from", 16, 20),
                                  ("AT&T", 22, 26)]
    assert all(text[s:e] == w for w, s, e in split_spaces(text))


def test_split_apart_names_the_pieces_of_a_word_predict_would_split():
    assert split_apart("3.5") == ["3", ".", "5"] and split_apart("New York") == ["New", "York"]
    assert split_apart("domino's") is None and split_apart("pizza") is None
    assert split_apart("pizza\u200b") is None  # one word still, its invisible character dropped


def test_chinese_and_japanese_characters_are_words_of_their_own():
    # Written without spaces, a run was one word: a span inside it could not be labelled,
    # and the reader's fix proposed the whole sentence as the entity.
    assert [w for w, _, _ in split_words("我想要两个披萨")] == list("我想要两个披萨")
    assert split_words("iPhone手机 カレー") == [("iPhone", 0, 6), ("手", 6, 7), ("机", 7, 8), ("カ", 9, 10),
                                            ("レ", 10, 11), ("ー", 11, 12)]
    assert [w for w, _, _ in split_words("wi-fi a-手")] == ["wi-fi", "a", "-", "手"]
