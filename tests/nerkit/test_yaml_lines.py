"""Tests for nerkit.yaml_lines: every YAML error names the file and the line."""

from __future__ import annotations

import pytest

from nerkit.yaml_lines import load_with_lines


def test_a_file_not_utf8_names_file_and_line(tmp_path):
    # A latin-1 byte is a ValueError naming file:line, not a bare UnicodeDecodeError.
    path = tmp_path / "space.yaml"
    path.write_bytes(b"params:\n  loss: caf\xe9\n")
    with pytest.raises(ValueError, match=r"space\.yaml:2: not UTF-8 text.*Fix: save the file as UTF-8"):
        load_with_lines(path)


def test_tab_indentation_says_to_indent_with_spaces(tmp_path):
    # PyYAML's "found character '\t'" does not say what to do; the error does.
    path = tmp_path / "space.yaml"
    path.write_text("params:\n\to_weight: 0.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"space\.yaml:2: not valid YAML.*Fix: indent with spaces, not tabs"):
        load_with_lines(path)


def test_a_misindented_line_says_to_check_its_indentation(tmp_path):
    # PyYAML's "mapping values are not allowed here" names neither indentation nor a fix.
    path = tmp_path / "space.yaml"
    path.write_text("params:\n  o_weight: {type: uniform, low: 0.1, high: 0.9}\n    learning_rate: 1.0e-4\n",
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"space\.yaml:3: not valid YAML.*Fix: check this line's indentation"):
        load_with_lines(path)


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    # PyYAML keeps the last of two equal keys silently; load_with_lines names both lines.
    path = tmp_path / "space.yaml"
    path.write_text("params:\n  o_weight: 0.5\n  o_weight: 0.7\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"space\.yaml:3: params\.o_weight is given twice \(lines 2 and 3\)"):
        load_with_lines(path)
