"""MCNetConfig: frozen, JSON round trip, unknown/missing/mistyped keys refused."""

from __future__ import annotations

import dataclasses
import json

import pytest

from models.config import MCNetConfig, tiny, vox256
from models.errors import ConfigError


@pytest.mark.parametrize("config", [vox256(), tiny()], ids=["vox256", "tiny"])
def test_json_round_trip(config: MCNetConfig) -> None:
    assert MCNetConfig.from_json(config.to_json()) == config


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        vox256().num_kp = 10  # type: ignore[misc]


def test_unknown_key_is_refused() -> None:
    data = json.loads(tiny().to_json())
    data["memsize"] = 8
    with pytest.raises(ConfigError, match="unknown config key `memsize`"):
        MCNetConfig.from_dict(data)


def test_missing_key_is_refused() -> None:
    data = json.loads(tiny().to_json())
    del data["num_kp"]
    with pytest.raises(ConfigError, match="missing config key `num_kp`"):
        MCNetConfig.from_dict(data)


def test_wrong_format_is_refused() -> None:
    data = json.loads(tiny().to_json())
    data["format"] = "something-else"
    with pytest.raises(ConfigError, match="config `format`"):
        MCNetConfig.from_dict(data)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("num_kp", "15", "`num_kp` must be a positive int"),
        ("num_kp", 0, "`num_kp` must be a positive int"),
        ("estimate_jacobian", 1, "`estimate_jacobian` must be a bool"),
        ("kp_temperature", "0.1", "`kp_temperature` must be a number"),
        ("kp_scale_factor", 0.3, "`kp_scale_factor` must be 1/n"),
        ("gen_max_features", 100, "`gen_max_features` must equal"),
    ],
)
def test_bad_values_are_refused(key: str, value: object, message: str) -> None:
    data = json.loads(tiny().to_json())
    data[key] = value
    with pytest.raises(ConfigError, match=message):
        MCNetConfig.from_dict(data)


def test_not_json_is_refused() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        MCNetConfig.from_json("{not json")


def test_integer_valued_floats_are_accepted() -> None:
    data = json.loads(vox256().to_json())
    data["memory_temperature"] = 34
    assert MCNetConfig.from_dict(data).memory_temperature == 34.0
