"""The HTML search report."""

from __future__ import annotations

import base64
import copy
import re

import pytest
from typer.testing import CliRunner

from tune.report import build_report, compute_spent, write_report
from tune.summary import best_row

_IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def search_report(search_tables) -> str:
    """The shared search's report, built once (about 2.5 s each on 2 cores: its figures)."""
    return build_report(search_tables)


def test_report_is_one_file_with_embedded_plots(finished_search, search_tables):
    # report.html lands in the experiment dir, with PNG plots inlined and the key sections.
    path = write_report(finished_search.path)
    assert path == f"{finished_search.path}/report.html"
    html = open(path, encoding="utf-8").read()
    images = _IMG.findall(html)
    assert len(images) >= 2  # learning curves + parameter scatter (+ importances)
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in images)
    for section in ("Learning curves", "Parameter importances", "Compute spent", "F1 per entity type",
                    "Baselines against the best trial"):
        assert section in html
    assert best_row(search_tables)["trial_id"] in html
    assert "team-recipe" in html  # the default space's baseline
    assert "gold_entity_prob" in html  # the learning curves' third panel, explained
    assert "src=\"http" not in html and "<script" not in html


def test_report_escapes_text(search_tables):
    # Markup in recorded values (an error message, a baseline name) is shown, never interpreted.
    tables = copy.deepcopy(search_tables)
    tables.trials[0]["baseline"] = "<script>alert(1)</script>"
    html = build_report(tables)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_says_when_the_best_trials_checkpoint_is_not_its_best_evaluation(search_tables, search_report):
    # Under --checkpoint-every N the best evaluation may have no checkpoint: the report
    # names the one promotion would publish. With a checkpoint at every evaluation it does not.
    assert "checkpoint holds" not in search_report
    tables = copy.deepcopy(search_tables)
    best = best_row(tables)
    lower = best["best_dev_f1"] / 2
    best.update(checkpoint_eval_index=best["best_eval_index"] + 1, checkpoint_dev_f1=lower)
    html = build_report(tables)
    assert f"evaluation {best['best_eval_index'] + 1} (dev F1 {lower:.4f}), not the best one" in html
    best.update(checkpoint_dev_f1=best["best_dev_f1"])  # another evaluation, tied: nothing to say
    assert "checkpoint holds" not in build_report(tables)


def test_importances_rank_parameters_against_the_tables_best_dev_f1(search_tables):
    # Studies of earlier searches hold each trial's last result (an ASHA-pruned trial's
    # early score), so importances from them ranked against another target than the
    # report's "best dev F1". They come from the table's finished trials: a copied search
    # needs no study file.
    from tune.importance import USED_REASONS, param_importances

    importances, notes = param_importances(search_tables)
    used = [t for t in search_tables.trials if t["stop_reason"] in USED_REASONS and t["best_dev_f1"] is not None]
    assert importances and abs(sum(importances.values()) - 1) < 1e-6, notes
    assert f"from the best dev F1 of {len(used)} finished trials" in notes[-1]
    searched = [p["name"] for p in search_tables.record["space"]["params"] if p["kind"] != "fixed"]
    assert set(importances) <= set(searched)


def _tables_with(search_tables, rows):
    tables = copy.deepcopy(search_tables)
    tables.trials = rows
    return tables


def test_importances_leave_out_constant_parameters_and_explain_a_constant_score(search_tables):
    # A parameter with one value in every trial got importance 0.06 (and 0.25 each in a
    # search whose every F1 was 0): constants are not ranked, and equal scores give a note.
    from tune.importance import param_importances

    space = {p["name"]: p for p in search_tables.record["space"]["params"] if p["kind"] != "fixed"}
    lr = space["learning_rate"]

    def row(i, f1, reason="completed"):
        return {"stop_reason": reason, "best_dev_f1": f1, "param_learning_rate": lr["low"] * (1.1 + i),
                "param_batch_size": 16}

    rows = [row(i, 0.1 * i) for i in range(4)] + [row(9, 0.9, "diverged"), row(8, 0.9, "error")]
    importances, notes = param_importances(_tables_with(search_tables, rows))
    assert importances == {"learning_rate": 1.0}, notes
    assert "from the best dev F1 of 4 finished trials" in notes[-1] and "batch_size" in notes[-1]
    importances, notes = param_importances(_tables_with(search_tables, [row(i, 0.0) for i in range(4)]))
    assert importances is None and "every finished trial scored best dev F1 0.0000" in notes[0]
    importances, notes = param_importances(_tables_with(search_tables, [row(0, 0.3), row(1, 0.4)]))
    assert importances is None and "need at least 3" in notes[0]


def test_importances_of_a_small_search_follow_the_scores(search_tables):
    # PED-ANOVA's default top 10% of 5 trials is one trial: the ranking came out the same
    # to 4 decimals whatever the other 4 scored. The top group now holds at least 2, so
    # which parameter the better trials share decides, and a note says it is rough.
    from tune.importance import param_importances

    space = {p["name"]: p for p in search_tables.record["space"]["params"] if p["kind"] != "fixed"}
    lr, ow = space["learning_rate"], space["o_weight"]

    def row(i, j, f1):
        return {"stop_reason": "completed", "best_dev_f1": f1, "param_learning_rate": lr["low"] * (1 + 2 * i),
                "param_o_weight": ow["low"] * (1 + 2 * j)}

    # The two best trials share a low learning rate (they differ in o_weight)...
    by_lr = [row(0, 0, 0.9), row(0, 4, 0.8), row(3, 1, 0.2), row(4, 2, 0.1), row(2, 3, 0.15)]
    # ...or share a low o_weight (they differ in learning rate).
    by_ow = [row(0, 0, 0.9), row(4, 0, 0.8), row(1, 3, 0.2), row(2, 4, 0.1), row(3, 2, 0.15)]
    first, notes = param_importances(_tables_with(search_tables, by_lr))
    second, _ = param_importances(_tables_with(search_tables, by_ow))
    assert first["learning_rate"] > first["o_weight"] and second["o_weight"] > second["learning_rate"]
    assert any("a rough ranking" in n and "top 2 of 5" in n for n in notes), notes


def test_compute_spent_sums_per_stop_reason(search_tables):
    # Epochs and wall time add up per stop reason, and the total row is their sum.
    rows = {r[0]: r for r in compute_spent(search_tables.trials)}
    total_epochs = sum(t["epochs_trained"] or 0 for t in search_tables.trials)
    assert rows["total"][1] == len(search_tables.trials)
    assert abs(rows["total"][2] - total_epochs) < 1e-9
    assert abs(sum(r[4] for k, r in rows.items() if k != "total") - 1.0) < 1e-9


def test_compute_spent_groups_each_trial_under_its_own_stop_reason():
    # Totals alone hold however trials are grouped: each reason's row must be its own
    # trials' count, epochs and wall time (a trial with no stop reason yet is unfinished).
    trials = [
        {"stop_reason": "completed", "epochs_trained": 4.0, "wall_time_s": 40.0},
        {"stop_reason": "completed", "epochs_trained": 4.0, "wall_time_s": 44.0},
        {"stop_reason": "asha", "epochs_trained": 1.0, "wall_time_s": 9.0},
        {"stop_reason": "collapsed", "epochs_trained": 3.0, "wall_time_s": 27.0},
        {"stop_reason": "diverged", "epochs_trained": 0.5, "wall_time_s": None},
        {"stop_reason": None, "epochs_trained": 2.0, "wall_time_s": 20.0},
    ]
    rows = {r[0]: r[1:] for r in compute_spent(trials)}
    assert rows == {
        "completed": [2, 8.0, 84.0, 84.0 / 140.0], "asha": [1, 1.0, 9.0, 9.0 / 140.0],
        "collapsed": [1, 3.0, 27.0, 27.0 / 140.0], "diverged": [1, 0.5, 0.0, 0.0],
        "unfinished": [1, 2.0, 20.0, 20.0 / 140.0], "total": [6, 14.5, 140.0, 1.0],
    }


def test_report_cli_writes_to_out(finished_search, tmp_path):
    # nerkit report --out writes the file where asked, and names it whole ("[/x]" was
    # read as rich markup and raised after the report was written).
    from nerkit.cli import build_app

    out = tmp_path / "r[/x].html"
    res = CliRunner().invoke(build_app(), ["report", finished_search.name, "--storage",
                                           finished_search.storage, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert _IMG.search(out.read_text(encoding="utf-8")) and f"report written to {out}" in res.output


def test_a_baseline_stopped_early_is_flagged_as_scored_at_its_rung():
    # The plain-CE baseline pruned at epoch 1 against a 4-epoch best: the report shows the
    # epochs each trained and says the pruned one was not scored at the full budget.
    from tune.report import _baselines

    best = {"trial_id": "b", "stop_reason": "completed", "best_dev_f1": 0.78, "best_epoch": 4.0,
            "epochs_trained": 4.0}
    plain = {"trial_id": "p", "baseline": "plain-ce", "stop_reason": "asha", "best_dev_f1": 0.08,
             "best_epoch": 1.0, "epochs_trained": 1.0}
    team = {**plain, "trial_id": "t", "baseline": "team-recipe", "stop_reason": "completed", "epochs_trained": 4.0}
    html = _baselines([best, plain, team], best)
    assert "epochs trained" in html and "plain-ce stopped early" in html and "team-recipe stopped" not in html


def test_a_baseline_named_with_dollar_signs_is_drawn_as_written(search_tables):
    # Matplotlib read "$…$" in a legend as math: an unclosed one ended the report with
    # ParseFatalException, and two made italics.
    tables = copy.deepcopy(search_tables)
    tables.trials[0]["baseline"] = r"team $\mathrm{recipe$ v2"
    assert r"team $\mathrm{recipe$ v2" in build_report(tables)


def test_a_search_not_ended_says_so_and_how_to_go_on(search_tables, search_report):
    # A stopped search showed "trials 2" and nothing said 3 planned ones never started.
    tables = copy.deepcopy(search_tables)
    planned = tables.record["settings"]["trials"]
    assert f"{len(tables.trials)} of {planned} planned" in search_report
    assert "has not ended" not in search_report
    tables.trials = tables.trials[:2]
    tables.trials[1]["status"], tables.trials[1]["stop_reason"] = "PENDING", ""
    html = build_report(tables)
    assert f"1 trial(s) unfinished, {planned - 2} never started" in html
    assert f"nerkit search --resume {tables.record['settings']['name']}" in html


def test_a_search_stopped_before_its_first_trials_says_its_baselines_have_not_started(search_tables):
    # It said "no baselines in this search": they were planned (as many as its trials), not absent.
    tables = copy.deepcopy(search_tables)
    tables.trials, tables.history = [], []
    tables.record["space"]["baselines"] = tables.record["space"]["baselines"][:2] * 2  # 4 in the space
    tables.record["settings"]["trials"] = 3
    assert "none of the 3 baseline(s) this search planned has started" in build_report(tables)
    tables.record["settings"]["baselines"] = False  # --no-baselines
    assert "no baselines in this search" in build_report(tables)


def test_a_search_whose_every_trial_failed_says_so_not_yet(search_tables):
    tables = copy.deepcopy(search_tables)
    tables.record["settings"]["trials"] = 2
    tables.trials = [{**t, "status": "ERROR", "stop_reason": "error", "best_dev_f1": None, "best_epoch": None,
                      "baseline": ""} for t in tables.trials[:2]]
    tables.history = []
    html = build_report(tables)
    assert "no trial reported a dev evaluation, and the search has ended (2 error)" in html
    assert "--stop-reason error,diverged" in html and "yet" not in html.split("Best trial")[1].split("</p>")[0]
    assert "no data for parameter scatter" in html


def test_out_naming_a_directory_is_a_user_error_that_names_the_file_to_give(tmp_path):
    # `--out DIR` ended in "[Errno 21] ... Is a directory" (exit 1) after building the report.
    import pytest

    with pytest.raises(ValueError, match=r"is a directory; give the report's file name, e\.g\. --out .*/report\.html"):
        write_report(str(tmp_path / "no-such-search"), out=str(tmp_path))
