"""Tests for nerkit.config: TrainConfig validation, round trips and overrides."""

from __future__ import annotations

import json

import pytest

from nerkit.config import TrainConfig
from nerkit.data import DataConfig


def test_defaults_are_valid_and_ce_ignores_gamma():
    # The defaults build; focal_gamma is 0 unless the loss is focal.
    cfg = TrainConfig()
    assert cfg.focal_gamma == 0.0
    assert TrainConfig(loss="focal", gamma=1.5).focal_gamma == 1.5


def test_round_trip_through_json():
    # to_dict -> JSON -> from_dict rebuilds an equal config, nested DataConfig included.
    cfg = TrainConfig(model="some/path", loss="focal", gamma=1.0, weight_strategy="seed", o_weight=0.5,
                      entity_boost=3.0, max_weight=100.0, epochs=2.5, eval_every_steps=7,
                      data=DataConfig(path="data.jsonl", split_ratios=(0.7, 0.2, 0.1)))
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert isinstance(again.data, DataConfig) and again.data.split_ratios == (0.7, 0.2, 0.1)


def test_unknown_setting_is_named():
    # from_dict and with_overrides name an unknown key.
    with pytest.raises(ValueError, match="lerning_rate"):
        TrainConfig.from_dict({"lerning_rate": 1e-3})
    with pytest.raises(ValueError, match="epoch'"):
        TrainConfig().with_overrides(epoch=3)


def test_with_overrides_validates_again():
    # An override is validated like a fresh config, and the original stays unchanged.
    base = TrainConfig()
    assert base.with_overrides(learning_rate=1e-3).learning_rate == 1e-3
    with pytest.raises(ValueError, match="-1"):
        base.with_overrides(batch_size=-1)
    assert base.batch_size == 16


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"loss": "hinge"}, "'hinge'"),
        ({"weight_strategy": "sqrt"}, "'sqrt'"),
        ({"precision": "fp16"}, "'fp16'"),
        ({"gamma": -1.0}, "-1.0"),
        ({"learning_rate": 0.0}, "0.0"),
        ({"epochs": -2}, "-2"),
        ({"batch_size": 2.5}, "2.5"),
        ({"max_length": 4}, "4"),
        ({"warmup_ratio": 1.0}, "1.0"),
        ({"eval_every_steps": 0}, "0"),
        ({"evals_per_epoch": 0}, "0"),
        ({"evals_per_epoch": 1.5}, "1.5"),
        ({"evals_per_epoch": 2, "eval_every_steps": 5}, "evals_per_epoch=2"),
        ({"early_stopping_patience": 0}, "0"),
        ({"entity_o_ratio": 3.0, "entity_boost": 2.0}, "2.0"),
        # Types: what YAML or JSON hands over besides numbers.
        ({"epochs": None}, "None"),
        ({"learning_rate": float("inf")}, "inf"),
        ({"seed": "13"}, "'13'"),
        ({"batch_size": True}, "True"),
        ({"freeze_embeddings": "false"}, "'false'"),
        ({"model": None}, "None"),
        ({"weight_decay": -1.0}, "-1.0"),
        ({"max_grad_norm": 0.0}, "0.0"),
        ({"num_threads": 0}, "0"),
        ({"collapse_eps": 5.0}, "5.0"),
        ({"device": "gpu"}, "'gpu'"),
        ({"beta": 2.0}, "2.0"),
        ({"smoothing": -1.0}, "-1.0"),
        ({"seed": -3}, "-3"),
    ],
)
def test_bad_values_raise_naming_the_value(kwargs, named):
    # Every invalid setting raises a ValueError quoting the setting and the value.
    with pytest.raises(ValueError) as info:
        TrainConfig(**kwargs)
    message = str(info.value)
    assert named in message
    assert next(iter(kwargs)) in message or "entity_o_ratio" in message


def test_yaml_number_strings_are_numbers():
    # PyYAML reads 1e-5 (no dot) as a string; from_dict reads it as the number it looks like,
    # but only where a number is expected.
    assert TrainConfig.from_dict({"learning_rate": "1e-5"}).learning_rate == 1e-5
    with pytest.raises(ValueError, match="loss is '1e-5'"):
        TrainConfig.from_dict({"loss": "1e-5"})
    with pytest.raises(ValueError, match=r"unknown data setting\(s\) \['bogus'\]"):
        TrainConfig.from_dict({"data": {"bogus": 1}})


def test_config_is_frozen():
    # A resolved config cannot be mutated in place.
    with pytest.raises(AttributeError):
        TrainConfig().epochs = 3  # type: ignore[misc]


def test_an_unknown_data_key_is_the_same_value_error_however_the_config_is_built():
    # TrainConfig(data={...}) and SearchSettings raised a bare TypeError ("unexpected
    # keyword argument 'pth'") where TrainConfig.from_dict named the allowed keys.
    from tune.settings import SearchSettings

    builds = [lambda: TrainConfig(data={"pth": "x"}), lambda: TrainConfig.from_dict({"data": {"pth": "x"}}),
              lambda: SearchSettings(name="a", space="x", data={"pth": "x"})]
    for build in builds:
        with pytest.raises(ValueError, match=r"unknown data setting\(s\) \['pth'\]; allowed are \['dev', "):
            build()
    assert TrainConfig(data={"split_ratios": [0.6, 0.2, 0.2]}).data.split_ratios == (0.6, 0.2, 0.2)


def test_uniform_weights_clear_every_weighting_setting():
    # What --no-class-weights means, reachable from Python: a file's entity_o_ratio or cap goes too.
    cfg = TrainConfig(weight_strategy="seed", entity_o_ratio=2.0).with_uniform_weights()
    assert TrainConfig(max_weight=5.0).with_uniform_weights().max_weight is None
    assert (cfg.weight_strategy, cfg.o_weight, cfg.entity_boost, cfg.entity_o_ratio, cfg.max_weight) == \
        ("none", 1.0, 1.0, None, None)


def test_field_types_are_read_from_any_way_of_writing_the_annotations():
    # check_field_types serves any settings dataclass: an annotation it could not read left
    # its field unchecked, and a union of scalars has no one type to hold a value to.
    import dataclasses
    from typing import Optional

    from nerkit.config import check_field_types, field_kinds

    @dataclasses.dataclass
    class Settings:
        count: Optional[int] = None
        rate: float = 1.0
        name: "str | None" = None

    assert field_kinds(Settings) == ({"count": "int", "rate": "float", "name": "str"}, frozenset({"count", "name"}))
    check_field_types(Settings(count=3, rate=2, name=None))
    with pytest.raises(ValueError, match=r"count is 'three', but must be an integer or unset"):
        check_field_types(Settings(count="three"))

    @dataclasses.dataclass
    class Ambiguous:
        value: "int | str" = 1

    with pytest.raises(TypeError, match=r"Ambiguous\.value: annotation 'int\|str' has no single scalar kind"):
        field_kinds(Ambiguous)
