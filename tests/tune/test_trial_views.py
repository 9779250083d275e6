"""Tests for tune.cli.trial_views: trial tables laid out whole, or cut and said so."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from tune.cli.trial_views import _DROPPABLE, _fit_widths, compact_view, print_whole


def _trial_rows():
    return pd.DataFrame({
        "trial_id": ["15f4924b", "ea39548d"], "stop_reason": ["completed", "asha"], "status": ["TERMINATED"] * 2,
        "evaluations": [2, 1], "baseline": ["team-recipe", ""], "param_learning_rate": [3e-5, 1.2345e-4],
        "param_o_weight": [0.5, 0.1234], "param_loss": ["ce", "focal"], "best_dev_f1": [0.2721, 0.6512],
        "best_epoch": [2.0, 1.0], "last_entity_pred_ratio": [0.11, 0.05], "epochs_trained": [2.0, 1.0],
        "wall_time_s": [11.3, 123.4]})


@pytest.mark.parametrize("width", [80, 68, 60, 50, 40, 36, 30])
def test_a_narrow_terminal_leaves_named_columns_out_rather_than_cutting_numbers(width):
    # At 68 columns rich cropped each line at the edge: wall time 123.4 read "12", unmarked;
    # at 60 the searched column vanished. Now whole columns go, least needed first, and
    # the CLI names them; what is shown is whole.
    buf = io.StringIO()
    console = Console(width=width, file=buf, force_terminal=True, color_system=None)
    table, _, dropped = compact_view(_trial_rows(), console, width)
    console.print(table)
    out = buf.getvalue()
    assert all(len(line) <= width for line in out.splitlines())
    assert dropped == list(_DROPPABLE[:len(dropped)])
    assert "15f4924b" in out and ("0.6512 @ 1.00" in out or "0.6512 @ …" in out)
    if "wall s" not in dropped:
        assert "123.4" in out and "11.3" in out
    assert (width == 80) == (dropped == [])


@pytest.mark.parametrize("width, left_out", [(40, []), (30, ["stop_reason", "baseline"])])
def test_a_plain_table_too_wide_for_the_terminal_names_the_columns_left_out(width, left_out):
    # rich dropped whole columns (trial_id among them) from a --columns table at 60
    # columns while the note said only that cut values were marked.
    out, err = io.StringIO(), io.StringIO()
    df = _trial_rows()[["trial_id", "best_dev_f1", "param_learning_rate", "wall_time_s", "stop_reason", "baseline"]]
    print_whole(df, Console(width=width, file=out, force_terminal=True, color_system=None),
                Console(width=200, file=err, no_color=True))
    header = out.getvalue().splitlines()[1].split()
    assert header[0] == "trial_id" and "15f4924b" in out.getvalue() and "values cut are marked …" in err.getvalue()
    assert all(line.endswith("…") or line in df.columns for line in header)  # whole or marked
    named = err.getvalue().split(", and ")[1].split(" left out")[0].split(", ") if " left out" in err.getvalue() else []
    assert len(header) + len(named) == len(df.columns) and named == list(df.columns[len(header):]) == left_out
    assert all(len(line) <= width for line in out.getvalue().splitlines())


def test_widths_cut_the_widest_columns_to_one_cap_and_keep_an_id_whole():
    assert _fit_widths([8, 40, 6, 12], [True, False, False, False], 30) == [8, 8, 6, 8]
    assert _fit_widths([8, 40], [True, False], 100) == [8, 40]
    assert _fit_widths([8, 40, 40], [True, False, False], 12) is None  # not 4 characters each


def test_a_trial_with_evaluations_and_no_stop_reason_reads_unfinished_not_pending():
    # Ray's snapshot records a running trial as PENDING; with evaluations it is shown as
    # unfinished (running, or left to --resume), without as pending.
    from tune.cli.trial_views import _unended

    row = lambda status, n: pd.Series({"status": status, "evaluations": n})  # noqa: E731
    assert _unended(row("PENDING", 2)) == "unfinished"
    assert _unended(row("PENDING", 0)) == "pending"
    assert _unended(row("PENDING", pd.NA)) == "pending"
    assert _unended(row("ERROR", 1)) == "error"
