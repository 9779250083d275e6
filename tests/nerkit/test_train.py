"""Tests for nerkit.train: reports, evaluation cadence, early stopping, divergence, exact resume."""

from __future__ import annotations

import math

import pytest
import torch

import nerkit.features
import nerkit.precision
import nerkit.train
import nerkit.training_run
from nerkit.config import TrainConfig
from nerkit.data import DataConfig
from nerkit.features import prepare_data
from nerkit.train import train

REPORT_KEYS = {"step", "epoch", "eval_index", "dev_f1", "dev_precision", "dev_recall", "dev_loss",
               "train_loss", "entity_pred_ratio", "gold_entity_ratio", "collapsed", "tokens_per_s",
               "per_type", "final", "entity_o_ratio", "compute_precision"}
TIMING_KEYS = {"tokens_per_s", "train_seconds"}  # wall-clock, never reproducible


@pytest.fixture()
def cfg(tiny_model_dir, small_data_dir) -> TrainConfig:
    # 160 train records / batch 16 = 10 steps per epoch.
    return TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), epochs=2,
                       batch_size=16, learning_rate=1e-3, num_threads=1, weight_strategy="seed",
                       o_weight=0.5, entity_boost=3.0)


@pytest.fixture()
def models(monkeypatch) -> list:
    """Every model train() builds, in order (so a test can read its final parameters)."""
    built: list = []
    real_load = nerkit.train.load_model
    monkeypatch.setattr(nerkit.train, "load_model", lambda *a: built.append(real_load(*a)) or built[-1])
    return built


def _run(cfg, **kwargs):
    reports: list = []
    result = train(cfg, report=lambda m, save: reports.append(m), **kwargs)
    return result, reports


def _floats(metrics: dict):
    for key, value in metrics.items():
        if isinstance(value, float):
            yield key, value
        elif isinstance(value, dict):
            yield from _floats(value)


def test_report_each_epoch_with_documented_keys(cfg):
    # Two epochs: two reports at steps 10 and 20 with every documented metric; only the last is final.
    seen = []

    def report(metrics, save):
        assert callable(save)
        seen.append(metrics)

    result = train(cfg, report=report)
    assert result.status == "completed"
    assert [m["step"] for m in seen] == [10, 20]
    assert [m["epoch"] for m in seen] == [1.0, 2.0]
    assert [m["eval_index"] for m in seen] == [0, 1]
    assert [m["final"] for m in seen] == [False, True]
    for m in seen:
        assert REPORT_KEYS <= set(m)
        assert m["tokens_per_s"] > 0 and m["dev_loss"] > 0 and 0 < m["gold_entity_ratio"] < 1
        assert isinstance(m["per_type"], dict)
        assert all(math.isfinite(v) for _, v in _floats(m))
    assert result.history == seen
    assert result.best == max(seen, key=lambda m: m["dev_f1"]) and result.last == seen[-1]


def test_eval_every_n_steps(cfg):
    # eval_every_steps=4 over 10 steps evaluates at 4, 8 and the last step.
    result, reports = _run(cfg.with_overrides(epochs=1, eval_every_steps=4))
    assert [m["step"] for m in reports] == [4, 8, 10]
    assert [m["epoch"] for m in reports] == [0.4, 0.8, 1.0]
    assert result.status == "completed"


@pytest.mark.parametrize("batch_size", [16, 8])
def test_evals_per_epoch_spreads_evaluations_evenly_whatever_the_batch_size(cfg, batch_size):
    # 3 evaluations per epoch: the j-th reports an epoch of at least j/3 (so an ASHA rung
    # there is met, not missed) and within one batch of it, at 10 and at 20 steps per epoch.
    result, reports = _run(cfg.with_overrides(epochs=2, evals_per_epoch=3, batch_size=batch_size))
    per_epoch = 160 // batch_size
    epochs = [m["epoch"] for m in reports]
    assert len(epochs) == 6 and epochs[2] == 1.0 and epochs[5] == 2.0
    for j, epoch in enumerate(epochs, start=1):
        assert j / 3 <= epoch < j / 3 + 1 / per_epoch
    assert result.status == "completed"


def test_on_step_sees_every_step(cfg):
    # on_step is called after each optimizer step with (step, total).
    calls = []
    train(cfg.with_overrides(epochs=0.5), on_step=lambda s, t: calls.append((s, t)))
    assert calls == [(s, 5) for s in range(1, 6)]


def test_early_stopping(cfg):
    # With a learning rate too small to change predictions, F1 stalls: patience 2 stops at step 3.
    result, reports = _run(cfg.with_overrides(learning_rate=1e-12, eval_every_steps=1, early_stopping_patience=2))
    assert result.status == "early_stopped"
    assert [m["step"] for m in reports] == [1, 2, 3]
    assert [m["final"] for m in reports] == [False, False, True]


def test_a_run_resumed_from_the_evaluation_that_stopped_it_early_stays_stopped(cfg, tmp_path):
    # A Ray retry after a failure past a trial's final report restores its final checkpoint;
    # an early-stopped run must end there as it did, not train on and report more.
    cfg = cfg.with_overrides(learning_rate=1e-12, eval_every_steps=1, early_stopping_patience=2)
    saved: list[str] = []
    full = train(cfg, report=lambda m, save: saved.append(str(save(tmp_path / f"ckpt{m['eval_index']}"))))
    assert full.status == "early_stopped" and len(saved) == 3
    resumed, reports = _run(cfg, resume_from=saved[-1])
    assert resumed.status == "early_stopped"
    assert reports == []
    assert resumed.history == full.history and resumed.best == full.best


def test_huge_learning_rate_diverges_cleanly(cfg):
    # lr=1e6 ends as 'diverged' without raising, and nothing non-finite is ever reported.
    for strategy in ("none", "seed"):
        result, reports = _run(cfg.with_overrides(learning_rate=1e6, eval_every_steps=1, weight_strategy=strategy,
                                                  o_weight=1.0, entity_boost=1.0))
        assert result.status == "diverged"
        assert result.history == reports and len(reports) < 20
        for m in reports:
            assert all(math.isfinite(v) for _, v in _floats(m)), m


def test_injected_nan_loss_diverges(cfg, monkeypatch):
    # A NaN training loss at the third step stops the run as diverged after two finite reports.
    calls = [0]
    real_loss = nerkit.training_run.token_loss

    def loss_with_nan(*args):
        calls[0] += 1
        loss = real_loss(*args)
        return loss * float("nan") if calls[0] == 3 else loss

    monkeypatch.setattr(nerkit.training_run, "token_loss", loss_with_nan)
    result, reports = _run(cfg.with_overrides(eval_every_steps=1))
    assert result.status == "diverged"
    assert [m["step"] for m in reports] == [1, 2]
    assert all(math.isfinite(v) for m in reports for _, v in _floats(m))


def test_a_finite_loss_with_a_non_finite_gradient_diverges_before_the_update(cfg, monkeypatch):
    # 0 * sqrt(0) is a finite 0 whose gradient is 0 * inf = NaN: the step that produced it
    # must not be applied, so the two reports before it stay the last, finite ones.
    calls = [0]
    real_loss = nerkit.training_run.token_loss

    def loss_with_nan_gradient(logits, *args):
        calls[0] += 1
        loss = real_loss(logits, *args)
        return loss + 0.0 * (logits.sum() * 0.0).sqrt() if calls[0] == 3 else loss

    monkeypatch.setattr(nerkit.training_run, "token_loss", loss_with_nan_gradient)
    applied: list[int] = []
    result, reports = _run(cfg.with_overrides(eval_every_steps=1), on_step=lambda step, total: applied.append(step))
    assert result.status == "diverged"
    assert applied == [1, 2]  # the third update never ran
    assert [m["step"] for m in reports] == [1, 2]
    assert all(math.isfinite(v) for m in reports for _, v in _floats(m))


@pytest.mark.parametrize("eval_every_steps", [None, 3], ids=["epoch-boundary", "mid-epoch"])
def test_exact_resume(cfg, models, checkpoint_at_first_eval, eval_every_steps):
    # Interrupted after the first evaluation and resumed, training ends exactly where it would have.
    cfg = cfg.with_overrides(eval_every_steps=eval_every_steps)
    full, full_reports = _run(cfg)
    full_params = models[-1].state_dict()

    resumed, resumed_reports = _run(cfg, resume_from=checkpoint_at_first_eval(cfg))
    resumed_params = models[-1].state_dict()

    assert full_params.keys() == resumed_params.keys()
    for name in full_params:
        assert torch.equal(full_params[name], resumed_params[name]), name
    assert len(resumed_reports) == len(full_reports) - 1
    drop = lambda m: {k: v for k, v in m.items() if k not in TIMING_KEYS}  # noqa: E731
    assert [drop(m) for m in resumed_reports] == [drop(m) for m in full_reports[1:]]
    assert [drop(m) for m in resumed.history] == [drop(m) for m in full.history]
    assert resumed.status == full.status == "completed"


def test_data_is_tokenised_once(cfg, monkeypatch):
    # prepare_data is cached, and a 2-epoch run re-tokenises nothing.
    calls = []
    real_align = nerkit.features.align_records
    monkeypatch.setattr(nerkit.features, "_CACHE", {})
    monkeypatch.setattr(nerkit.features, "align_records", lambda *a: calls.append(1) or real_align(*a))
    first = prepare_data(cfg.data, cfg.model, cfg.max_length, cfg.label_all_subwords)
    assert len(calls) == 3  # train, dev, test
    again = prepare_data(cfg.data, cfg.model, cfg.max_length, cfg.label_all_subwords)
    assert (again.train, again.dev, again.test) == (first.train, first.dev, first.test) and again.train is first.train
    train(cfg)
    assert len(calls) == 3
    prepare_data(cfg.data, cfg.model, cfg.max_length - 1, cfg.label_all_subwords)
    assert len(calls) == 6  # another max_length is another key


def test_data_prepared_for_other_settings_is_refused(cfg):
    # A search prepares its data once; a trial whose max_length or label_all_subwords
    # differed trained on the other data and recorded settings it never used.
    prepared = prepare_data(cfg.data, cfg.model, cfg.max_length, cfg.label_all_subwords)
    for change in ({"max_length": 16}, {"label_all_subwords": True}):
        with pytest.raises(ValueError, match="the prepared data is for max_length=128, label_all_subwords=False"):
            train(cfg.with_overrides(**change), prepared=prepared)


def test_output_dir_and_test_metrics(cfg, tmp_path):
    # With output_dir and evaluate_test the best model is saved and scored on test.
    result = train(cfg.with_overrides(epochs=1), output_dir=tmp_path / "model", evaluate_test=True)
    assert result.output_dir == tmp_path / "model"
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert result.test is not None and 0 <= result.test["f1"] <= 1 and result.test["counted_tokens"] > 0


def test_freeze_embeddings_keeps_word_embeddings_fixed(cfg, models):
    # With freeze_embeddings the word-embedding matrix ends exactly where it started,
    # while the rest of the encoder trains.
    from nerkit.model import load_model

    before = load_model(cfg.model, prepare_data(cfg.data, cfg.model).label_map)
    train(cfg.with_overrides(freeze_embeddings=True, epochs=1))
    after = models[-1].cpu()  # it may have trained on a GPU; `before` never left the CPU
    assert torch.equal(after.get_input_embeddings().weight, before.get_input_embeddings().weight)
    assert not torch.equal(after.classifier.weight, before.classifier.weight)


@pytest.mark.parametrize(("native", "expected"), [(False, "fp32"), (True, "bf16")])
def test_a_run_trains_and_reports_in_the_precision_it_used(cfg, monkeypatch, native, expected):
    # Real training in each precision; every report and the result say which one ran,
    # because `auto` resolves differently from machine to machine.
    monkeypatch.setattr(nerkit.precision, "cpu_has_native_bf16", lambda: native)
    result, reports = _run(cfg.with_overrides(epochs=1, device="cpu"))  # CPU even where a GPU exists
    assert result.status == "completed" and result.compute_precision == expected
    assert [m["compute_precision"] for m in reports] == [expected]
    assert math.isfinite(reports[0]["train_loss"]) and reports[0]["train_loss"] > 0


def test_resumed_run_saves_and_tests_the_best_model(cfg, tmp_path):
    # Checkpoints at every evaluation. Resumed from the best evaluation's checkpoint, the
    # saved model and its test score are the uninterrupted run's; resumed from a later,
    # worse one, whose weights are not the best, output_dir/evaluate_test are refused.
    # On the CPU even where a GPU exists: the test needs a worse evaluation after the best,
    # which this data and seed give in CPU arithmetic (on an H100, in bf16, dev F1 peaked at
    # the last two evaluations), and a resumed history equal to the uninterrupted one bit for
    # bit, which torch promises on CUDA only with deterministic algorithms switched on.
    cfg = cfg.with_overrides(eval_every_steps=4, epochs=3, device="cpu")
    saved: dict[int, str] = {}

    def keep(metrics, save):
        saved[metrics["eval_index"]] = str(save(tmp_path / f"ckpt{metrics['eval_index']}"))

    full = train(cfg, report=keep, output_dir=tmp_path / "full", evaluate_test=True)
    f1s = [m["dev_f1"] for m in full.history]
    best = f1s.index(max(f1s))
    resumed = train(cfg, resume_from=saved[best], output_dir=tmp_path / "resumed", evaluate_test=True)
    assert resumed.test == full.test and resumed.best == full.best
    later = [i for i in range(best + 1, len(f1s) - 1) if f1s[i] < f1s[best]]
    assert later, f"this run's dev F1 {f1s} needs a worse evaluation after its best"
    with pytest.raises(ValueError, match="best evaluation was at step"):
        train(cfg, resume_from=saved[later[0]], output_dir=tmp_path / "x")
    drop = lambda m: {k: v for k, v in m.items() if k not in TIMING_KEYS}  # noqa: E731
    resumed_late = train(cfg, resume_from=saved[later[0]])  # without them it resumes
    assert [drop(m) for m in resumed_late.history] == [drop(m) for m in full.history]


def test_a_run_that_ends_before_its_first_evaluation_saves_no_model(cfg, tmp_path):
    # Diverged at once: no evaluation chose a model, so none is written.
    result = train(cfg.with_overrides(learning_rate=1e6, precision="fp32", epochs=1), output_dir=tmp_path / "m")
    assert result.status == "diverged" and not result.history
    assert result.output_dir is None and not (tmp_path / "m").exists()


def test_a_train_split_without_entities_is_refused(tiny_model_dir, tmp_path, corpus_slice):
    import json as _json

    data = corpus_slice(tmp_path, 20, 10, 10)
    rows = [_json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    (data / "train.jsonl").write_text("".join(_json.dumps({**r, "entities": []}) + "\n" for r in rows))
    with pytest.raises(ValueError, match="the train split has no entity tokens"):
        train(TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(data)), epochs=1, num_threads=1))


def test_max_length_past_the_models_positions_is_refused_before_training(cfg):
    # The tiny model has 128 position embeddings while its tokenizer says 512: a
    # max_length between the two passed alignment and crashed in the first long batch.
    from dataclasses import replace

    with pytest.raises(ValueError, match=r"max_length is 200, but this model takes at most 128 subwords"):
        train(replace(cfg, max_length=200), report=lambda m, save: pytest.fail("trained"))


@pytest.mark.parametrize("files", [
    {"notes.txt": "mine"},
    # A project folder's config.json passed for a model's, and its src/ was deleted.
    {"config.json": '{"name": "my-app"}', "src/main.py": "print(1)", "notes.txt": "mine"},
    # Even nerkit's own files beside a folder of the user's.
    {"config.json": "{}", "nerkit_config.json": "{}", "src/main.py": "print(1)"},
    # An earlier model's files with a note of the user's beside them: the note was deleted.
    {"config.json": "{}", "nerkit_config.json": "{}", "tokenizer.json": "{}", "notes.txt": "mine"},
])
def test_output_dir_that_holds_something_else_is_refused_before_training(cfg, tmp_path, files):
    # Model files landed beside whatever the directory held; an earlier run's model is
    # still replaced (tests/nerkit/test_checkpoint.py).
    out = tmp_path / "out"
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    with pytest.raises(ValueError, match="is not empty and is not a model directory nerkit wrote") as e:
        train(cfg, output_dir=out, report=lambda m, save: pytest.fail("trained"))
    assert "notes.txt" in str(e.value) or "src/" in str(e.value)  # what is in the way is named
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(files)


@pytest.mark.parametrize("loss, gamma", [("focal", 2.0), ("ce", 0.0)])
def test_every_step_minimises_the_configured_weighted_loss(cfg, monkeypatch, loss, gamma):
    # Each optimizer step's loss is token_loss with the run's class weights (seed strategy,
    # O 0.5, boost 3) and its focal gamma (0 for CE), and train_loss reports their mean: a
    # run that dropped the weights or the gamma still trained, and only its F1 showed it.
    from nerkit.weights import class_weights

    steps = []
    real = nerkit.training_run.token_loss

    def spy(logits, labels, weights=None, gamma=0.0):
        value = real(logits, labels, weights, gamma)
        steps.append((weights, gamma, float(value.detach())))
        return value

    monkeypatch.setattr(nerkit.training_run, "token_loss", spy)
    run = cfg.with_overrides(loss=loss, gamma=2.0, epochs=1)
    _, reports = _run(run)
    prepared = prepare_data(run.data, run.model, run.max_length, run.label_all_subwords)
    expected = class_weights(prepared.train_counts, "seed", 0.5, 3.0, run.smoothing, run.beta, None, None)
    assert len(steps) == 10
    for weights, used_gamma, _ in steps:
        assert used_gamma == gamma
        assert weights.tolist() == pytest.approx(expected)
    assert expected[prepared.label_map.o_id] < min(w for i, w in enumerate(expected) if i != prepared.label_map.o_id)
    assert reports[0]["train_loss"] == pytest.approx(sum(v for *_, v in steps) / len(steps), rel=1e-6)


def test_a_saved_config_names_its_data_and_refuses_data_changed_since(cfg, small_data_dir, tmp_path):
    # A checkpoint's config re-run with `nerkit train --config` trained on whatever the
    # path held by then, silently. Now the config carries the data's fingerprint.
    import json
    import shutil

    from nerkit.cli.options import build_train_config, data_options

    data = tmp_path / "data"
    shutil.copytree(small_data_dir, data)
    run = cfg.with_overrides(data=DataConfig(path=str(data)), epochs=1)
    train(run, output_dir=tmp_path / "out")
    saved = tmp_path / "out" / "nerkit_config.json"
    fingerprint = json.loads(saved.read_text())["data"]["fingerprint"]
    assert fingerprint == json.loads((tmp_path / "out" / "metrics.json").read_text())["fingerprint"]
    lines = (data / "train.jsonl").read_text(encoding="utf-8").splitlines()
    (data / "train.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"is not the data this config was run on: .*config's data.fingerprint "
                                         rf"{fingerprint[:12]}.*remove data.fingerprint"):
        train(build_train_config(saved, data_options(), {}))
    # Naming the data again on the command line means this data, as it is now.
    assert build_train_config(saved, data_options(data=str(data)), {}).data.fingerprint is None


def test_tf32_is_allowed_for_a_cuda_run_only_while_it_trains():
    # train() set TF32 for the whole process: promote --confirm-seeds then scored the
    # published copy with TF32 matmuls, a plain promote without.
    import torch

    from nerkit.train import _tf32

    flags = lambda: (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)  # noqa: E731
    saved = flags()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with _tf32(True):
            assert flags() == (True, True)
        assert flags() == (False, False)
        with _tf32(False):
            assert flags() == (False, False)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
