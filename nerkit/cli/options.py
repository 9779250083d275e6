"""Options shared by the commands that read data or build a TrainConfig (train, search, doctor).

The data options are declared once here, as ``Annotated`` types the commands use
(``data: DataOption = None``): one flag name and help text for every command.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nerkit.config import TrainConfig
from nerkit.data import DataConfig
from nerkit.paths import local_absolute
from nerkit.yaml_lines import load_with_lines


def load_yaml_mapping(path: str | Path) -> tuple[dict[str, Any], dict[tuple, int]]:
    """Read a YAML file that must hold a mapping: ``(mapping, {key path: line})``.
    Errors name the file (and the line: a key given twice is refused, not silently
    overridden by the last as PyYAML would)."""
    value, lines = load_with_lines(path, "a YAML file of training settings")
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(value).__name__}")
    return value, lines


def build_train_config(
    config_file: Path | None, data: dict[str, Any] | DataConfig | None, overrides: dict[str, Any]
) -> TrainConfig:
    """Base config (file or defaults) + the data options given + the options given.

    ``data`` holds only the data options the user gave (see :func:`data_options`): they
    change the file's ``data:`` section, never replace it with defaults. Errors in the
    file name the file and the line of the setting.
    """
    base, lines = _config_from_file(config_file) if config_file else (TrainConfig(), {})
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(data, DataConfig):
        given["data"] = data
    elif data:
        # Data options point at the data to use: the file's record of other data (a saved
        # config's fingerprint) no longer applies; nor, when --data names other data, do
        # the file's train/dev/test files, which would override the files found there.
        dropped = {split: None for split in ("train", "dev", "test")} if "path" in data else {}
        given["data"] = dataclasses.replace(base.data, **{"fingerprint": None, **dropped, **data})
    try:
        config = base.with_overrides(**given)
    except ValueError as exc:
        # An option at odds with a setting of the file (--eval-every-steps against its
        # evals_per_epoch): say where that setting is.
        message = as_flag(str(exc), [k for k in given if k != "data"])
        raise ValueError(_where_set(message, config_file, lines, given)) from None
    # The config is saved with the model and re-run from elsewhere: no relative paths.
    return config.with_overrides(model=local_absolute(config.model), data=config.data.with_absolute_paths())


#: Options whose flag is not the TrainConfig field's name with dashes.
FLAGS = {"num_threads": "--threads", "early_stopping_patience": "--early-stopping"}


#: A setting as messages name it: ``epochs is -1, ...``, ``max_weight=3 and ...``.
_NAMED_SETTING = re.compile(r"(\w+)(?: is |=)")


def _where_set(message: str, config_file: Path | None, lines: dict[tuple, int], given) -> str:
    """``message`` with the file and line of each setting it names that the file set and
    no option overrode."""
    named = dict.fromkeys(_NAMED_SETTING.findall(message))
    where = [f"{k} is set at {config_file}:{lines[(k,)]}" for k in named if (k,) in lines and k not in given]
    return message + (f" ({'; '.join(where)})" if where else "")


def located(message: str, config_file: Path | None, given: dict[str, Any]) -> str:
    """An error raised once training started (a check that needs the model: max_length
    against its position embeddings) about a setting of ``config_file``, with the file and
    line of that setting: its fix says which option to give, not where the value came from.

    ``given``: the options given (None: not given), which override the file's settings."""
    if config_file is None:
        return message
    _, lines = load_yaml_mapping(config_file)
    return _where_set(message, config_file, lines, {k for k, v in given.items() if v is not None})


def as_flag(message: str, fields: list[str]) -> str:
    """A TrainConfig error about a field given as an option, in the option's words:
    ``num_threads is 0, …`` → ``--threads is 0, …`` (the user typed no ``num_threads``)."""
    for name in fields:
        if message.startswith((f"{name} is ", f"{name}=")):
            return FLAGS.get(name, f"--{name.replace('_', '-')}") + message[len(name):]
    return message


def _config_from_file(path: Path) -> tuple[TrainConfig, dict[tuple, int]]:
    """The file's config and the line of each of its settings."""
    values, lines = load_yaml_mapping(path)
    try:
        return TrainConfig.from_dict(values), lines
    except (ValueError, TypeError) as exc:
        message = str(exc)
        line = _setting_line(lines, message)
        raise ValueError(f"{path}{f':{line}' if line else ''}: {message}") from None


def _setting_line(lines: dict[tuple, int], message: str) -> int | None:
    """The line of the setting an error message starts with (``epochs is -1, ...``,
    ``max_weight=3 and entity_o_ratio=2 cannot be combined``, ``unknown training
    setting(s) ['x']``; a YAML key may be a number: ``[1]``), at the top level or under
    ``data:``."""
    m = (re.match(r"unknown (?:training|data) setting\(s\) \[([^\],]+)", message)
         or _NAMED_SETTING.match(message))
    if not m:
        return None
    key = m.group(1).strip("'\"")
    return lines.get((key,)) or lines.get(("data", key))


def data_options(
    data: str | None = None, train: str | None = None, dev: str | None = None, test: str | None = None,
    fmt: str | None = None, on_invalid: str | None = None, split_seed: int | None = None,
    label_names: str | None = None,
) -> dict[str, Any]:
    """The data options a command was given (None: not given), as DataConfig fields."""
    given = dict(path=data, train=train, dev=dev, test=test, format=fmt, on_invalid=on_invalid,
                 split_seed=split_seed, label_names=parse_label_names(label_names))
    return {k: v for k, v in given.items() if v is not None}


#: Help texts of the data options every command that reads data takes (train, search, doctor).
LABEL_NAMES_HELP = "Labels of integer tag ids, in id order, comma-separated (e.g. O,B-FOOD,I-FOOD)."
DATA_HELP = "Data file or directory (default: the bundled Hinglish corpus)."
TRAIN_HELP = "Explicit train file (overrides the one found from --data)."
DEV_HELP = "Explicit dev file (overrides the one found from --data)."
TEST_HELP = "Explicit test file (overrides the one found from --data)."
FORMAT_HELP = "auto (default) | jsonl-spans | jsonl-tokens | conll | hf-disk | parquet"
ON_INVALID_HELP = "error (default) | repair | skip (repair/skip report counts)."
SPLIT_SEED_HELP = "Seed for splitting a single file into train/dev/test (default 13)."

# The data options as command parameters. None = not given: the config file's data:
# section, or DataConfig's defaults, applies. (Optional, not `X | None`: Typer reads these.)
DataOption = Annotated[Optional[str], typer.Option("--data", help=DATA_HELP)]
TrainFileOption = Annotated[Optional[str], typer.Option("--train", help=TRAIN_HELP)]
DevFileOption = Annotated[Optional[str], typer.Option("--dev", help=DEV_HELP)]
TestFileOption = Annotated[Optional[str], typer.Option("--test", help=TEST_HELP)]
FormatOption = Annotated[Optional[str], typer.Option("--format", help=FORMAT_HELP)]
OnInvalidOption = Annotated[Optional[str], typer.Option("--on-invalid", help=ON_INVALID_HELP)]
SplitSeedOption = Annotated[Optional[int], typer.Option("--split-seed", help=SPLIT_SEED_HELP)]
LabelNamesOption = Annotated[Optional[str], typer.Option("--label-names", help=LABEL_NAMES_HELP)]


def parse_label_names(text: str | None) -> tuple[str, ...] | None:
    """``"O,B-FOOD,I-FOOD"`` → ``("O", "B-FOOD", "I-FOOD")``; ``None`` stays ``None``."""
    if text is None:
        return None
    return tuple(name.strip() for name in text.split(","))
