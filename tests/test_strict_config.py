"""Strict config building (genomamba.strict_config): unknown keys, types, key paths, exit code."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from genomamba.errors import EXIT_USAGE, GenomambaError
from genomamba.model.config import ModelConfig
from genomamba.strict_config import ConfigError, from_mapping, reject_unknown


@dataclass
class Inner:
    size: int = 4
    rate: float = 0.5

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"must be a positive integer, got {self.size}", "size")


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    limit: int | None = None
    flag: bool = False


def _error(data: dict, path: str = "") -> str:
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, data, path)
    return str(info.value)


def test_builds_nested_dataclasses_with_defaults():
    built = from_mapping(Outer, {"inner": {"rate": 1}, "tags": ["a"], "limit": None})
    assert built == Outer(inner=Inner(rate=1), tags=["a"])


def test_unknown_key_names_the_full_path_and_the_closest_field():
    assert _error({"inner": {"sise": 2}}) == "inner.sise: unknown key (did you mean size?)"
    assert _error({"inner": {"sise": 2}}, "run") == "run.inner.sise: unknown key (did you mean size?)"
    assert _error({"colour": 1}) == "colour: unknown key (known: name, inner, tags, limit, flag)"
    assert "also unknown beside it: zz" in _error({"nme": 1, "zz": 2})


def test_reject_unknown_takes_a_dataclass_or_names():
    reject_unknown({"size": 1}, Inner)
    with pytest.raises(ConfigError, match=r"^m\.sized: unknown key \(did you mean size\?\)$"):
        reject_unknown({"sized": 1}, ["size", "rate"], "m")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inner": {"size": 2.0}}, "inner.size: must be an integer, got 2.0"),
        ({"inner": {"size": True}}, "inner.size: must be an integer, got True"),
        ({"inner": {"rate": "fast"}}, "inner.rate: must be a number, got 'fast'"),
        ({"inner": {"rate": "0.5"}}, "inner.rate: must be a number, got '0.5' (text, not a number: remove"),
        ({"inner": {"rate": "5e-3"}}, "inner.rate: must be a number, got '5e-3' (text, not a number: write"),
        ({"inner": 3}, "inner: must be a mapping of keys to values, got 3"),
        ({"tags": "a"}, "tags: must be a list of strings, got 'a'"),
        ({"tags": ["a", 1]}, "tags: must be a list of strings, got ['a', 1]"),
        ({"limit": "none"}, "limit: must be an integer or null, got 'none'"),
        ({"flag": "yes"}, "flag: must be true or false, got 'yes'"),
    ],
)
def test_wrong_types_are_named_before_post_init_runs(data, message):
    assert _error(data).startswith(message)


def test_post_init_errors_get_the_path_of_the_nested_config():
    assert _error({"inner": {"size": 0}}, "run") == "run.inner.size: must be a positive integer, got 0"


def test_config_error_is_a_usage_error_that_travels():
    error = ConfigError("must be positive", "lr").within("train").in_source("run.yaml")
    assert str(error) == "run.yaml: train.lr: must be positive"
    assert isinstance(error, GenomambaError) and isinstance(error, ValueError)
    assert error.exit_code == EXIT_USAGE == 2
    assert str(ConfigError("two keys disagree").within("model")) == "model: two keys disagree"
    assert str(pickle.loads(pickle.dumps(error))) == str(error)  # crosses process boundaries intact


def test_model_config_uses_the_same_rules():
    with pytest.raises(ConfigError, match=r"^mixer\.d_stat: unknown key \(did you mean d_state\?\)$"):
        ModelConfig.from_dict({"mixer": {"d_stat": 8}})
    with pytest.raises(ConfigError, match=r"^head\.dropout: must be a number, got 'x'$"):
        ModelConfig.from_dict({"head": {"dropout": "x"}})


def test_module_imports_neither_torch_nor_numpy():
    code = "import sys, genomamba.strict_config; assert not {'torch', 'numpy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
