"""The HTML search report."""

from __future__ import annotations

import base64
import copy
import re

from typer.testing import CliRunner

from tune.report import build_report, compute_spent, write_report
from tune.summary import best_row

_IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


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


def test_report_says_when_the_best_trials_checkpoint_is_not_its_best_evaluation(search_tables):
    # Under --checkpoint-every N the best evaluation may have no checkpoint: the report
    # names the one promotion would publish. With a checkpoint at every evaluation it does not.
    assert "checkpoint holds" not in build_report(search_tables)
    tables = copy.deepcopy(search_tables)
    best = best_row(tables)
    lower = best["best_dev_f1"] / 2
    best.update(checkpoint_eval_index=best["best_eval_index"] + 1, checkpoint_dev_f1=lower)
    html = build_report(tables)
    assert f"evaluation {best['best_eval_index'] + 1} (dev F1 {lower:.4f}), not the best one" in html
    best.update(checkpoint_dev_f1=best["best_dev_f1"])  # another evaluation, tied: nothing to say
    assert "checkpoint holds" not in build_report(tables)


def test_importances_read_the_study_beside_the_experiment(search_tables, tmp_path):
    # A copied or moved search reads its own optuna.db, never the one at the path recorded
    # when it ran (here still the original search's, which has a study); without one the
    # report says why instead of failing, and creates no file.
    tables = copy.deepcopy(search_tables)
    tables.experiment = str(tmp_path / "moved")
    html = build_report(tables)
    assert f"no Optuna study at sqlite:///{tmp_path / 'moved' / 'optuna.db'}" in html
    assert not (tmp_path / "moved" / "optuna.db").exists()


def test_importances_need_enough_complete_trials(search_tables, tmp_path):
    # A study with a single complete trial gets a note, not an exception.
    import optuna

    (tmp_path / "moved").mkdir()
    url = f"sqlite:///{tmp_path / 'moved' / 'optuna.db'}"
    from tune.study_store import mark_study

    name = search_tables.record["settings"]["name"]
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    mark_study(study, search_tables.record["search_id"])  # this search's study, with one trial
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    tables = copy.deepcopy(search_tables)
    tables.experiment = str(tmp_path / "moved")
    assert "1 complete trial(s)" in build_report(tables)


def test_compute_spent_sums_per_stop_reason(search_tables):
    # Epochs and wall time add up per stop reason, and the total row is their sum.
    rows = {r[0]: r for r in compute_spent(search_tables.trials)}
    total_epochs = sum(t["epochs_trained"] or 0 for t in search_tables.trials)
    assert rows["total"][1] == len(search_tables.trials)
    assert abs(rows["total"][2] - total_epochs) < 1e-9
    assert abs(sum(r[4] for k, r in rows.items() if k != "total") - 1.0) < 1e-9


def test_compute_spent_groups_each_trial_under_its_own_stop_reason():
    # Totals alone hold however trials are grouped: each reason's row must be its own
    # trials' count, epochs and wall time (a trial with no stop reason yet is running).
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
        "running": [1, 2.0, 20.0, 20.0 / 140.0], "total": [6, 14.5, 140.0, 1.0],
    }


def test_report_cli_writes_to_out(finished_search, tmp_path):
    # nerkit report --out writes the file where asked.
    from nerkit.cli import build_app

    out = tmp_path / "r.html"
    res = CliRunner().invoke(build_app(), ["report", finished_search.name, "--storage",
                                           finished_search.storage, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert _IMG.search(out.read_text(encoding="utf-8"))


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
