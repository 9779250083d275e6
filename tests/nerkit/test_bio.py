"""Tests for nerkit.bio: IOB2 problems, repair, and the on_invalid policy with its report."""

from __future__ import annotations

import json

import pytest

from nerkit.bio import FileReport, LoadReport, apply_policy, find_problems, repair_tags
from nerkit.errors import DataError
from nerkit.readers import read_records
from nerkit.records import Record


def rec(tokens, tags, line=1, **meta):
    return Record(tuple(tokens), tuple(tags), source="orders.jsonl", line=line, meta=meta)


def test_orphan_i_after_o_after_other_type_and_at_start():
    # I-X is an orphan at the start, after O, and after B-Y of another type.
    problems = find_problems(["I-FOOD", "O", "I-FOOD", "B-SHOP", "I-FOOD"], list("abcde"))
    assert [(p.index, p.kind, p.previous) for p in problems] == [
        (0, "orphan", "O"), (2, "orphan", "O"), (4, "orphan", "B-SHOP")
    ]


def test_valid_sequences_have_no_problems():
    # B-X I-X, I-X after I-X, and adjacent B-X B-X are all valid IOB2.
    assert find_problems(["B-FOOD", "I-FOOD", "I-FOOD", "B-FOOD", "O"], list("abcde")) == []


def test_malformed_tags_are_found():
    # Prefixes other than B/I, a missing type, and lowercase o are malformed.
    problems = find_problems(["E-FOOD", "B-", "o", "B-FOOD"], list("abcd"))
    assert [(p.index, p.kind) for p in problems] == [(0, "malformed"), (1, "malformed"), (2, "malformed")]


def test_repair_turns_entity_starting_i_into_b():
    # Only I-X that start an entity change; continuations stay I-X.
    tags, changed = repair_tags(["I-FOOD", "I-FOOD", "O", "B-SHOP", "I-FOOD"])
    assert tags == ("B-FOOD", "I-FOOD", "O", "B-SHOP", "B-FOOD") and changed == 2


def test_error_policy_names_file_line_index_word_and_fix():
    # The default policy raises with the token index, word and both fixes.
    records = [rec(["ek", "coke"], ["O", "B-DRINK"]), rec(["2", "garlic", "pizza"], ["O", "O", "I-FOOD"], line=7)]
    with pytest.raises(DataError) as info:
        apply_policy(records, "orders.jsonl")
    message = str(info.value)
    assert message.startswith("orders.jsonl:7: tags[2] = 'I-FOOD' (on 'pizza') follows 'O'")
    assert "change tags[2] ('I-FOOD' on 'pizza') to 'B-FOOD', or pass --on-invalid repair" in message


def test_repair_policy_counts_repaired_records():
    # Repair fixes orphan I- tags and reports how many records changed, with reasons.
    records = [rec(["pizza", "x"], ["I-FOOD", "I-FOOD"]), rec(["ok"], ["O"], line=2)]
    kept, report = apply_policy(records, "orders.jsonl", "repair")
    assert kept[0].tags == ("B-FOOD", "I-FOOD") and kept[1].tags == ("O",)
    assert (report.read, report.repaired, report.skipped) == (2, 1, 0)
    assert report.reasons[0].startswith("orders.jsonl:1: tags[0]")


def test_repair_counts_a_record_once_however_many_tags_it_changed():
    # `repaired` counts records (as `read` and `skipped` do), not tags: a record with two
    # orphan I- tags is one repaired record, and its reason says how many tags changed.
    kept, report = apply_policy([rec(["pizza", "aur", "coke"], ["I-FOOD", "O", "I-DRINK"])], "orders.jsonl", "repair")
    assert kept[0].tags == ("B-FOOD", "O", "B-DRINK")
    assert report.repaired == 1 and "repaired 2 tag(s)" in report.reasons[0]


def test_repair_policy_still_errors_on_malformed_tags():
    # Repair cannot guess a type, so malformed tags stay fatal.
    with pytest.raises(DataError, match=r"orders.jsonl:3: tags\[1\] = 'BFOOD' .* is not IOB2"):
        apply_policy([rec(["a", "b"], ["I-X", "BFOOD"], line=3)], "orders.jsonl", "repair")


def test_skip_policy_drops_and_counts_with_reasons():
    # Skip drops bad records, never silently: counts and every reason are kept.
    records = [rec(["a"], ["I-X"], line=i) for i in range(1, 9)] + [rec(["b"], ["O"], line=9)]
    kept, report = apply_policy(records, "orders.jsonl", "skip")
    assert len(kept) == 1 and (report.read, report.skipped, report.kept) == (9, 8, 1)
    assert len(report.reasons) == 8 and "record skipped" in report.reasons[0]
    assert report.reasons[-1].startswith("orders.jsonl:8:")


def test_span_errors_under_each_policy(tmp_path):
    # A cut-word span: fatal under error and repair (saying repair can't), skipped under skip.
    path = tmp_path / "a.jsonl"
    rows = [{"text": "2 pizza", "entities": [{"start": 3, "end": 7, "label": "FOOD"}]},
            {"text": "coke", "entities": [{"start": 0, "end": 4, "label": "DRINK"}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=rf"{path}:1: .*cuts through the word 'pizza'"):
        read_records(path)
    with pytest.raises(DataError, match=r"--on-invalid repair only fixes I- tags .* cannot fix this"):
        read_records(path, on_invalid="repair")
    kept, report = read_records(path, on_invalid="skip")
    assert [r.tokens for r in kept] == [("coke",)] and report.skipped == 1
    assert f"{path}:1:" in report.reasons[0]


def test_conll_error_names_the_bad_tokens_line(tmp_path):
    # In CoNLL the error points at the bad token's own line, not the sentence's first.
    path = tmp_path / "a.conll"
    path.write_text("ek O\ngarlic O\nbread I-FOOD\n")
    with pytest.raises(DataError, match=rf"{path}:3: tags\[2\] = 'I-FOOD' \(on 'bread'\)"):
        read_records(path)


@pytest.mark.parametrize("policy", ["skip", "repair"])
def test_skipped_and_repaired_records_name_the_bad_tokens_line(tmp_path, policy):
    # The load report points at the orphan I- tag's own line under skip and repair too, as
    # the error does: a researcher fixing the file goes to line 6, not the sentence's line 4.
    path = tmp_path / "a.conll"
    path.write_text("ek O\npizza B-FOOD\n\ndo O\nbade O\nsamose I-FOOD\n")
    records, report = read_records(path, on_invalid=policy)
    assert report.reasons[0].startswith(f"{path}:6: tags[2] = 'I-FOOD' (on 'samose')"), report.reasons


def test_unknown_policy_is_rejected():
    # on_invalid must be one of the three policies.
    with pytest.raises(ValueError, match=r"on_invalid is 'fix', but must be one of \['error', 'repair', 'skip'\]"):
        apply_policy([], "x", "fix")


def test_load_report_sums_each_count_over_its_files():
    # A load of several files reports repaired and skipped records summed over every file,
    # each count from its own field (the train/doctor totals read these).
    report = LoadReport((FileReport("train.jsonl", read=5, repaired=2, skipped=0),
                         FileReport("dev.jsonl", read=3, repaired=0, skipped=1)))
    assert (report.repaired, report.skipped) == (2, 1)
    assert report.to_dict()["repaired"] == 2 and report.to_dict()["skipped"] == 1


@pytest.mark.parametrize("tag, meant", [("b-food", "B-food"), ("B-FOOD ", "B-FOOD"), ("I_FOOD", "I-FOOD"), ("o", "O")])
def test_a_misspelt_tag_gets_the_tag_it_means_as_its_fix(tag, meant):
    # The type is in the tag: the fix names the spelling to use, not "repair cannot guess the type".
    (problem,) = find_problems(["O", tag], ["2", "pizza"])
    assert problem.kind == "malformed" and f"to {meant!r}, as IOB2 spells it" in problem.fix()


def test_the_fix_for_a_type_with_an_invisible_character_names_the_visible_tag():
    (problem,) = find_problems(["B-FOOD\u200b"], ["pizza"])
    assert problem.kind == "malformed"
    assert problem.fix() == ("change tags[0] ('B-FOOD\\u200b' on 'pizza') to 'B-FOOD': an invisible character or a "
                             "decomposed accent (NFD) makes it another type that prints the same")
