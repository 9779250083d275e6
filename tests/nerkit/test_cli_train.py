"""Tests for `nerkit train`: a thin CLI over nerkit.train.train."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from nerkit.cli import build_app
from nerkit.config import TrainConfig
from nerkit.predict import Predictor

MAIN = "from nerkit.cli import main; main()"


def _train(tiny_model_dir, small_data_dir, out, *extra):
    args = ["train", "--model", str(tiny_model_dir), "--data", str(small_data_dir), "--epochs", "1",
            "--output-dir", str(out), "--threads", "1", "--device", "cpu", *extra]
    return CliRunner().invoke(build_app(), args)


def test_train_json_writes_loadable_model(tiny_model_dir, small_data_dir, tmp_path):
    # --json prints a summary and the output directory loads for prediction.
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model", "--json", "--class-weights")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed"
    assert summary["output_dir"] == str(tmp_path / "model")
    assert summary["best"]["step"] == 10 and summary["test"]["counted_tokens"] > 0
    assert summary["entity_o_ratio"] > 1  # --class-weights means the seed recipe
    cfg = TrainConfig.from_dict(json.loads((tmp_path / "model" / "nerkit_config.json").read_text()))
    assert (cfg.weight_strategy, cfg.epochs, cfg.model) == ("seed", 1.0, str(tiny_model_dir))
    (ents,) = Predictor.from_dir(tmp_path / "model", device="cpu").predict(["tushar se 2 misal mangwao"])
    assert isinstance(ents, list)


def test_no_class_weights_overrides_config_file(tiny_model_dir, small_data_dir, tmp_path):
    # --no-class-weights turns a config file's weighting off: uniform weights, entity:O ratio 1.
    config = tmp_path / "train.yaml"
    config.write_text("weight_strategy: seed\no_weight: 0.5\nentity_boost: 3.0\nlearning_rate: 0.002\n")
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model", "--config", str(config),
                    "--no-class-weights", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entity_o_ratio"] == 1.0
    cfg = json.loads((tmp_path / "model" / "nerkit_config.json").read_text())
    assert (cfg["weight_strategy"], cfg["o_weight"], cfg["entity_boost"]) == ("none", 1.0, 1.0)
    assert cfg["learning_rate"] == 0.002  # the rest of the file still applies


def test_metrics_lines_without_json(tiny_model_dir, small_data_dir, tmp_path):
    # Without --json each evaluation prints a metrics line and the save location, whole:
    # read as rich markup, "[/x]" raised after the model was saved (exit 1, "no model").
    out = tmp_path / "exp[lr=1e-4][/x]"
    result = _train(tiny_model_dir, small_data_dir, out)
    assert result.exit_code == 0, result.output
    assert "entity_pred_ratio" in result.stdout and "step 10" in result.stdout
    assert f"model saved to {out}\n" in result.stdout


def test_collapse_warning_shows_the_entity_probability_trend(tiny_model_dir, small_data_dir, tmp_path):
    # A huge O weight collapses the run to all-'O'; after two collapsed evaluations the
    # warning says so, with the gold-entity probability before and now (is it still moving?).
    config = tmp_path / "train.yaml"
    config.write_text("weight_strategy: none\no_weight: 300.0\nlearning_rate: 0.002\neval_every_steps: 4\n")
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model", "--config", str(config))
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())  # warnings on stderr: stdout stays metrics lines
    assert "stayed under 0.005 for 2 evaluations" in text
    assert "probability on entity labels at gold entity tokens went" in text
    # Said at 2 collapsed evaluations, then as the run doubles, not at every evaluation.
    warned = [int(w.split(" evaluations")[0]) for w in text.split("for ")[1:] if " evaluations" in w]
    assert warned and all(n in (2, 4, 8, 16, 32) for n in warned)
    assert "stayed under" not in result.stdout
    # With --json too: stdout stays the JSON summary, the warning still reaches stderr.
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model2", "--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] and "stayed under 0.005 for 2 evaluations" in " ".join(
        result.stderr.split())


def test_each_metrics_line_stays_one_line_when_piped(tiny_model_dir, small_data_dir, tmp_path):
    # Off a terminal rich wraps at 80 columns; a metrics line must not (grep, tee).
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model")
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert lines and all("entity_pred_ratio" in line for line in lines)


def test_a_run_that_saves_no_model_exits_non_zero(tiny_model_dir, small_data_dir, tmp_path):
    # Diverged before its first evaluation: no model, so `train && predict` must stop.
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model", "--learning-rate", "1e30",
                    "--eval-every-steps", "1", "--precision", "fp32")
    assert result.exit_code == 1, result.output
    assert "no model saved" in result.stderr


def test_an_output_dir_that_is_a_file_fails_before_training(tiny_model_dir, small_data_dir, tmp_path):
    (tmp_path / "afile").write_text("x")
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "afile")
    assert isinstance(result.exception, ValueError) and "is a file" in str(result.exception)
    assert "epoch " not in result.stdout  # refused before any training


def test_skipped_records_are_reported(tiny_model_dir, small_data_dir, tmp_path):
    # --on-invalid skip drops a bad record; train says so (and metrics.json keeps the count).
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small_data_dir, data)
    with open(data / "train.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"text": "2 pizza", "entities": [{"start": 3, "end": 7, "label": "FOOD"}]}) + "\n")
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--epochs", "1", "--on-invalid", "skip",
            "--output-dir", str(tmp_path / "model"), "--threads", "1", "--device", "cpu"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "data: 0 record(s) repaired, 1 skipped (--on-invalid skip)" in text and "train.jsonl:161:" in text
    saved = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert saved["data_report"]["skipped"] == 1


def test_bad_loss_is_a_value_error_naming_it(tmp_path):
    # --loss hinge fails before any training with a ValueError that names 'hinge'.
    result = CliRunner().invoke(build_app(), ["train", "--loss", "hinge", "--output-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ValueError)
    assert "'hinge'" in str(result.exception) and "focal" in str(result.exception)


def test_a_config_file_value_refused_once_the_model_is_known_names_its_file_and_line(
        tiny_model_dir, small_data_dir, tmp_path):
    # max_length is checked against the model's position embeddings (128 for the tiny
    # model) when it loads; the fix named --max-length only, not the file that set it.
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 1\nmax_length: 200\n")
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model", "--config", str(config))
    message = str(result.exception)
    assert isinstance(result.exception, ValueError) and "max_length is 200" in message
    assert message.endswith(f"(max_length is set at {config}:2)")
    # Given as an option, the file's line is not where the value came from.
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model", "--config", str(config),
                    "--max-length", "300")
    assert "max_length is 300" in str(result.exception) and str(config) not in str(result.exception)


def test_main_maps_value_error_to_exit_2(tmp_path):
    # The installed entry point turns the ValueError into exit code 2 and one error line.
    proc = subprocess.run([sys.executable, "-c", MAIN, "train", "--loss", "hinge", "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "loss is 'hinge'" in proc.stderr and "Traceback" not in proc.stderr


def test_main_freezes_the_heap_before_the_interpreters_teardown_on_every_exit(tmp_path):
    # main() collects, then freezes what is left, so the teardown after a command skips
    # torch's and transformers' objects (seconds, RESULTS.md §3 update 15): on success and
    # on a user error alike. An atexit handler runs after it and counts the frozen objects
    # (0 without the freeze).
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count(), file=sys.stderr))\n" + MAIN)
    for args, code_expected in ((["--help"], 0), (["train", "--loss", "hinge", "--output-dir", str(tmp_path)], 2)):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == code_expected, proc.stderr
        assert int(proc.stderr.rsplit("frozen ", 1)[1].split()[0]) > 0, proc.stderr


def test_precision_option_reaches_the_run_and_is_reported(tiny_model_dir, small_data_dir, tmp_path):
    # --precision fp32 wins over `auto` (bf16 on CPUs with bf16 units): the summary says
    # what ran, and the saved config keeps the setting; an unknown value names the allowed ones.
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model", "--precision", "fp32", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["compute_precision"] == "fp32"
    assert json.loads((tmp_path / "model" / "nerkit_config.json").read_text())["precision"] == "fp32"
    bad = CliRunner().invoke(build_app(), ["train", "--precision", "fp16", "--output-dir", str(tmp_path / "x")])
    assert isinstance(bad.exception, ValueError)
    assert "precision is 'fp16'" in str(bad.exception) and "'bf16'" in str(bad.exception)


def test_evals_per_epoch_reaches_the_run(tiny_model_dir, small_data_dir, tmp_path):
    # Its own run: the option excludes --eval-every-steps, which the test below sets.
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model", "--json", "--epochs", "0.25",
                    "--batch-size", "8", "--evals-per-epoch", "8", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "model" / "nerkit_config.json").read_text())["evals_per_epoch"] == 8
    # 20 steps per epoch, 5 trained: evaluations at steps 3 (epoch 1/8 reached) and 5 (2/8).
    history = json.loads((tmp_path / "model" / "metrics.json").read_text())["history"]
    assert [m["step"] for m in history] == [3, 5]


def test_every_training_option_reaches_the_saved_config(tiny_model_dir, small_data_dir, tmp_path):
    # Each option lands in the config the run used and saved (nerkit_config.json): an
    # option dropped between the CLI and TrainConfig would train with the default silently.
    result = _train(tiny_model_dir, small_data_dir, tmp_path / "model", "--json", "--epochs", "0.25",
                    "--batch-size", "8", "--lr", "0.0007", "--loss", "focal", "--gamma", "1.5",
                    "--weight-strategy", "inverse", "--o-weight", "0.4", "--entity-boost", "2.5",
                    "--max-length", "64", "--label-all-subwords", "--eval-every-steps", "3",
                    "--early-stopping", "4", "--seed", "7", "--freeze-embeddings", "--embedding-update", "dense",
                    "--precision", "fp32", "--split-seed", "5", "--on-invalid", "skip", "--format", "auto")
    assert result.exit_code == 0, result.output
    cfg = json.loads((tmp_path / "model" / "nerkit_config.json").read_text())
    assert {k: cfg[k] for k in ("epochs", "batch_size", "learning_rate", "loss", "gamma", "weight_strategy",
                                "o_weight", "entity_boost", "max_length", "label_all_subwords",
                                "eval_every_steps", "early_stopping_patience", "seed", "freeze_embeddings",
                                "embedding_update", "precision", "device", "num_threads")} == {
        "epochs": 0.25, "batch_size": 8, "learning_rate": 0.0007, "loss": "focal", "gamma": 1.5,
        "weight_strategy": "inverse", "o_weight": 0.4, "entity_boost": 2.5, "max_length": 64,
        "label_all_subwords": True, "eval_every_steps": 3, "early_stopping_patience": 4, "seed": 7,
        "freeze_embeddings": True, "embedding_update": "dense", "precision": "fp32", "device": "cpu",
        "num_threads": 1}
    assert (cfg["data"]["split_seed"], cfg["data"]["on_invalid"], cfg["data"]["path"]) == (5, "skip", str(small_data_dir))
    assert json.loads(result.stdout)["best"]["step"] in (3, 5)  # evaluated at steps 3 and 5 (a quarter of 160 / 8)


def test_ctrl_c_while_the_commands_import_exits_130_with_one_line(monkeypatch, capsys):
    # Ctrl-C in the first seconds (torch, transformers, Ray importing) printed a traceback
    # through the import machinery.
    import pytest

    import nerkit.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(nerkit.cli, "build_app", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        nerkit.cli._main()
    assert exit_info.value.code == 130 and capsys.readouterr().err.strip() == "interrupted"
