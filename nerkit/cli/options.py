"""Option parsing shared by the commands that build a TrainConfig (train, search)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from nerkit.config import TrainConfig
from nerkit.data import DataConfig


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        value = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(value).__name__}")
    return value


def build_train_config(
    config_file: Path | None, data: dict[str, Any] | DataConfig | None, overrides: dict[str, Any]
) -> TrainConfig:
    """Base config (file or defaults) + the data options given + the options given.

    ``data`` holds only the data options the user gave (see :func:`data_options`): they
    change the file's ``data:`` section, never replace it with defaults. Errors in the
    file name the file and the line of the setting.
    """
    base = _config_from_file(config_file) if config_file else TrainConfig()
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(data, DataConfig):
        given["data"] = data
    elif data:
        given["data"] = dataclasses.replace(base.data, **data)
    return base.with_overrides(**given)


def _config_from_file(path: Path) -> TrainConfig:
    values = load_yaml_mapping(path)
    try:
        return TrainConfig.from_dict(values)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        line = _setting_line(Path(path).read_text(), message)
        raise ValueError(f"{path}{f':{line}' if line else ''}: {message}") from None


def _setting_line(text: str, message: str) -> int | None:
    """The line of the setting an error message starts with (``epochs is -1, ...``,
    ``unknown training setting(s) ['x']``), at the top level or under ``data:``."""
    m = re.match(r"(?:unknown (?:training|data) setting\(s\) \['([^']+)'|(\w+) is |entity_o_ratio=)", message)
    if not m:
        return None
    key = m.group(1) or m.group(2) or "entity_o_ratio"
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    mappings = [root] if isinstance(root, yaml.MappingNode) else []
    for node in list(mappings):
        mappings += [v for k, v in node.value if k.value == "data" and isinstance(v, yaml.MappingNode)]
    for node in mappings:
        for k, _ in node.value:
            if k.value == key:
                return k.start_mark.line + 1
    return None


def data_options(
    data: str | None = None, train: str | None = None, dev: str | None = None, test: str | None = None,
    fmt: str | None = None, on_invalid: str | None = None, split_seed: int | None = None,
    label_names: str | None = None,
) -> dict[str, Any]:
    """The data options a command was given (None: not given), as DataConfig fields."""
    given = dict(path=data, train=train, dev=dev, test=test, format=fmt, on_invalid=on_invalid,
                 split_seed=split_seed, label_names=parse_label_names(label_names))
    return {k: v for k, v in given.items() if v is not None}


def data_config(
    data: str | None, train: str | None, dev: str | None, test: str | None,
    fmt: str, on_invalid: str, split_seed: int, label_names: str | None = None,
) -> DataConfig:
    return DataConfig(**data_options(data, train, dev, test, fmt, on_invalid, split_seed, label_names))


#: Help text of every command's --label-names option.
LABEL_NAMES_HELP = "Labels of integer tag ids, in id order, comma-separated (e.g. O,B-FOOD,I-FOOD)."


def parse_label_names(text: str | None) -> tuple[str, ...] | None:
    """``"O,B-FOOD,I-FOOD"`` → ``("O", "B-FOOD", "I-FOOD")``; ``None`` stays ``None``."""
    if text is None:
        return None
    return tuple(name.strip() for name in text.split(","))
