"""Config dataclasses, presets and their parameter counts (the numbers quoted in docs/model.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from genomamba.model import PRESET_NAMES, ConfigError, GenomambaModel, HeadConfig, ModelConfig, preset

# Computed by building each preset; docs/model.md quotes these (MLM head tied to the embedding).
# The ladder and scalar presets learn one A rate per channel instead of d_state of them: 2 x 512 x 15 fewer
# parameters per layer at d_model 256 (3% of small-1k).
PRESET_PARAMETERS = {"tiny": 21_674, "small-1k": 1_933_066, "base-131k": 7_723_786, "long-1m": 16_697_482,
                     "small-1k-ladder": 1_871_626, "base-131k-ladder": 7_478_026,
                     "small-1k-scalar": 1_871_626, "base-131k-scalar": 7_478_026}


def _count(config: ModelConfig) -> int:
    with torch.device("meta"):  # no memory, no init cost
        return GenomambaModel(config).num_parameters()


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_parameter_counts(name):
    assert _count(preset(name)) == PRESET_PARAMETERS[name]
    # the RC strategy changes compute, not parameters: PS shares every weight between strands
    assert _count(preset(name, rc_strategy="ps")) == PRESET_PARAMETERS[name]


def test_base_131k_matches_caduceus_layer_arithmetic():
    # One BiMamba layer at d_model 256 (d_inner 512, d_state 16, dt_rank 16, conv 4), in/out tied:
    in_proj, out_proj = 256 * 1024, 512 * 256
    per_direction = (512 * 4 + 512) + 512 * (16 + 2 * 16) + (16 * 512 + 512) + 512 * 16 + 512
    layer = in_proj + out_proj + 2 * per_direction + 256  # + RMSNorm
    body = 16 * layer + 256  # + final norm
    assert body == 7_721_216
    # embedding (10 tokens x 256) and the MLM bias (10); the decoder is the embedding
    assert body + 10 * 256 + 10 == PRESET_PARAMETERS["base-131k"]


def test_presets_sizes_and_checkpointing():
    assert (preset("small-1k").d_model, preset("small-1k").n_layer) == (256, 4)
    assert (preset("base-131k").d_model, preset("base-131k").n_layer) == (256, 16)
    assert not preset("small-1k").gradient_checkpointing
    assert preset("base-131k").gradient_checkpointing and preset("long-1m").gradient_checkpointing
    assert preset("long-1m").max_length == 1 << 20


def test_round_trip_through_json():
    cfg = preset("tiny", rc_strategy="ps", head={"task": "sequence", "problem_type": "multiclass",
                                                 "num_labels": 3, "labels": ["a", "b", "c"]})
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.head.labels == ["a", "b", "c"] and again.preset == "tiny"


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"d_model": 16, "n_layers": 2}, "n_layers"),
        ({"mixer": {"d_stat": 4}}, "mixer.d_stat"),
        ({"head": {"task": "mlm", "pool": "mean"}}, "head.pool"),
    ],
)
def test_unknown_keys_are_errors(data, needle):
    with pytest.raises(ConfigError, match=needle):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"rc_strategy": "both"}, "rc_strategy"),
        ({"combine": "concat"}, "combine"),
        ({"rc_strategy": "ps", "bidirectional": False}, "bidirectional"),
        ({"d_model": 0}, "d_model"),
        ({"vocab_size": 4}, "vocab_size"),
        ({"mixer": {"dt_min": 0.5, "dt_max": 0.1}}, "dt_min"),
        ({"head": {"task": "sequence", "problem_type": "multiclass", "num_labels": 1}}, "num_labels"),
        ({"head": {"task": "sequence", "problem_type": "ordinal", "num_labels": 3}}, "problem_type"),
        ({"head": {"task": "token", "num_labels": 3, "labels": ["x"]}}, "labels"),
        ({"head": {"task": "mlm", "pooling": "median"}}, "pooling"),
    ],
)
def test_invalid_values_are_errors(changes, needle):
    with pytest.raises(ConfigError, match=needle):
        preset("tiny", **changes)


def test_preset_unknown_name_and_override_key():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ConfigError, match="layers: unknown key"):
        preset("tiny", layers=3)
    with pytest.raises(ConfigError, match="head.classes"):
        HeadConfig.from_dict({"classes": 3})


def test_binary_head_has_one_output():
    head = HeadConfig(task="sequence", problem_type="binary")
    assert head.num_labels == 1


def test_config_module_does_not_import_torch():
    code = (
        "import sys, genomamba.model, genomamba.model.config as c; c.preset('base-131k'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
