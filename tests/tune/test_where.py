"""Tests for tune.where: the hints of a --where expression that does not parse."""

from __future__ import annotations

import pandas as pd
import pytest

from tune.where import where_mask


@pytest.mark.parametrize("trial_id", ["15f4924b", "01234567", "0123abcd"])
def test_an_unquoted_digit_led_trial_id_gets_its_quoted_form(trial_id):
    # A leading-zero id got Python's "use an 0o prefix for octal integers" and no quote hint;
    # a signed exponent before the id (1e-1) got the hint "'1e'".
    trials = pd.DataFrame({"trial_id": [trial_id], "best_dev_f1": [0.5]})
    with pytest.raises(ValueError, match=f"a text value needs quotes: '{trial_id}'"):
        where_mask(trials, f"best_dev_f1 > 1e-1 and trial_id == {trial_id}")
    assert where_mask(trials, f"trial_id == '{trial_id}' and best_dev_f1 > 1_0e-2").tolist() == [True]


def test_a_number_is_not_taken_for_a_text_value():
    trials = pd.DataFrame({"trial_id": ["a"], "best_dev_f1": [0.5]})
    with pytest.raises(ValueError) as err:
        where_mask(trials, "best_dev_f1 > 1e-1 and and 0x1f")
    assert "needs quotes" not in str(err.value)


def test_an_id_python_reads_as_a_number_is_quoted_as_typed():
    # `trial_id == 12e45678` (digits and one e: about 1.4% of Ray's ids) said "quote it: 'inf'".
    trials = pd.DataFrame({"trial_id": ["12e45678", "ab"], "best_dev_f1": [0.1, 0.2]})
    for expr in ("trial_id == 12e45678", "trial_id in [12e45678]", "12e45678 == trial_id"):
        with pytest.raises(ValueError, match=r"but 12e45678 is number; quote it: '12e45678'"):
            where_mask(trials, expr)
    assert where_mask(trials, "trial_id == '12e45678'").tolist() == [True, False]
