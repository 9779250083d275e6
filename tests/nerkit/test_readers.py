"""Tests for nerkit.readers: every format, auto-detection and every reader error."""

from __future__ import annotations

import json

import pytest

from nerkit.errors import DataError
from nerkit.readers import detect_format, read_records


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def span_row(text, *spans):
    return {"text": text, "entities": [{"start": s, "end": e, "label": lab} for s, e, lab in spans]}


def read_error(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_records(path, **kwargs)
    return str(info.value)


def test_spans_become_iob2_tags_with_offsets(tmp_path):
    # A text + spans line becomes words, IOB2 tags and the words' character offsets.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("2 garlic bread, jaldi!", (2, 14, "FOOD"))])
    (record,), report = read_records(path)
    assert record.tokens == ("2", "garlic", "bread", ",", "jaldi", "!")
    assert record.tags == ("O", "B-FOOD", "I-FOOD", "O", "O", "O")
    assert record.offsets[1] == (2, 8) and record.text == "2 garlic bread, jaldi!"
    assert (record.source, record.line, report.read) == (str(path), 1, 1)


def test_a_span_inside_chinese_text_is_labelled(tmp_path):
    # Chinese has no spaces between words: the span was refused as cutting the sentence-long
    # "word", and the fix proposed labelling the whole sentence.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("我想要两个披萨", (5, 7, "FOOD"))])
    (record,), _ = read_records(path, format="jsonl-spans")
    assert record.tags == ("O", "O", "O", "O", "O", "B-FOOD", "I-FOOD") and record.offsets[5] == (5, 6)


def test_span_with_surrounding_space_is_word_aligned(tmp_path):
    # Spaces around an entity cut no word, so the span is accepted.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("ek coke do", (2, 8, "DRINK"))])
    (record,), _ = read_records(path)
    assert record.tags == ("O", "B-DRINK", "O")


def test_span_past_text_end_names_file_and_line(tmp_path):
    # A span beyond the text is reported with file:line and the valid range.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("ok", (0, 2, "X")), span_row("2 pizza", (2, 9, "FOOD"))])
    message = read_error(path)
    assert f"{path}:2:" in message and "outside the text (length 7)" in message


def test_span_cutting_a_word_suggests_the_aligned_span(tmp_path):
    # A span that cuts "pizza" names the word and the word-aligned span to use.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("2 pizza now", (3, 7, "FOOD"))])
    message = read_error(path)
    assert f"{path}:1:" in message and "cuts through the word 'pizza'" in message
    assert '{"start": 2, "end": 7}' in message


def test_span_cutting_the_end_of_a_word_is_an_error(tmp_path):
    # "pizza" of "pizzas": a span that starts on a word but stops inside its last one is
    # as misaligned as one that starts mid-word, and would tag the whole word.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("2 pizzas", (2, 7, "FOOD"))])
    message = read_error(path)
    assert f"{path}:1:" in message and "cuts through the word 'pizzas'" in message
    assert '{"start": 2, "end": 8}' in message


def test_overlapping_spans_are_an_error(tmp_path):
    # IOB2 cannot nest, so overlapping spans are reported with both spans.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("garlic bread", (0, 12, "FOOD"), (7, 12, "FOOD"))])
    message = read_error(path)
    assert f"{path}:1:" in message and "overlaps entities[0]" in message


def test_touching_spans_do_not_overlap(tmp_path):
    # End offsets are exclusive: a span starting where the previous one ends ([0, 1) then
    # [1, 3)) shares no character with it, and gives two entities, not an overlap error.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("₹50 ka pizza", (0, 1, "CURRENCY"), (1, 3, "AMOUNT"))])
    (record,), _ = read_records(path)
    assert record.tags == ("B-CURRENCY", "B-AMOUNT", "O", "O")


def test_spans_may_come_in_any_order(tmp_path):
    # Annotation tools do not promise sorted entities: a later span listed first is read
    # as well as in order, not reported as overlapping the one after it.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("pizza aur coke", (10, 14, "DRINK"), (0, 5, "FOOD"))])
    (record,), _ = read_records(path)
    assert record.tags == ("B-FOOD", "O", "B-DRINK")


@pytest.mark.parametrize("label, expected", [("", "empty"), ("B-FOOD", "is a tag, not an entity type")])
def test_bad_span_labels_are_errors(tmp_path, label, expected):
    # Empty labels and labels that are tags (B-X) are rejected with the fix.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("2 pizza", (2, 7, label))])
    message = read_error(path)
    assert f"{path}:1:" in message and expected in message


def test_unknown_span_label_when_types_are_given(tmp_path):
    # With entity_types, a label outside them is an error listing the allowed ones.
    path = write_jsonl(tmp_path / "a.jsonl", [span_row("2 pizza", (2, 7, "FOD"))])
    message = read_error(path, entity_types={"FOOD"})
    assert "label 'FOD' is unknown" in message and "['FOOD']" in message


def test_bad_json_names_the_line(tmp_path):
    # A broken JSON line is reported at its own line number.
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(span_row("ok", (0, 2, "X"))) + "\n\n{not json\n", encoding="utf-8")
    message = read_error(path, format="jsonl-spans")
    assert f"{path}:3:" in message and "bad JSON" in message


@pytest.mark.parametrize(("line", "fmt", "where"), [
    ('{"tokens": ["a\\ud83c", "pizza"], "tags": ["O", "B-FOOD"]}', "jsonl-tokens", "tokens[0] = 'a\\ud83c'"),
    ('{"text": "2 pizza", "entities": [{"start": 2, "end": 7, "label": "FOOD\\udf55"}]}', "jsonl-spans",
     "entities[0][label] = 'FOOD\\udf55'"),
])
def test_a_lone_surrogate_escape_is_named_with_its_line(tmp_path, line, fmt, where):
    # Half of a \\uXXXX pair decodes to a string no UTF-8 can hold: loading failed later,
    # in the data's fingerprint, naming no file or line.
    path = tmp_path / "a.jsonl"
    # A whole pair is one emoji, and reads.
    pair = ('{"tokens": ["\\ud83c\\udf55", "pizza"], "tags": ["O", "B-FOOD"]}' if fmt == "jsonl-tokens"
            else '{"text": "\\ud83c\\udf55 pizza", "entities": [{"start": 2, "end": 7, "label": "FOOD"}]}')
    path.write_text(pair + "\n", encoding="utf-8")
    records, _ = read_records(path, format=fmt)
    assert len(records) == 1 and "\U0001f355" in (records[0].text or records[0].tokens[0])
    path.write_text(pair + "\n" + line + "\n", encoding="utf-8")
    message = read_error(path, format=fmt)
    assert message.startswith(f"{path}:2: {where} holds a lone surrogate") and "write the character whole" in message


def test_missing_key_is_named(tmp_path):
    # A line without "entities" names the missing key and shows an example.
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "2 pizza"}])
    message = read_error(path, format="jsonl-spans")
    assert f"{path}:1:" in message and "missing key 'entities'" in message


def test_jsonl_tokens_accepts_tags_and_ner_tags(tmp_path):
    # Both "tags" and "ner_tags" name the tag list.
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [{"tokens": ["2", "pizza"], "tags": ["O", "B-FOOD"]}, {"tokens": ["coke"], "ner_tags": ["B-DRINK"]}],
    )
    records, _ = read_records(path)
    assert [r.tags for r in records] == [("O", "B-FOOD"), ("B-DRINK",)]
    assert [r.line for r in records] == [1, 2] and records[0].text is None


@pytest.mark.parametrize("line, key", [
    ('{"tokens": ["get", "chai"], "tags": ["O", "B-FOOD"], "tags": ["O", "O"]}', "tags"),
    ('{"text": "2 pizza", "entities": [{"start": 2, "end": 7, "label": "FOOD"}], "entities": []}', "entities"),
    ('{"text": "2 pizza", "entities": [{"start": 2, "end": 7, "label": "FOOD", "label": "QTY"}]}', "label"),
])
def test_a_key_given_twice_is_an_error_not_the_last_one_kept(tmp_path, line, key):
    # json.loads keeps the last of two equal keys: the entity in the first would vanish.
    spans = "text" in line
    first = '{"text": "2", "entities": []}' if spans else '{"tokens": ["2"], "tags": ["B-QTY"]}'
    path = tmp_path / "dup.jsonl"
    path.write_text(first + "\n" + line + "\n", encoding="utf-8")
    message = read_error(path, format="jsonl-spans" if spans else "jsonl-tokens")
    assert f"{path}:2: the key {key!r} is given twice" in message and f"keep one {key!r}" in message


def test_tags_and_ner_tags_together_is_an_error_in_jsonl_and_parquet(tmp_path):
    # With both, one would be ignored without a word; which one is the user's to say.
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["get", "chai"], "tags": ["O", "O"],
                                               "ner_tags": ["O", "B-FOOD"]}])
    message = read_error(path)
    assert f"{path}:1: both 'tags' and 'ner_tags' are given" in message and "keep one of them" in message
    pq.write_table(pa.table({"tokens": [["chai"]], "tags": [["O"]], "ner_tags": [["B-FOOD"]]}), tmp_path / "d.parquet")
    message = read_error(tmp_path / "d.parquet")
    assert f"{tmp_path / 'd.parquet'}: both 'tags' and 'ner_tags'" in message


def test_json_nested_too_deeply_is_a_data_error_on_its_line(tmp_path):
    # json.loads raises RecursionError, which is no ValueError: it escaped as a traceback.
    path = tmp_path / "deep.jsonl"
    path.write_text('{"tokens": ["2"], "tags": ["B-QTY"]}\n' + "[" * 100_000 + "]" * 100_000 + "\n",
                    encoding="utf-8")
    message = read_error(path, format="jsonl-tokens")
    assert f"{path}:2: bad JSON (nested too deeply to read)" in message


def test_a_directory_given_as_a_file_format_is_a_data_error(tmp_path):
    # Else open() raised IsADirectoryError, with no fix and the exit status of a crash.
    (tmp_path / "d").mkdir()
    message = read_error(tmp_path / "d", format="conll")
    assert f"{tmp_path / 'd'}: is a directory, and conll data is a file" in message and "--format hf-disk" in message


def test_jsonl_tokens_int_tags_need_label_names(tmp_path):
    # Integer tags decode with a label list, and are an error without one.
    path = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["2", "pizza"], "ner_tags": [0, 1]}])
    records, _ = read_records(path, label_names=["O", "B-FOOD", "I-FOOD"])
    assert records[0].tags == ("O", "B-FOOD")
    message = read_error(path)
    assert f"{path}:1:" in message and "no label list" in message


def test_jsonl_tokens_ids_written_as_strings_take_label_names(tmp_path):
    # "0"/"1" (a CSV export's ids) decode with label names, as in conll; without them they stay an error.
    path = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["2", "pizza"], "tags": ["0", "1"]}])
    records, _ = read_records(path, label_names=["O", "B-FOOD", "I-FOOD"])
    assert records[0].tags == ("O", "B-FOOD")
    assert "--label-names" in read_error(path)


def test_jsonl_byte_order_mark_inside_a_concatenated_file_is_not_bad_json(tmp_path):
    # `cat a.jsonl b.jsonl` leaves b's BOM at the start of a line: read as the conll reader reads it.
    row = json.dumps({"tokens": ["2", "pizza"], "tags": ["O", "B-FOOD"]})
    path = tmp_path / "t.jsonl"
    path.write_text(f"\ufeff{row}\n\ufeff{row}\n", encoding="utf-8")
    records, _ = read_records(path)
    assert [r.tags for r in records] == [("O", "B-FOOD")] * 2


def test_jsonl_tokens_negative_integer_tag_is_not_an_id(tmp_path):
    # -1 would index the label list from its end (silently 'I-FOOD'): it is no id.
    path = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["2", "pizza"], "tags": [0, -1]}])
    message = read_error(path, label_names=["O", "B-FOOD", "I-FOOD"])
    assert f"{path}:1:" in message and "tags[1] = -1 is not an id of the 3 labels" in message


def test_jsonl_tokens_length_mismatch(tmp_path):
    # One tag per token: a mismatch names both counts.
    path = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["2", "pizza"], "tags": ["O"]}])
    message = read_error(path)
    assert f"{path}:1:" in message and "2 tokens but 1 tags" in message


def test_conll_sentences_lines_and_docstart(tmp_path):
    # Token first, tag last; -DOCSTART- skipped; a record's line is its first token's.
    path = tmp_path / "a.conll"
    path.write_text("-DOCSTART- -X- O O\n\n2 CD O\npizza NN B-FOOD\n\n\ncoke\tNN\tB-DRINK\n", encoding="utf-8")
    records, _ = read_records(path)
    assert [r.tokens for r in records] == [("2", "pizza"), ("coke",)]
    assert [r.tags for r in records] == [("O", "B-FOOD"), ("B-DRINK",)]
    assert [r.line for r in records] == [3, 7]
    assert records[0].meta["token_lines"] == (3, 4)


def test_conll_one_column_line_is_an_error(tmp_path):
    # A line with no tag column names its own line.
    path = tmp_path / "a.conll"
    path.write_text("2 O\npizza\n", encoding="utf-8")
    message = read_error(path)
    assert f"{path}:2:" in message and "one column" in message


def test_conll_header_row_is_an_error_on_its_line_not_part_of_a_sentence(tmp_path):
    # A spreadsheet export's `word<TAB>tag` row was read as a token of sentence 1, and the
    # fix offered (--on-invalid skip) dropped that whole real sentence.
    path = tmp_path / "a.conll"
    path.write_text("word\ttag\n2\tB-QTY\npizza\tB-FOOD\n", encoding="utf-8")
    message = read_error(path)
    assert f"{path}:1:" in message and "looks like a header row" in message and "remove the header line" in message


def test_json_lines_in_a_txt_file_name_the_format_to_pass(tmp_path):
    # Read as CoNLL, its first "tag" was '"B-FOOD"]}' and the fix offered --on-invalid skip.
    path = write_jsonl(tmp_path / "data.txt", [{"tokens": ["2", "pizza"], "tags": ["O", "B-FOOD"]}])
    message = read_error(path)
    assert message.startswith(f"{path}:1: the file holds JSON Lines, not CoNLL") and "--format jsonl-tokens" in message
    records, _ = read_records(path, format="jsonl-tokens")
    assert records[0].tags == ("O", "B-FOOD")


def test_records_with_tags_that_are_not_labels_are_skippable_and_all_named(tmp_path):
    # A null or float tag stopped reading at the first one: the doctor named only it, and
    # --on-invalid skip could not skip either record.
    rows = [{"tokens": ["2", "pizza"], "tags": ["O", "B-FOOD"]}, {"tokens": ["chai"], "tags": [None]},
            {"tokens": ["dosa"], "tags": [1.5]}, {"tokens": "chai", "tags": ["O"]}]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    records, report = read_records(path, on_invalid="skip")
    assert [r.tokens for r in records] == [("2", "pizza")] and report.skipped == 3
    assert [reason.split(":")[1] for reason in report.reasons] == ["2", "3", "4"]
    assert read_error(path).startswith(f"{path}:2: tags[0] = None is neither a string nor an integer id")
    # An id out of range is --label-names' fault, not the record's: it stops the read, skip or not.
    ids = write_jsonl(tmp_path / "ids.jsonl", [{"tokens": ["chai"], "tags": [0]}, {"tokens": ["dosa"], "tags": [4]}])
    assert "tags[0] = 4 is not an id of the 3 labels" in read_error(ids, on_invalid="skip",
                                                                   label_names=["O", "B-FOOD", "I-FOOD"])


def _hf_dataset(rows):
    import datasets

    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=["O", "B-FOOD", "I-FOOD"])),
        }
    )
    return datasets.Dataset.from_dict(
        {"tokens": [r[0] for r in rows], "ner_tags": [r[1] for r in rows]}, features=features
    )


def test_hf_disk_dataset_decodes_class_labels(tmp_path):
    # A saved Dataset with ClassLabel ner_tags is decoded with the feature's names.
    _hf_dataset([(["garlic", "bread"], [1, 2]), (["hi"], [0])]).save_to_disk(str(tmp_path / "ds"))
    assert detect_format(tmp_path / "ds") == "hf-disk"
    records, _ = read_records(tmp_path / "ds")
    assert [r.tags for r in records] == [("B-FOOD", "I-FOOD"), ("O",)]
    assert [r.line for r in records] == [1, 2]


def test_label_names_that_disagree_with_the_datas_class_label_are_refused(tmp_path):
    # A dataset's ClassLabel feature names its own ids; --label-names (for files that
    # carry bare ids) must not relabel it. Disagreeing, it was ignored without a word, and a
    # split of bare ids beside one with ClassLabel read the same ids as other labels.
    _hf_dataset([(["pizza"], [1])]).save_to_disk(str(tmp_path / "ds"))
    message = read_error(tmp_path / "ds", label_names=["O", "B-DRINK", "I-DRINK"])
    assert ("its ClassLabel names the label ids ['O', 'B-FOOD', 'I-FOOD'], but --label-names gives "
            "['O', 'B-DRINK', 'I-DRINK']") in message and "leave out --label-names" in message
    records, _ = read_records(tmp_path / "ds", label_names=["O", "B-FOOD", "I-FOOD"])  # the same: read
    assert records[0].tags == ("B-FOOD",)


def test_hf_disk_dataset_dict_picks_the_split(tmp_path):
    # A saved DatasetDict is read by split name; an unknown split lists the real ones.
    import datasets

    dd = datasets.DatasetDict(
        {"train": _hf_dataset([(["a"], [0])]), "validation": _hf_dataset([(["pizza"], [1])])}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    records, _ = read_records(tmp_path / "dd", split="validation")
    assert records[0].tags == ("B-FOOD",) and records[0].source == f"{tmp_path / 'dd'}[validation]"
    message = read_error(tmp_path / "dd", split="dev")
    assert "split 'dev'" in message and "validation" in message


def test_parquet_with_string_tags(tmp_path):
    # A parquet file with tokens/tags string columns reads row by row (line = row number).
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"tokens": [["2", "pizza"], ["coke"]], "tags": [["O", "B-FOOD"], ["B-DRINK"]]})
    pq.write_table(table, tmp_path / "d.parquet")
    records, _ = read_records(tmp_path / "d.parquet")
    assert [r.tags for r in records] == [("O", "B-FOOD"), ("B-DRINK",)] and records[1].line == 2


def test_parquet_from_datasets_keeps_class_label_names(tmp_path):
    # datasets' to_parquet stores ClassLabel names in metadata; the reader decodes with them.
    _hf_dataset([(["garlic", "bread"], [1, 2])]).to_parquet(str(tmp_path / "d.parquet"))
    records, _ = read_records(tmp_path / "d.parquet")
    assert records[0].tags == ("B-FOOD", "I-FOOD")


def test_damaged_parquet_or_saved_dataset_names_the_path(tmp_path):
    # pyarrow's and datasets' own errors name no file: the DataError does, with the fix.
    (tmp_path / "d.parquet").write_bytes(b"PAR1 cut off")
    message = read_error(tmp_path / "d.parquet")
    assert str(tmp_path / "d.parquet") in message and "cannot read it as Parquet" in message
    _hf_dataset([(["pizza"], [1])]).save_to_disk(str(tmp_path / "ds"))
    (tmp_path / "ds" / "state.json").write_text("{", encoding="utf-8")
    message = read_error(tmp_path / "ds")
    assert str(tmp_path / "ds") in message and "save_to_disk" in message
    # A state.json that parses but names no data files: datasets raises FileNotFoundError.
    (tmp_path / "ds" / "state.json").write_text("{}", encoding="utf-8")
    message = read_error(tmp_path / "ds", format="hf-disk")
    assert str(tmp_path / "ds") in message and "save_to_disk" in message


def test_parquet_missing_columns_is_an_error(tmp_path):
    # Wrong column names are reported with the columns found and a rename hint.
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"words": [["a"]], "labels": [["O"]]}), tmp_path / "d.parquet")
    message = read_error(tmp_path / "d.parquet")
    assert str(tmp_path / "d.parquet") in message and "['words', 'labels']" in message


def test_detect_format_by_extension_and_first_line(tmp_path):
    # Suffixes pick conll/parquet; JSONL is told apart by its first non-empty line.
    spans = write_jsonl(tmp_path / "s.json", [span_row("a", (0, 1, "X"))])
    tokens = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["a"], "tags": ["O"]}])
    for name in ("a.conll", "a.txt", "a.tsv", "a.bio"):
        (tmp_path / name).write_text("a O\n")
    assert detect_format(spans) == "jsonl-spans" and detect_format(tokens) == "jsonl-tokens"
    assert {detect_format(tmp_path / n) for n in ("a.conll", "a.txt", "a.tsv", "a.bio")} == {"conll"}


def test_jsonl_tokens_that_also_keep_their_text_are_tokens(tmp_path):
    # A token file may carry the sentence as "text" too; without "entities" it is not a
    # span file, and must not be read as one (which fails on the missing key).
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "2 pizza", "tokens": ["2", "pizza"], "tags": ["O", "B-FOOD"]}])
    assert detect_format(path) == "jsonl-tokens"
    assert read_records(path)[0][0].tags == ("O", "B-FOOD")


def test_unknown_format_names_path_and_allowed(tmp_path):
    # An unknown extension, or format=, is a ValueError naming what is allowed.
    path = tmp_path / "data.csv"
    path.write_text("a,b\n")
    with pytest.raises(ValueError, match=r"data\.csv.*jsonl-spans.*parquet"):
        read_records(path)
    with pytest.raises(ValueError, match=r"format is 'csv', but must be 'auto' or one of"):
        read_records(path, format="csv")


@pytest.mark.parametrize("suffix, body", [
    (".conll", "-DOCSTART- -X- -X- O\n\npizza NN B-FOOD\n"),
    (".conll", "pizza NN B-FOOD\n"),
    (".jsonl", '{"tokens": ["pizza"], "tags": ["B-FOOD"]}\n'),
])
def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path, suffix, body):
    # Windows editors write a BOM; it must not become text of the first token (or a
    # "-DOCSTART-" that is no longer recognised and turns into a record).
    path = tmp_path / f"bom{suffix}"
    path.write_text(body, encoding="utf-8-sig")
    records, _ = read_records(path)
    assert [r.tokens for r in records] == [("pizza",)]


def test_conll_tab_separated_tokens_keep_their_spaces(tmp_path):
    # With tabs, a token may hold spaces; without, only ASCII spaces separate columns,
    # so a no-break space stays inside its token.
    path = tmp_path / "a.tsv"
    path.write_text("New York\tB-LOC\nse\tO\n\n10\u00a0km O\n", encoding="utf-8")
    records, _ = read_records(path, format="conll")
    assert [r.tokens for r in records] == [("New York", "se"), ("10\u00a0km",)]
    assert [r.tags for r in records] == [("B-LOC", "O"), ("O",)]


def test_conll_row_missing_its_tag_column_is_an_error(tmp_path):
    # A 4-column file with one 3-column row would read the chunk tag as the NER tag.
    path = tmp_path / "a.conll"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP\n", encoding="utf-8")
    message = read_error(path)
    assert f"{path}:2:" in message and "has 3 columns, but line 1 has 4" in message


@pytest.mark.parametrize("suffix, body", [
    (".conll", "pizza B-FOOD\n" * 40 + "caf\xe9 O\n"),
    (".jsonl", '{"tokens": ["pizza"], "tags": ["B-FOOD"]}\n' * 40 + '{"tokens": ["caf\xe9"], "tags": ["O"]}\n'),
])
def test_not_utf8_names_the_line(tmp_path, suffix, body):
    # The decoding error is found while the file is read in chunks; the message still
    # names the line of the first byte that is not UTF-8.
    path = tmp_path / f"latin1{suffix}"
    path.write_bytes(body.encode("latin-1"))
    message = read_error(path)
    assert f"{path}:41: not UTF-8 text" in message and "save the file as UTF-8" in message


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_not_utf8_counts_lines_as_the_readers_do_whatever_the_line_ending(tmp_path, newline):
    # The readers take \r, \r\n and \n as line ends; a CR-only file was reported at line 1.
    path = tmp_path / "cr.conll"
    path.write_bytes(newline.join(["pizza B-FOOD", "now O", "", "caf\xe9 B-FOOD", ""]).encode("latin-1"))
    assert f"{path}:4: not UTF-8 text: byte(s) b'\\xe9 B-' at column 4" in read_error(path)


@pytest.mark.parametrize("token", ["", " ", "\u200b", "\x07"])
def test_a_token_with_no_visible_character_is_refused(tmp_path, token):
    # The tokenizer gives it no subword, so its tag (here an entity) would vanish unseen.
    path = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["pizza", "bhejo", token], "tags": ["B-FOOD", "O", "B-LOC"]}])
    message = read_error(path)
    assert f"{path}:1:" in message and "tokens[2]" in message and "'B-LOC' would be lost" in message
    kept, report = read_records(path, on_invalid="skip")
    assert kept == [] and report.skipped == 1


def test_whitespace_inside_a_tag_is_an_error(tmp_path):
    # 'B-FOOD ' would otherwise become an entity type of its own beside 'FOOD'.
    path = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["2", "pizza"], "tags": ["O", "B-FOOD "]}])
    message = read_error(path)
    assert f"{path}:1:" in message and "'B-FOOD '" in message


def test_conll_token_a_tokenizer_drops_is_a_record_error_on_its_line(tmp_path):
    # A zero-width space as a token was read, and its B-FOOD vanished in alignment unseen.
    path = tmp_path / "t.conll"
    path.write_text("tushar B-STORE\n\u200b B-FOOD\npizza I-FOOD\n\n2 B-QTY\npizza B-FOOD\n", encoding="utf-8")
    msg = read_error(path)
    assert msg.startswith(f"{path}:2: the token '\\u200b' has no visible character, so its tag 'B-FOOD' would be lost")
    records, report = read_records(path, on_invalid="skip")  # a record's problem: on_invalid applies
    assert [r.tokens for r in records] == [("2", "pizza")] and report.skipped == 1


def test_conll_line_endings_and_concatenated_files(tmp_path):
    # A trailing tab read the line as one column; a byte-order mark where two files were
    # concatenated turned -DOCSTART- into a training record.
    path = tmp_path / "t.conll"
    part = "\ufeff-DOCSTART- -X- -X- O\n\npizza B-FOOD\t\n\n"
    path.write_text(part + part, encoding="utf-8")
    records, _ = read_records(path)
    assert [(r.tokens, r.tags) for r in records] == [(("pizza",), ("B-FOOD",))] * 2


def test_empty_conll_file_is_an_error_as_an_empty_jsonl_is(tmp_path):
    path = tmp_path / "test.conll"
    path.write_text("\n-DOCSTART- -X- -X- O\n\n")
    assert read_error(path).startswith(f"{path}: the file has no records")


@pytest.mark.parametrize("fmt", ["jsonl-tokens", "jsonl-spans", "parquet"])
def test_an_empty_file_is_an_error_whatever_format_is_named(tmp_path, fmt):
    # Under --format auto or conll an empty file was an error; named as jsonl or parquet it
    # read as no records, and a split (test) was left silently empty.
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "test.parquet"
        pq.write_table(pa.table({"tokens": pa.array([], pa.list_(pa.string())),
                                 "tags": pa.array([], pa.list_(pa.string()))}), path)
    else:
        path = tmp_path / "test.jsonl"
        path.write_text("\n")
    assert read_error(path, format=fmt).startswith(f"{path}: the file has no records. Fix: add records (")


def test_conll_integer_tags_take_label_names(tmp_path):
    path = tmp_path / "t.conll"
    path.write_text("a 0\npizza 1\n\nb 0\nx 9\n")
    with pytest.raises(DataError, match=r"t.conll:5: tag 9 is not an id of the 3 labels"):
        read_records(path, label_names=["O", "B-FOOD", "I-FOOD"])
    records, _ = read_records(path, label_names=["O", "B-FOOD", "I-FOOD"], on_invalid="skip")
    assert [r.tags for r in records] == [("O", "B-FOOD")]


def test_conll_tag_id_equal_to_the_label_count_is_a_data_error(tmp_path):
    # Ids run 0..n-1: with 3 labels, "3" is one past the end, a DataError on its line,
    # not an IndexError from the label list.
    path = tmp_path / "t.conll"
    path.write_text("a 0\nx 3\n")
    with pytest.raises(DataError, match=r"t.conll:2: tag 3 is not an id of the 3 labels"):
        read_records(path, label_names=["O", "B-FOOD", "I-FOOD"])


def test_utf16_file_is_named_with_the_conversion_that_works(tmp_path):
    # The latin1 conversion the non-UTF-8 error suggested garbles UTF-16.
    path = tmp_path / "t.conll"
    path.write_bytes("a O\n".encode("utf-16"))
    assert "UTF-16 text, not UTF-8" in read_error(path) and "iconv -f utf-16 -t utf-8" in read_error(path)


def test_invisible_tokens_tagged_o_and_newer_emoji_are_read(tmp_path):
    # Only an entity tag can vanish: an O-tagged blank token loses nothing (alignment counts
    # it as vanished), and an emoji newer than Python's Unicode tables is the tokenizer's
    # [UNK], a subword, not an invisible character.
    conll = tmp_path / "t.conll"
    conll.write_text("love O\n\xa0 O\n\u200b O\npizza B-FOOD\n", encoding="utf-8")
    assert [r.tokens for r in read_records(conll)[0]] == [("love", "\xa0", "\u200b", "pizza")]
    jsonl = tmp_path / "t.jsonl"
    write_jsonl(jsonl, [{"tokens": ["love", "\U0001fa77", "\ue000", "pizza"], "tags": ["O", "B-EMO", "O", "B-FOOD"]}])
    assert read_records(jsonl)[0][0].tags == ("O", "B-EMO", "O", "B-FOOD")
    write_jsonl(jsonl, [{"tokens": ["love", "\ue000"], "tags": ["O", "B-EMO"]}])
    assert "tokens[1] = '\\ue000' has no visible character, so its tag 'B-EMO' would be lost" in read_error(jsonl)


def test_conll_id_of_o_on_an_invisible_token_loses_nothing(tmp_path):
    # "0" is the id of 'O' with --label-names: an invisible token tagged so is read, as one
    # tagged 'O' is, not refused as if its entity tag would be lost.
    path = tmp_path / "t.conll"
    path.write_text("a 0\n\u200b 0\nb 1\n", encoding="utf-8")
    records, _ = read_records(path, label_names=["O", "B-X", "I-X"])
    assert [r.tags for r in records] == [("O", "O", "B-X")]


def test_conll_line_of_only_a_no_break_space_is_a_sentence_break(tmp_path):
    # It looks blank, and was refused as "'' has one column" with a fix that did not fit.
    path = tmp_path / "t.conll"
    path.write_text("a O\n\u00a0\nb B-FOOD\n", encoding="utf-8")
    records, _ = read_records(path)
    assert [(r.tokens, r.tags) for r in records] == [(("a",), ("O",)), (("b",), ("B-FOOD",))]


def test_bioes_tags_are_named_with_the_conversion(tmp_path):
    # The IOB2 fix ("or pass --on-invalid skip") would drop every record with an entity.
    path = tmp_path / "t.conll"
    path.write_text("inayat S-STORE\nse O\n", encoding="utf-8")
    message = read_error(path)
    assert "is BIOES/BILOU; nerkit reads IOB2: convert the file (S-/U-X → B-X, E-/L-X → I-X" in message
    assert "--on-invalid skip" not in message


def test_conll_integer_tags_without_label_names_point_to_them(tmp_path):
    path = tmp_path / "t.conll"
    path.write_text("a 0\nb 1\n", encoding="utf-8")
    assert "looks like a label id: give the label of each id in id order with --label-names" in read_error(path)
