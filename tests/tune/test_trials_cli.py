"""``nerkit trials``: the selection library, the safe --where parser and the command."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from tune.trial_query import TrialQuery, select_history, select_trials, split_list
from tune.where import where_mask


@pytest.fixture(scope="module")
def frames(finished_search):
    from tune.parquet import read_tables, refresh_tables

    refresh_tables(finished_search.path)
    return read_tables(finished_search.path)


@pytest.fixture(scope="module")
def app():
    from nerkit.cli import build_app

    return build_app()


def _run(app, *args):
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def test_default_order_is_best_dev_f1_descending(frames):
    # Without --sort the best trial comes first; --asc reverses.
    trials, _ = frames
    out = select_trials(trials, TrialQuery())
    assert len(out) == len(trials) and out["best_dev_f1"].notna().all()  # every trial evaluated
    assert out["best_dev_f1"].tolist() == sorted(trials["best_dev_f1"], reverse=True)
    asc = select_trials(trials, TrialQuery(sort="best_dev_f1", ascending=True, top=2))
    assert len(asc) == 2 and asc["best_dev_f1"].iloc[0] == trials["best_dev_f1"].min()


def test_filters_combine():
    # Status, stop reason and --where filters all apply (each removes rows the others keep),
    # and --columns keeps only those.
    df = pd.DataFrame({
        "trial_id": list("abcdefg"),
        "status": ["TERMINATED", "TERMINATED", "TERMINATED", "ERROR", "RUNNING", "TERMINATED", "TERMINATED"],
        "stop_reason": ["asha", "asha", "completed", "error", "", "asha", "asha"],
        "param_o_weight": [0.2, 0.8, 0.2, 0.2, 0.2, 0.3, 0.6],
        "best_dev_f1": [0.1, 0.2, 0.3, 0.0, 0.4, 0.5, 0.6],
    })
    q = TrialQuery(status=("terminated",), stop_reasons=("asha", "error", "running"),
                   where=("param_o_weight <= 0.5",), columns=("trial_id", "param_o_weight"))
    out = select_trials(df, q)
    assert list(out.columns) == ["trial_id", "param_o_weight"]
    assert sorted(out["trial_id"]) == ["a", "f"]
    # Each filter alone removes what it should.
    assert sorted(select_trials(df, TrialQuery(status=("terminated",)))["trial_id"]) == list("abcfg")
    assert sorted(select_trials(df, TrialQuery(stop_reasons=("asha",)))["trial_id"]) == list("abfg")
    assert sorted(select_trials(df, TrialQuery(where=("param_o_weight <= 0.5",)))["trial_id"]) == list("acdef")
    assert select_trials(df, TrialQuery(stop_reasons=("error",)))["trial_id"].tolist() == ["d"]


def test_history_follows_the_trial_filters(frames):
    # --history shows only the evaluations of the trials that pass the trial filters.
    trials, history = frames
    reason = trials["stop_reason"].iloc[0]
    ids = set(trials.loc[trials["stop_reason"] == reason, "trial_id"])
    out = select_history(history, trials, TrialQuery(stop_reasons=(reason,)))
    assert set(out["trial_id"]) == ids and len(out) == history["trial_id"].isin(ids).sum()


def test_unknown_columns_and_values_are_clear_errors(frames):
    # A typo in --sort/--columns lists the real columns; bad statuses/reasons list the allowed ones.
    trials, _ = frames
    with pytest.raises(ValueError, match="columns are: trial_id, status"):
        select_trials(trials, TrialQuery(sort="best_f1"))
    with pytest.raises(ValueError, match="unknown column"):
        select_trials(trials, TrialQuery(columns=("nope",)))
    with pytest.raises(ValueError, match="allowed are"):
        TrialQuery(stop_reasons=("pruned",))
    with pytest.raises(ValueError, match="allowed are"):
        TrialQuery(status=("done",))
    assert split_list(["asha,collapsed", " error "]) == ("asha", "collapsed", "error")


@pytest.mark.parametrize("expr", [
    "__import__('os').system('echo hi')", "param_o_weight.__class__ == 1", "param_o_weight < other_col",
    "param_o_weight + 1 < 2", "nope < 1", "best_dev_f1 <", "lambda: 1", "status in status",
])
def test_where_rejects_anything_but_simple_comparisons(frames, expr):
    # Calls, attributes, arithmetic, unknown names and broken syntax are refused, naming the columns.
    trials, _ = frames
    with pytest.raises(ValueError, match="columns are: .*best_dev_f1"):
        where_mask(trials, expr)


def test_where_supports_comparisons_membership_and_logic():
    # Chained comparisons, in/not in, None checks and and/or/not select the expected rows.
    df = pd.DataFrame({"x": [0.1, 0.4, 0.9, None], "s": ["a", "b", "c", "a"]})
    assert df[where_mask(df, "0.2 < x <= 0.9")].index.tolist() == [1, 2]
    assert df[where_mask(df, "s in ['a', 'c'] and not x > 0.5")].index.tolist() == [0, 3]  # NaN > 0.5 is False
    assert df[where_mask(df, "s not in ('a',) and x < 0.5")].index.tolist() == [1]
    assert df[where_mask(df, "x == None or s == 'b'")].index.tolist() == [1, 3]
    assert df[where_mask(df, "-1 < x")].index.tolist() == [0, 1, 2]


def test_cli_json_csv_and_compact_view(finished_search, app, frames):
    # --json and --csv print machine-readable rows; the default view names every trial.
    trials, _ = frames
    common = ["trials", finished_search.name, "--storage", finished_search.storage]
    res = _run(app, *common, "--json", "--top", "3", "--stop-reason", "completed,asha,collapsed,diverged,error")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == min(3, len(trials)) and rows[0]["best_dev_f1"] == trials["best_dev_f1"].max()
    res = _run(app, *common, "--csv", "--history", "--columns", "trial_id,epoch,dev_f1")
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(io.StringIO(res.output))
    assert list(csv.columns) == ["trial_id", "epoch", "dev_f1"]
    res = _run(app, *common)
    assert res.exit_code == 0, res.output
    assert all(t[:6] in res.output for t in trials["trial_id"])


def test_piped_views_print_every_value_whole(finished_search, app, frames):
    # Piped, rich laid tables out in 80 columns: --history gave 20 of 23 columns no width,
    # folded numbers mid-value ("0.06" / "061") and a baseline's name ("(team-reci" / "pe)").
    trials, history = frames
    common = ["trials", finished_search.name, "--storage", finished_search.storage]
    res = _run(app, *common, "--history")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    header = next(line for line in lines if "trial_id" in line)
    from tune.cli.trials import HISTORY_VIEW

    assert header.split() == list(HISTORY_VIEW)
    rows = [line.split() for line in lines if line.split() and line.split()[0] in set(history["trial_id"])]
    assert len(rows) == len(history)
    shown = {(r[0], int(r[1])): float(r[3]) for r in rows}
    for _, h in history.iterrows():
        assert shown[(h["trial_id"], h["eval_index"])] == pytest.approx(h["dev_f1"], rel=1e-3, abs=1e-4)
    res = _run(app, *common, "--columns", ",".join(trials.columns[:20]))
    header = next(line for line in res.stdout.splitlines() if "trial_id" in line)
    assert header.split() == list(trials.columns[:20])
    res = _run(app, *common)
    for name in trials["baseline"].dropna():
        if name:
            assert f"({name})" in res.stdout


def test_cli_bad_where_is_a_user_error(finished_search, monkeypatch, capsys):
    # Through the real entry point a bad --where exits 2 with the message, not a traceback.
    import sys

    from nerkit.cli import main

    monkeypatch.setattr(sys, "argv", ["nerkit", "trials", finished_search.name, "--storage",
                                      finished_search.storage, "--where", "open('x').read() == 1"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "is not allowed" in " ".join(err.split()) and "param_o_weight" in err


def test_missing_values_satisfy_no_comparison():
    # gamma is null for CE trials: `!=` and `not in` leave them out, as `<` does; only
    # `== None` asks for them.
    df = pd.DataFrame({"param_gamma": [2.0, None, 1.0]})
    assert where_mask(df, "param_gamma != 2.0").tolist() == [False, False, True]
    assert where_mask(df, "param_gamma not in [2.0]").tolist() == [False, False, True]
    assert where_mask(df, "param_gamma == None").tolist() == [False, True, False]


def test_read_only_storage_still_shows_the_trials(finished_search, app, monkeypatch):
    # Fault injection: writing the Parquet tables fails (read-only storage). Reading needs
    # no write: the rows are shown, with a warning that they were not saved.
    import tune.parquet

    def refuse(*_a, **_k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tune.parquet, "write_tables", refuse)
    res = CliRunner().invoke(app, ["trials", finished_search.name, "--storage", finished_search.storage,
                                                   "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)) > 0 and "Read-only file system" in res.stderr


def test_integer_columns_stay_integers_with_a_null(tmp_path):
    # A pending trial has no best_eval_index: the others still read as 3, not 3.0.
    from tune.parquet import read_table, to_arrow

    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(to_arrow([{"trial_id": "a", "best_eval_index": 3}, {"trial_id": "b", "best_eval_index": None}],
                            "trials"), path)
    df = read_table(str(path))
    assert df["best_eval_index"].tolist()[0] == 3 and str(df["best_eval_index"].dtype) == "Int64"


def test_a_literal_of_another_kind_than_its_column_is_an_error():
    # `batch_size == '16'` used to select nothing, silently; every operator now says why.
    df = pd.DataFrame({"x": [8, 16, None], "s": ["a", "b", None], "b": [True, False, True]})
    for expr, kind in (("x == '16'", "number"), ("x in ['8', '16']", "number"), ("s != 1", "text"),
                       ("s in [1, 'a']", "text"), ("b == 1", "True/False")):
        with pytest.raises(ValueError, match=f"holds {kind} values"):
            where_mask(df, expr)
    with pytest.raises(ValueError, match="quote it: '1'"):
        where_mask(df, "s == 1")


def test_a_bool_column_with_a_missing_value_still_takes_true_and_false():
    # history's `collapsed` is null on a report without an evaluation; through Parquet
    # such a column used to come back as objects and read as text.
    from tune.parquet import to_arrow, to_pandas

    df = to_pandas(to_arrow([{"trial_id": "a", "collapsed": True}, {"trial_id": "a", "collapsed": None},
                             {"trial_id": "b", "collapsed": False}], "history"))
    assert where_mask(df, "collapsed == True").tolist() == [True, False, False]
    assert where_mask(df, "collapsed in [False, None]").tolist() == [False, True, True]
    obj = pd.DataFrame({"c": pd.Series([True, None], dtype=object)})  # however it is built
    assert where_mask(obj, "c == True").tolist() == [True, False]


def test_none_in_a_list_stands_for_missing_values():
    # As `x == None` does: `in [None, …]` adds the missing rows, `not in [None, …]` drops them.
    df = pd.DataFrame({"x": [8.0, 16.0, None]})
    assert where_mask(df, "x in [None, 8]").tolist() == [True, False, True]
    assert where_mask(df, "x not in [None]").tolist() == [True, True, False]
    assert where_mask(df, "x not in [None, 8]").tolist() == [False, True, False]
    assert where_mask(df, "x > +10").tolist() == [False, True, False]


def test_pathological_filters_are_user_errors():
    # Nothing a user can type escapes as another exception (RecursionError, OverflowError).
    df = pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "s": ["a", "b"]})
    with pytest.raises(ValueError, match="nested too deeply"):
        where_mask(df, "not " * 5000 + "n > 1")
    assert where_mask(df, "n < 99999999999999999999999").tolist() in ([True, False], [False, False])


def test_a_search_with_no_trial_yet_has_the_full_schema(finished_search, app, tmp_path):
    # Only search.json exists (the driver has not started a trial): status and stop-reason
    # filters, --where on a metric and the written Parquet files all know the columns.
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    exp = tmp_path / "fresh"
    exp.mkdir()
    shutil.copy(f"{finished_search.path}/search.json", exp / "search.json")
    res = _run(app, "trials", "fresh", "--storage", str(tmp_path), "--json", "--status", "terminated",
               "--stop-reason", "completed", "--where", "best_dev_f1 > 0.5")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == []
    schema = pq.read_schema(exp / "trials.parquet")
    assert schema.field("schema_version").type == pa.int64()
    assert schema.field("param_o_weight").type == pa.float64()
    assert schema.field("param_batch_size").type == pa.int64()
    assert schema.field("results_incomplete").type == pa.bool_()
    assert pq.read_schema(exp / "history.parquet").field("eval_index").type == pa.int64()


def test_a_bad_query_writes_nothing(finished_search, app, tmp_path):
    # The query is checked before the tables are rewritten.
    import shutil

    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    (exp / "trials.parquet").unlink(missing_ok=True)
    res = _run(app, "trials", finished_search.name, "--storage", str(tmp_path), "--sort", "nope")
    # A user error naming the column (nerkit.cli.main turns it into exit 2), not a crash.
    assert isinstance(res.exception, ValueError) and "--sort names unknown column(s) ['nope']" in str(res.exception)
    assert not (exp / "trials.parquet").exists()


def test_unfinished_and_running_select_the_same_trials():
    # The compact view says "unfinished"; --stop-reason takes that word as well as "running".
    df = pd.DataFrame({"trial_id": ["a", "b"], "status": ["PENDING", "TERMINATED"], "stop_reason": ["", "asha"],
                       "best_dev_f1": [0.1, 0.2]})
    for word in ("unfinished", "running"):
        assert select_trials(df, TrialQuery(stop_reasons=(word,)))["trial_id"].tolist() == ["a"]


def test_an_unquoted_text_value_is_named_with_the_quoted_form():
    # `param_loss == focal` read "compare one column with one literal value"; the fix is
    # the quotes, so the error says that, and its example uses a column the table has.
    trials = pd.DataFrame({"param_loss": ["ce", "focal"], "param_o_weight": [0.2, 0.7]})
    with pytest.raises(ValueError, match=r"'focal' is not a column; a text value needs quotes: param_loss != 'focal'"):
        where_mask(trials, "param_loss != focal")
    history = pd.DataFrame({"trial_id": ["a"], "dev_f1": [0.4]})
    with pytest.raises(ValueError, match=r'e\.g\. "dev_f1 < 0\.5"'):
        where_mask(history, "param_o_weight < 1")


def test_an_unquoted_trial_id_starting_with_a_digit_is_named_with_the_quoted_form():
    # `trial_id == 15f4924b` (most Ray ids start with a digit) read only "it does not parse
    # (invalid decimal literal)"; the fix is the quotes, so the error says that.
    trials = pd.DataFrame({"trial_id": ["15f4924b", "ea39548d"], "best_dev_f1": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"a text value needs quotes: '15f4924b'"):
        where_mask(trials, "trial_id == 15f4924b")
    assert where_mask(trials, "trial_id == '15f4924b' or best_dev_f1 > 1e-1").tolist() == [True, True]


def test_values_are_shown_as_text_not_read_as_rich_markup():
    # An error such as "devices [cuda:0] and [rank0]" showed as "devices  and", and
    # "[/data/x.jsonl]" raised rich's MarkupError, in both views.
    from rich.console import Console

    from tune.cli.trial_views import compact_view, print_whole

    text = "devices [cuda:0] and [rank0] at [/data/x.jsonl]"
    df = pd.DataFrame({"trial_id": ["a"], "status": ["ERROR"], "stop_reason": ["error"], "baseline": [""],
                       "param_mode": ["[bold]x[/]"], "best_dev_f1": [0.5], "best_epoch": [1.0],
                       "last_entity_pred_ratio": [0.1], "epochs_trained": [1.0], "wall_time_s": [3.0],
                       "evaluations": [1], "error": [text]})
    out = io.StringIO()
    print_whole(df[["trial_id", "error"]], Console(file=out, width=200), Console(file=io.StringIO()))
    assert text in out.getvalue()
    out = io.StringIO()
    console = Console(file=out, width=200)
    table, _, _ = compact_view(df, console)
    console.print(table)
    assert "mode=[bold]x[/]" in out.getvalue()


def test_the_count_line_names_trials_planned_but_not_started(app, finished_search, tmp_path):
    # A search stopped part-way has rows only for what it created: "4 of 4 trials" read as
    # done where 8 were planned.
    import shutil

    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    record = json.loads((exp / "search.json").read_text())
    created = record["settings"]["trials"]
    record["settings"]["trials"] = created + 3
    (exp / "search.json").write_text(json.dumps(record))
    res = _run(app, "trials", finished_search.name, "--storage", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert f"{created} of {created} trials (3 more planned, not started yet);" in " ".join(res.output.split())
    res = _run(app, "trials", finished_search.name, "--storage", finished_search.storage)
    assert "more planned" not in res.output
