"""Tests for tune.ray_record: reading Ray's record of a trial."""

from __future__ import annotations


def test_the_error_column_holds_plain_text():
    # Ray colours the frames of a trial's trace for terminals; the escape codes reached the
    # Parquet table, --csv and --json. Only an errored trial has an error.
    from types import SimpleNamespace

    from tune.ray_record import trial_error

    trace = "Failure # 1\n\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1)\nValueError: boom"
    failed = SimpleNamespace(status="ERROR", get_error=lambda: trace)
    assert trial_error(failed) == "Failure # 1\nray::ImplicitFunc.train() (pid=1)\nValueError: boom"
    assert trial_error(SimpleNamespace(status="TERMINATED", get_error=lambda: trace)) == ""


def test_the_checkpoint_named_is_from_the_trials_last_start():
    # After a start from scratch (a damaged checkpoint, tune.trainable) the abandoned run's
    # checkpoints stay registered with Ray, and tie the re-run's F1s: the first of equals
    # was the damaged one.
    from types import SimpleNamespace

    from tune.ray_record import best_checkpoint, last_start

    results = [{"eval_index": 0, "training_iteration": 1}, {"eval_index": 1, "training_iteration": 2},
               {"eval_index": 0, "training_iteration": 3}, {"eval_index": 1, "training_iteration": 4}]
    ranked = [SimpleNamespace(checkpoint=name, metrics={"dev_f1": 0.5, "training_iteration": it, "eval_index": 0})
              for name, it in (("abandoned", 1), ("kept", 3))]
    trial = SimpleNamespace(run_metadata=SimpleNamespace(checkpoint_manager=SimpleNamespace(
        best_checkpoint_results=ranked)))
    assert last_start(results) == 3
    assert best_checkpoint(trial, last_start(results))[0] == "kept"
    assert best_checkpoint(trial)[0] == "abandoned"  # Ray's own choice, first of equals


def test_a_trial_row_reads_only_the_run_of_its_last_start():
    # Trained again from scratch and stopped after 2 evaluations, the trial's row took the
    # abandoned run's evaluations 2 and 3 (and its best, 0.9) for its own.
    from tune.ray_record import since_last_start
    from tune.stop_reasons import last_per_evaluation

    abandoned = [{"eval_index": i, "training_iteration": i + 1, "dev_f1": f1, "entity_pred_ratio": 0.1}
                 for i, f1 in enumerate((0.2, 0.4, 0.6, 0.9))]
    rerun = [{"eval_index": i, "training_iteration": 5 + i, "dev_f1": f1, "entity_pred_ratio": 0.1}
             for i, f1 in enumerate((0.3, 0.5))]
    assert [r["dev_f1"] for r in last_per_evaluation(abandoned + rerun)] == [0.3, 0.5, 0.6, 0.9]
    assert [r["dev_f1"] for r in last_per_evaluation(since_last_start(abandoned + rerun))] == [0.3, 0.5]
    assert since_last_start(abandoned) == abandoned


def test_a_lost_evaluation_without_a_checkpoint_is_noticed():
    # With --checkpoint-every 2 an evaluation has no checkpoint, so Ray's record cannot
    # give back its lost line; the row must still say the log lacks one (results_incomplete).
    from tune.ray_record import lacks_evaluations

    def log(*evals, start=1):
        return [{"eval_index": e, "training_iteration": start + i} for i, e in enumerate(evals)]

    assert not lacks_evaluations(log(0, 1, 2, 3))
    assert lacks_evaluations(log(0, 1, 3))
    assert not lacks_evaluations([])
    # A restart from scratch: only the last start counts; a restore replays an evaluation.
    assert not lacks_evaluations(log(0, 2) + log(0, 1, start=3))
    assert not lacks_evaluations(log(0, 1, 1, 2))
    # A diverged trial's stand-in (the evaluation after its last) is no evaluation.
    assert not lacks_evaluations(log(0, 1) + [{"eval_index": 2, "stop_reason": "diverged", "training_iteration": 3}])
