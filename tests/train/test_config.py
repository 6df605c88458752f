"""The pretraining run config (genomamba.train.config): every key checked, and where a bad one came from."""

from __future__ import annotations

import pytest

from genomamba.strict_config import ConfigError
from genomamba.train.config import PretrainConfig, resolve_config

BASE = {"data": ["shards"], "preset": "tiny", "out": "run"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": {"mixer": {"d_stat": 32}}}, "model.mixer.d_stat: unknown key (did you mean d_state?)"),
        ({"model": {"n_layers": 2}}, "model.n_layers: unknown key (did you mean n_layer?)"),
        ({"model": {"mixer": {"d_state": -4}}}, "model.mixer.d_state: must be a positive integer, got -4"),
        ({"model": {"head": {"task": "token", "num_labels": 3}}}, "model.head.task: pretraining needs"),
        ({"model": {"rc_strategy": "ps", "bidirectional": False}}, "model.rc_strategy: 'ps' needs"),
        ({"model": {5: 1}}, "model.5: unknown key"),
        ({"model": "big"}, "model: must be a mapping of keys to values, got 'big'"),
        ({"preset": "huge"}, "preset: unknown preset 'huge'; choose from tiny,"),
        ({"batch_size": 0}, "batch_size: must be a positive integer, got 0"),
        ({"grad_clip": -1.0}, "grad_clip: must be >= 0, got -1.0"),
        ({"data": "shards"}, "data: must be a list of strings, got 'shards'"),
        ({"betas": [0.9, 1.0]}, "betas: must be two numbers in [0, 1), got [0.9, 1.0]"),
        ({"max_stpes": 3}, "max_stpes: unknown key (did you mean max_steps?)"),
        ({"val_every": 0}, "val_every: must be a positive integer, got 0"),
        ({"val_tokens": 0}, "val_tokens: must be a positive integer, got 0"),
        ({"val_seq_lens": [1024, 0]}, "val_seq_lens: must be positive integers, got [1024, 0]"),
        ({"val_seq_lens": 1024}, "val_seq_lens: must be a list of integers, got 1024"),
        ({"val_data": ["a/human", "b/human/"]}, "val_data: validation sets are named by their directory, and "
                                                "human names more than one: a/human, b/human/"),
    ],
)
def test_every_key_is_checked_model_overrides_included(changes, message):
    with pytest.raises(ConfigError) as info:
        PretrainConfig.from_dict({**BASE, **changes})
    assert str(info.value).startswith(message)


def test_valid_overrides_describe_the_model():
    config = PretrainConfig.from_dict({**BASE, "model": {"d_model": 16, "mixer": {"d_state": 4}}})
    model = config.describe_model()
    assert (model.d_model, model.mixer.d_state, model.n_layer, model.preset) == (16, 4, 2, "tiny")


def test_errors_name_the_source_of_the_bad_value():
    yaml_values = {"model": {"mixer": {"d_stat": 32}}}
    with pytest.raises(ConfigError, match=r"^run\.yaml: model\.mixer\.d_stat: unknown key"):
        resolve_config(yaml_values, BASE, yaml_source="run.yaml")
    # a value from the command line names no file, even when a run YAML is given
    with pytest.raises(ConfigError, match=r"^tokens_per_step: must be at least seq_len \(64\)"):
        resolve_config({"seq_len": 64}, {**BASE, "tokens_per_step": 32}, yaml_source="run.yaml")
    # a resumed run's saved config is named when the bad value is its own
    saved = {**BASE, "mask_prob": 3.0}
    with pytest.raises(ConfigError, match=r"^run/run_config\.json: mask_prob: must lie in \[0, 1\]"):
        resolve_config({}, {}, saved, saved_source="run/run_config.json")


def test_command_line_wins_and_resume_keeps_the_saved_run():
    config = resolve_config({"lr": 0.01, "seq_len": 128}, {**BASE, "lr": 0.02, "seq_len": None})
    assert (config.lr, config.seq_len) == (0.02, 128)
    saved = config.to_dict()
    assert resolve_config({}, {"max_steps": 5, "out": "run"}, saved).max_steps == 5
    with pytest.raises(ConfigError, match="cannot change lr when resuming"):
        resolve_config({}, {"lr": 0.5}, saved)


def test_validation_defaults_follow_the_run_and_may_change_on_resume():
    config = PretrainConfig.from_dict({**BASE, "checkpoint_every": 7, "seq_len": 256})
    assert (config.validation_every, config.validation_lengths) == (7, [256])
    config = PretrainConfig.from_dict({**BASE, "val_every": 3, "val_seq_lens": [1024, 64, 1024]})
    assert (config.validation_every, config.validation_lengths) == (3, [64, 1024])
    saved = PretrainConfig.from_dict(BASE).to_dict()
    resumed = resolve_config({}, {"val_data": ["held/out"], "val_every": 5, "val_seq_lens": [64]}, saved)
    assert (resumed.val_data, resumed.val_every, resumed.val_seq_lens) == (["held/out"], 5, [64])


def test_tokens_seen_follows_the_sequence_length_schedule():
    # warm-up 16 -> 32 -> 64 over 4 steps at 256 tokens per step; then 4 crops of 64
    config = PretrainConfig.from_dict({**BASE, "seq_len": 64, "batch_size": 4, "seq_len_start": 16,
                                       "seq_len_warmup_steps": 4})
    assert [config.tokens_seen(s) for s in (0, 1, 4, 10)] == [0, 256, 1024, 2560]
    # 40 tokens per step hold two crops of 16 or one of 32: 32 tokens per warm-up step, then 40
    config = PretrainConfig.from_dict({**BASE, "seq_len": 40, "batch_size": 1, "seq_len_start": 16,
                                       "seq_len_warmup_steps": 4})
    assert [config.tokens_seen(s) for s in (1, 3, 4, 6)] == [32, 96, 128, 208]
