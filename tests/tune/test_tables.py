"""Trial tables from a real search, and their Parquet files."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tune.parquet import read_tables, schema_version, to_arrow, write_tables
from tune.stop_reasons import REASONS
from tune.summary import best_row
from tune.tables import SCHEMA_VERSION


def test_one_row_per_trial_of_the_search(finished_search, search_tables):
    # The trial table holds exactly the trials Ray ran, each with its history.
    ray_ids = {r.metrics["trial_id"] for r in finished_search.results}
    assert len(search_tables.trials) == 8
    assert {t["trial_id"] for t in search_tables.trials} == ray_ids
    evaluations = Counter(h["trial_id"] for h in search_tables.history)
    assert all(evaluations[t["trial_id"]] >= t["evaluations"] >= 1 for t in search_tables.trials)


def test_each_trial_row_says_the_precision_it_computed_in(search_tables):
    # `precision: auto` resolves per machine (bf16 where the hardware has bf16 units), so
    # the row records what the trial actually ran, as training resolved it on this host.
    import torch

    from nerkit.config import TrainConfig
    from nerkit.precision import compute_precision

    expected = compute_precision(TrainConfig(), torch.device("cpu"))
    assert {t["compute_precision"] for t in search_tables.trials} == {expected}


def test_stop_reasons_agree_with_ray(finished_search, search_tables):
    # error ⇔ Ray error; completed/diverged ⇔ the run's own final report; the rest were stopped early.
    by_id = {t["trial_id"]: t for t in search_tables.trials}
    for result in finished_search.results:
        row = by_id[result.metrics["trial_id"]]
        assert row["stop_reason"] in REASONS
        assert (row["stop_reason"] == "error") == (result.error is not None)
        if result.error is None:
            ended_itself = bool(result.metrics.get("final"))
            assert ended_itself == (row["stop_reason"] in ("completed", "diverged"))
    counts = Counter(t["stop_reason"] for t in search_tables.trials)
    assert sum(counts.values()) == 8 and counts["completed"] >= 1


def test_with_a_checkpoint_at_every_evaluation_the_checkpoint_is_the_best_evaluation(search_tables):
    # The default (--checkpoint-every 1): each trial's checkpoint holds its best evaluation,
    # and the row says so (tests/tune/test_search.py covers sparser checkpoints).
    for t in search_tables.trials:
        assert t["checkpoint"], t["trial_id"]
        assert t["checkpoint_eval_index"] == t["best_eval_index"]
        assert t["checkpoint_dev_f1"] == pytest.approx(t["best_dev_f1"])


def test_best_row_is_the_best_dev_evaluation(search_tables):
    # best_row picks the trial whose history holds the highest dev F1.
    top = max((h for h in search_tables.history if h["stop_reason"] != "diverged"), key=lambda h: h["dev_f1"])
    best = best_row(search_tables)
    assert best["trial_id"] == top["trial_id"]
    assert best["best_dev_f1"] == pytest.approx(top["dev_f1"])
    assert best["checkpoint"]


def test_every_best_column_comes_from_the_best_evaluation(search_tables):
    # best_dev_f1, best_token_accuracy and each best_f1_<TYPE> describe one evaluation, the
    # best one, not a mix of it and the trial's last evaluation.
    by_trial = {}
    for h in search_tables.history:
        by_trial.setdefault(h["trial_id"], {})[h["eval_index"]] = h
    best_not_last = 0
    for row in search_tables.trials:
        if row["best_eval_index"] is None:
            continue
        h = by_trial[row["trial_id"]][row["best_eval_index"]]
        assert row["best_dev_f1"] == h["dev_f1"]
        assert row["best_token_accuracy"] == h["dev_token_accuracy"]
        per_type = {k[len("best_f1_"):]: v for k, v in row.items() if k.startswith("best_f1_") and v is not None}
        assert per_type == {k[len("f1_"):]: v for k, v in h.items() if k.startswith("f1_") and v is not None}
        best_not_last += row["best_eval_index"] != row["last_eval_index"]
    assert best_not_last, "every trial's best evaluation is its last: the check above proves nothing"


def test_parquet_round_trips_with_pandas_and_pyarrow(search_tables, tmp_path):
    # Both files read back with pandas and pyarrow alone, same rows, version in the metadata.
    trials_uri, history_uri = write_tables(search_tables, str(tmp_path))
    trials, history = read_tables(str(tmp_path))
    assert len(trials) == len(search_tables.trials) and len(history) == len(search_tables.history)
    assert list(trials.columns) == list(dict.fromkeys(k for r in search_tables.trials for k in r))
    for row in search_tables.trials:
        got = trials.set_index("trial_id").loc[row["trial_id"]]
        for key, value in row.items():
            if key == "trial_id":
                continue
            if value is None:
                assert pd.isna(got[key]), key
            elif isinstance(value, float):
                assert got[key] == pytest.approx(value), key
            else:
                assert got[key] == value, key
    assert pd.read_parquet(trials_uri)["best_dev_f1"].dtype == "float64"
    meta = pq.read_schema(history_uri).metadata
    assert meta[b"nerkit.schema_version"] == str(SCHEMA_VERSION).encode()
    assert schema_version(trials_uri) == SCHEMA_VERSION
    assert pq.read_table(history_uri).column("collapsed").type == pa.bool_()


def test_arrow_schema_is_built_from_the_union_of_rows():
    # Rows with different keys share one schema; missing → null; types follow the values.
    rows = [{"trial_id": "a", "param_x": 1, "flag": True, "mixed": 1},
            {"trial_id": "b", "param_x": 0.5, "f1_LOC": 0.2, "mixed": "two"}]
    table = to_arrow(rows, "trials")
    assert table.column_names == ["trial_id", "param_x", "flag", "mixed", "f1_LOC"]
    assert table.schema.field("param_x").type == pa.float64()
    assert table.schema.field("flag").type == pa.bool_()
    assert table.schema.field("mixed").type == pa.string()
    assert table.column("f1_LOC").to_pylist() == [None, 0.2]
    assert table.schema.metadata[b"nerkit.table"] == b"trials"


def test_a_declared_choice_column_has_its_type_before_every_value_is_sampled():
    # A choice of [1, 0.5] was int64 while only 1 had been sampled and double once 0.5
    # was: snapshots of one search must share a schema for readers that combine them.
    table = to_arrow([{"trial_id": "a", "param_bs": 1}], "trials", {"trial_id": "", "param_bs": [1, 0.5]})
    assert table.schema.field("param_bs").type == pa.float64() and table.column("param_bs").to_pylist() == [1.0]


def test_a_reader_does_not_write_its_tables_over_ones_read_later(tmp_path):
    # `nerkit trials` that read a running search can finish after the search wrote its
    # final tables: newer_only leaves those; the search's own write (the default) does not ask.
    from tune.tables import TrialTables

    def tables(status, at):
        return TrialTables(str(tmp_path), {}, [{"trial_id": "a", "status": status}], [], collected_at=at)

    write_tables(tables("TERMINATED", 200.0))
    write_tables(tables("RUNNING", 100.0), newer_only=True)
    assert read_tables(str(tmp_path))[0]["status"].tolist() == ["TERMINATED"]
    write_tables(tables("RUNNING", 300.0), newer_only=True)
    assert read_tables(str(tmp_path))[0]["status"].tolist() == ["RUNNING"]
    write_tables(tables("TERMINATED", 250.0))
    assert read_tables(str(tmp_path))[0]["status"].tolist() == ["TERMINATED"]


def test_empty_tables_still_write(tmp_path):
    # A search that has not started a trial yet still gets readable (empty) files.
    from tune.tables import TrialTables

    write_tables(TrialTables(str(tmp_path), {}, [], []))
    trials, history = read_tables(str(tmp_path))
    assert len(trials) == 0 and "trial_id" in trials.columns and len(history) == 0


def test_all_null_column_is_a_nullable_float():
    # A column nobody filled (e.g. a conditional parameter) is float64, all NaN in pandas.
    table = to_arrow([{"trial_id": "a", "param_gamma": None}], "trials")
    assert table.schema.field("param_gamma").type == pa.float64()
    assert math.isnan(table.to_pandas()["param_gamma"][0])


def test_a_result_log_cut_short_falls_back_to_rays_last_result(finished_search, search_tables, tmp_path):
    # The best trial's result.json is cut back to its first evaluation (a full disk, a
    # hand edit): its row keeps its real best from Ray's record, and says the log is short.
    import shutil

    from tune.tables import collect

    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    # The best of the trials that evaluated more than once (ASHA lets the shared search's
    # leaders run all 3 epochs, so there always is one; a skip here would hide a broken search).
    longer = [t for t in search_tables.trials if t["evaluations"] >= 2]
    assert longer, [(t["trial_id"], t["evaluations"]) for t in search_tables.trials]
    best = max(longer, key=lambda t: t["best_dev_f1"] or -1)
    log = exp / f"trial_{best['trial_id']}" / "result.json"
    log.write_text(log.read_text().splitlines()[0] + "\n")
    rows = {t["trial_id"]: t for t in collect(str(exp)).trials}
    row = rows[best["trial_id"]]
    assert row["results_incomplete"] is True and row["last_eval_index"] == best["last_eval_index"]
    f1 = {h["eval_index"]: h["dev_f1"] for h in search_tables.history if h["trial_id"] == best["trial_id"]}
    assert row["best_dev_f1"] == pytest.approx(max(f1[0], f1[best["last_eval_index"]]))  # what is left of it
    assert all(r["results_incomplete"] is False for tid, r in rows.items() if tid != best["trial_id"])


@pytest.mark.parametrize("damage", ["cut", "bytes"])
def test_a_damaged_line_is_filled_in_from_rays_record_of_the_checkpoint(finished_search, search_tables, tmp_path,
                                                                         damage):
    # One line of result.json that does not parse: Ray's reader dropped the trial's whole
    # log (its row fell back to the last result, and a collapsed trial read as pruned).
    # Then the line's evaluation was left out, and with it possibly the trial's best: the
    # table named another best than promotion. Ray keeps every checkpointed evaluation's
    # metrics, so the row and the history are whole again, and flagged.
    import shutil

    from tune.tables import collect

    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    row = max(search_tables.trials, key=lambda t: t["evaluations"])
    assert row["evaluations"] >= 3  # the shared search runs its leaders 3 epochs (ASHA keeps the top half)
    log = exp / f"trial_{row['trial_id']}" / "result.json"
    lines = log.read_bytes().splitlines()
    # Cut in half, or one byte that is not UTF-8 (which used to stop the whole table).
    lines[1] = lines[1][: len(lines[1]) // 2] if damage == "cut" else lines[1][:20] + b"\xff" + lines[1][21:]
    log.write_bytes(b"\n".join(lines) + b"\n")
    tables = collect(str(exp))
    again = {t["trial_id"]: t for t in tables.trials}[row["trial_id"]]
    assert again["evaluations"] == row["evaluations"] and again["results_incomplete"] is True
    same = ("stop_reason", "last_eval_index", "best_dev_f1", "best_eval_index", "checkpoint_eval_index",
            "tokens_trained")
    assert {k: again[k] for k in same} == {k: row[k] for k in same}
    history = lambda t: [(h["eval_index"], h["dev_f1"]) for h in t.history if h["trial_id"] == row["trial_id"]]  # noqa: E731
    assert history(tables) == history(search_tables)
    where = ("experiment", "checkpoint")  # the copy's own
    others = [{k: v for k, v in t.items() if k not in where} for t in tables.trials if t["trial_id"] != row["trial_id"]]
    assert others == [{k: v for k, v in t.items() if k not in where}
                      for t in search_tables.trials if t["trial_id"] != row["trial_id"]]


def test_a_cut_off_snapshot_is_read_from_its_backup_or_refused(finished_search, search_tables, tmp_path, caplog):
    # A driver killed while Ray copied its snapshot leaves it cut off; Ray's reader fails
    # on it, and the tables used to come out empty (and overwrote the good Parquet files).
    import shutil

    from tune.snapshot import newest_snapshot
    from tune.state_backup import BACKUP_DIR
    from tune.tables import collect

    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    snapshot = newest_snapshot(str(exp))
    data = open(snapshot, "rb").read()
    open(snapshot, "wb").write(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="tune.ray_record"):
        tables = collect(str(exp))
    assert "is cut off" in caplog.text and BACKUP_DIR in caplog.text
    assert {t["trial_id"] for t in tables.trials} == {t["trial_id"] for t in search_tables.trials}
    shutil.rmtree(exp / BACKUP_DIR)
    with pytest.raises(ValueError, match="cut off.*no complete copy"):
        collect(str(exp))


def test_a_missing_snapshot_is_read_from_its_backup_never_as_no_trials(finished_search, search_tables, tmp_path,
                                                                        caplog):
    # A partial copy of a finished search (no experiment_state-*.json) read as a search
    # with no trial: "0 of 0 trials", and the stored Parquet tables replaced by empty ones.
    import shutil

    from tune.state_backup import BACKUP_DIR
    from tune.tables import collect

    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    for snapshot in exp.glob("experiment_state-*.json"):
        snapshot.unlink()
    with caplog.at_level("WARNING", logger="tune.ray_record"):
        tables = collect(str(exp))
    assert "has no experiment_state-*.json" in caplog.text and BACKUP_DIR in caplog.text
    keys = ("trial_id", "best_dev_f1", "evaluations", "checkpoint_eval_index")
    assert [{k: t[k] for k in keys} for t in tables.trials] == [{k: t[k] for k in keys} for t in search_tables.trials]
    assert all(t["checkpoint"].startswith(str(exp)) for t in tables.trials if t["checkpoint"])  # the copy's own
    shutil.rmtree(exp / BACKUP_DIR)
    with pytest.raises(ValueError, match="has no experiment_state.*no complete copy"):
        collect(str(exp))


def test_each_row_says_how_many_threads_its_trial_used(search_tables):
    # The space leaves num_threads unset (a trial takes the CPUs Ray assigns it); the row
    # says what that came to, one per CPU of the trial's reservation, and so does its
    # config: the row's config is the one its checkpoints hold, which re-runs bit for bit.
    ran = [t for t in search_tables.trials if t["evaluations"]]
    assert ran and all(t["num_threads"] == 1 for t in ran)
    assert all(json.loads(t["config"])["num_threads"] == 1 for t in ran)
    for t in ran:
        if t["checkpoint"]:
            saved = json.loads((Path(t["checkpoint"]) / "nerkit_config.json").read_text())
            assert json.loads(t["config"]) == saved


def test_a_trial_whose_settings_make_no_config_still_gets_a_row():
    # A space from before settings were checked together (entity_o_ratio with o_weight)
    # failed every trial, and then `nerkit trials` raised on the first one.
    from nerkit.config import TrainConfig
    from tune.tables import _config_json

    config = json.loads(_config_json(TrainConfig().to_dict(), {"entity_o_ratio": 3.0, "o_weight": 0.5}))
    assert config["entity_o_ratio"] == 3.0 and config["o_weight"] == 0.5
    assert json.loads(_config_json(TrainConfig().to_dict(), {"o_weight": 0.5}))["o_weight"] == 0.5


def test_a_baseline_names_only_its_own_trial():
    # In a small choice space the sampler can draw a baseline's point again: that trial
    # was labelled the baseline too, and the summary and report showed the baseline twice.
    from tune.tables import _baseline_name

    baselines = [{"name": "b1", "params": {"batch_size": 16}}]
    named: set[str] = set()
    assert [_baseline_name({"batch_size": s}, baselines, named) for s in (16, 8, 16)] == ["b1", "", ""]


def test_a_diverged_stand_in_report_is_no_history_row(finished_search, search_tables, tmp_path):
    # A diverged trial's last report (dev F1 0, precision and per-type F1 copied from its
    # last evaluation) read as one more evaluation: a drop to 0 on the learning curve.
    import shutil

    from tune.tables import collect

    exp = tmp_path / finished_search.name
    shutil.copytree(finished_search.path, exp)
    row = max(search_tables.trials, key=lambda t: t["evaluations"])
    log = exp / f"trial_{row['trial_id']}" / "result.json"
    last = json.loads(log.read_text().splitlines()[-1])
    stand_in = {**last, "dev_f1": 0.0, "entity_pred_ratio": 0.0, "final": True, "stop_reason": "diverged",
                "eval_index": last["eval_index"] + 1}
    log.write_text(log.read_text() + json.dumps(stand_in) + "\n")
    tables = collect(str(exp))
    kept = [h for h in tables.history if h["trial_id"] == row["trial_id"]]
    assert [h["eval_index"] for h in kept] == list(range(row["evaluations"]))
    again = {t["trial_id"]: t for t in tables.trials}[row["trial_id"]]
    assert again["best_dev_f1"] == row["best_dev_f1"] and again["evaluations"] == row["evaluations"]


def test_rows_come_in_the_order_trials_were_created(search_tables):
    # Ray's snapshot lists trials in no fixed order (not even the same before and after a
    # resume), and the first of equal bests is the one the summary and promotion name.
    from ray.tune import ExperimentAnalysis

    from tune.trial_order import trial_number

    created = {t.trial_id: trial_number(t.experiment_tag) for t in ExperimentAnalysis(search_tables.experiment).trials}
    numbers = [created[t["trial_id"]] for t in search_tables.trials]
    assert len(numbers) > 2 and numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
