"""Option parsing shared by train and search (nerkit.cli.options): files, data, errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nerkit.cli import build_app
from nerkit.cli.options import build_train_config, data_options


def test_config_files_data_section_survives_unless_an_option_changes_it(tmp_path):
    # The file's data: section is the base; only the data options actually given change it.
    path = tmp_path / "t.yaml"
    path.write_text("epochs: 2\ndata:\n  path: /x.jsonl\n  split_ratios: [0.7, 0.2, 0.1]\n")
    cfg = build_train_config(path, data_options(), {})
    assert (cfg.epochs, cfg.data.path, cfg.data.split_ratios) == (2, "/x.jsonl", (0.7, 0.2, 0.1))
    cfg = build_train_config(path, data_options(on_invalid="skip"), {})
    assert (cfg.data.path, cfg.data.on_invalid) == ("/x.jsonl", "skip")


@pytest.mark.parametrize("text, where, needle", [
    ("learning_rate: 1e-5\nepochs: -1\n", ":2:", "epochs is -1, but must be > 0"),
    ("epochs: 1\nlearning_rat: 0.1\n", ":2:", "unknown training setting(s) ['learning_rat']"),
    ("epochs: 1\ndata:\n  bogus: 1\n", ":3:", "unknown data setting(s) ['bogus']"),
    ("data:\n  split_ratios: [0.5, 0.5]\n", ":2:", "split_ratios is (0.5, 0.5)"),
    # PyYAML keeps the last of a doubled key: the run would train 5 epochs, silently.
    ("epochs: 1\nlearning_rate: 0.001\nepochs: 5\n", ":3:", "epochs is given twice (lines 1 and 3)"),
    ("data:\n  path: a.jsonl\n  path: b.jsonl\n", ":3:", "data.path is given twice"),
    ("data:\n  split_ratios: 0.8\n", ":2:", "split_ratios is 0.8, but must be 3 non-negative numbers"),
    ("1: 2\nfoo: 3\n", ":1:", "unknown training setting(s) [1, 'foo']"),
    # Two settings that cannot go together: the first one's line.
    ("epochs: 1\nmax_weight: 3\nentity_o_ratio: 2\n", ":2:", "max_weight=3 and entity_o_ratio=2 cannot be"),
    ("eval_every_steps: 5\nevals_per_epoch: 2\n", ":1:", "eval_every_steps=5 and evals_per_epoch=2"),
    ("data:\n  path: ''\n", ":2:", "path is '', but must be a non-empty path"),
])
def test_config_file_errors_name_the_file_and_line(tmp_path, text, where, needle):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        build_train_config(path, data_options(), {})
    assert str(info.value).startswith(f"{path}{where} ") and needle in str(info.value)


def test_a_config_file_that_is_not_utf8_or_is_a_directory_is_named(tmp_path):
    # Not a bare codec error: the file, the line and the fix.
    path = tmp_path / "t.yaml"
    path.write_bytes(b"epochs: 1\n# caf\xe9\n")
    with pytest.raises(ValueError, match=r"t\.yaml:2: not UTF-8 text.*Fix: save the file as UTF-8"):
        build_train_config(path, data_options(), {})
    with pytest.raises(ValueError, match="is a directory; give a YAML file of training settings"):
        build_train_config(tmp_path, data_options(), {})


def test_a_stored_config_keeps_characters_past_the_basic_plane(tmp_path):
    # nerkit_config.json escapes them as surrogate pairs, which YAML read as two lone surrogates.
    from nerkit.checkpoint import write_json
    from nerkit.config import TrainConfig

    data = tmp_path / "data\U0001f355"
    data.mkdir()
    stored = TrainConfig(data={"path": str(data), "label_names": ["O", "B-\U00010900"]})
    write_json(tmp_path / "nerkit_config.json", stored.to_dict())
    cfg = build_train_config(tmp_path / "nerkit_config.json", data_options(), {})
    assert cfg == stored


def test_data_option_replaces_the_files_split_files(tmp_path):
    # --data names the data to use: a stored config's train/dev/test files would override it, silently.
    path = tmp_path / "t.yaml"
    path.write_text("data:\n  train: /old/train.jsonl\n  dev: /old/dev.jsonl\n  test: /old/test.jsonl\n"
                    "  format: jsonl-spans\n")
    cfg = build_train_config(path, data_options(data="/new"), {})
    assert (cfg.data.path, cfg.data.train, cfg.data.dev, cfg.data.test) == ("/new", None, None, None)
    assert cfg.data.format == "jsonl-spans"
    cfg = build_train_config(path, data_options(data="/new", test="/t.jsonl"), {})
    assert (cfg.data.train, cfg.data.test) == (None, "/t.jsonl")
    assert build_train_config(path, data_options(dev="/d.jsonl"), {}).data.train == "/old/train.jsonl"


def test_no_class_weights_refuses_explicit_weights():
    # --no-class-weights with --o-weight is a contradiction, refused before anything loads.
    result = CliRunner().invoke(build_app(), ["train", "--no-class-weights", "--o-weight", "0.5", "--epochs", "0.01"])
    assert result.exit_code != 0 and "--no-class-weights means uniform weights" in str(result.exception)


def test_train_cli_no_class_weights_clears_a_files_ratio(tiny_model_dir, small_data_dir, tmp_path):
    # Uniform means uniform: a config file's entity_o_ratio does not survive --no-class-weights.
    import json

    config = tmp_path / "t.yaml"
    config.write_text("entity_o_ratio: 5.0\n")
    result = CliRunner().invoke(build_app(), [
        "train", "--config", str(config), "--no-class-weights", "--model", str(tiny_model_dir), "--data",
        str(small_data_dir), "--epochs", "1", "--threads", "1", "--device", "cpu", "--json",
        "--output-dir", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entity_o_ratio"] == 1.0


def test_relative_data_and_model_paths_are_stored_absolute(tmp_path, monkeypatch):
    # The config is saved with the model; re-run from another directory a relative path
    # named nothing (or other data that happened to sit there).
    (tmp_path / "data").mkdir()
    (tmp_path / "tiny").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = build_train_config(None, data_options(data="data", dev="missing.jsonl"), {"model": "tiny"})
    assert (cfg.model, cfg.data.path) == (str(tmp_path / "tiny"), str(tmp_path / "data"))
    assert cfg.data.dev == "missing.jsonl"  # not a path here: left for the loader to name
    assert build_train_config(None, data_options(), {"model": "bert-base-cased"}).model == "bert-base-cased"


@pytest.mark.parametrize("overrides, needle", [
    ({"num_threads": 0}, "--threads is 0, but must be"),
    ({"early_stopping_patience": 0}, "--early-stopping is 0, but must be"),
    ({"learning_rate": -1.0}, "--learning-rate is -1.0, but must be > 0"),
])
def test_a_bad_option_is_named_as_the_user_typed_it(overrides, needle):
    # `--threads 0` said "num_threads is 0": a name the user never typed.
    with pytest.raises(ValueError) as info:
        build_train_config(None, data_options(), overrides)
    assert str(info.value).startswith(needle)


def test_an_option_at_odds_with_the_config_file_names_the_files_line(tmp_path):
    # --eval-every-steps against the file's evals_per_epoch named neither the file nor the line.
    path = tmp_path / "t.yaml"
    path.write_text("epochs: 2\nevals_per_epoch: 2\n")
    with pytest.raises(ValueError) as info:
        build_train_config(path, data_options(), {"eval_every_steps": 5})
    message = str(info.value)
    assert message.startswith("--eval-every-steps=5 and evals_per_epoch=2")
    assert message.endswith(f"(evals_per_epoch is set at {path}:2)")
