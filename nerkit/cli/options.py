"""Option parsing shared by the commands that build a TrainConfig (train, search)."""

from __future__ import annotations

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
    config_file: Path | None, data: DataConfig | None, overrides: dict[str, Any]
) -> TrainConfig:
    """Base config (file or defaults) + data + the options the user actually gave."""
    base = TrainConfig.from_dict(load_yaml_mapping(config_file)) if config_file else TrainConfig()
    given = {k: v for k, v in overrides.items() if v is not None}
    if data is not None:
        given["data"] = data
    return base.with_overrides(**given)


def data_config(
    data: str | None, train: str | None, dev: str | None, test: str | None,
    fmt: str, on_invalid: str, split_seed: int, label_names: str | None = None,
) -> DataConfig:
    return DataConfig(path=data, train=train, dev=dev, test=test, format=fmt,
                      on_invalid=on_invalid, split_seed=split_seed, label_names=parse_label_names(label_names))


#: Help text of every command's --label-names option.
LABEL_NAMES_HELP = "Labels of integer tag ids, in id order, comma-separated (e.g. O,B-FOOD,I-FOOD)."


def parse_label_names(text: str | None) -> tuple[str, ...] | None:
    """``"O,B-FOOD,I-FOOD"`` → ``("O", "B-FOOD", "I-FOOD")``; ``None`` stays ``None``."""
    if text is None:
        return None
    return tuple(name.strip() for name in text.split(","))
