"""``nerkit search``'s contract with scripts: exit codes and early refusals."""

from __future__ import annotations

from typer.testing import CliRunner

from tune.cli.search import outcome


def _summary(reasons: dict, best: dict | None, planned: int | None = None) -> dict:
    """A summary as tune.summary.summarize gives it: unended trials are counted under their
    status ("pending", "running", "paused"), the rest under their stop reason."""
    trials = sum(reasons.values())
    stopped = sum(n for r, n in reasons.items() if r in ("pending", "running", "paused"))
    return {"name": "s1", "reasons": reasons, "best": best, "trials": trials, "trials_planned": planned or trials,
            "unfinished": {"stopped": stopped, "not_started": max(0, (planned or trials) - trials)}}


def test_a_finished_search_with_a_best_trial_exits_0():
    assert outcome(_summary({"completed": 3, "asha": 5}, {"trial_id": "a"}), "/r") == (0, "")


def test_an_interrupted_search_exits_130_with_the_command_that_continues_it():
    # Ray returns from fit() on Ctrl-C with unfinished trials; that is not success.
    code, why = outcome(_summary({"completed": 1, "pending": 2, "running": 1}, {"trial_id": "a"}), "/r")
    assert code == 130 and "3 trial(s) unfinished" in why and "nerkit search --resume s1 --storage /r" in why


def test_a_search_stopped_before_every_trial_was_created_is_interrupted():
    # Ctrl-C between trials (--max-concurrent 1) leaves none pending, but fewer than planned.
    code, why = outcome(_summary({"completed": 3}, {"trial_id": "a"}, planned=8), "/r")
    assert code == 130 and "5 trial(s) unfinished (5 not started)" in why
    # Both kinds: the summary's "pending 2" and the 3 unfinished must add up in the message.
    code, why = outcome(_summary({"completed": 3, "pending": 2}, {"trial_id": "a"}, planned=6), "/r")
    assert "3 trial(s) unfinished (2 stopped, 1 not started)" in why


def test_a_search_where_no_trial_reported_exits_1():
    code, why = outcome(_summary({"error": 8}, None), "/r")
    assert code == 1 and "nerkit trials s1 --storage /r --stop-reason error" in why


def test_an_empty_name_is_refused_not_replaced(tmp_path):
    # `--name ""` used to start a search under a generated name.
    from nerkit.cli import build_app

    res = CliRunner().invoke(build_app(), ["search", "--name", "", "--storage", str(tmp_path)])
    assert isinstance(res.exception, ValueError) and "search name is ''" in str(res.exception)
    assert not any(tmp_path.iterdir())
