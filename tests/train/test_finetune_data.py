"""The fine-tuning config (genomamba.train.finetune_data.FinetuneConfig): checked before any data is read."""

from __future__ import annotations

import pytest

from genomamba.strict_config import ConfigError
from genomamba.train.finetune_data import FinetuneConfig


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"preset": "huge"}, "preset: unknown preset 'huge'"),
        ({"dropout": 1.5}, "dropout: must lie in [0, 1), got 1.5"),  # the head config's own rule
        ({"pooling": "median"}, "pooling: must be one of 'mean',"),
        ({"batch_size": 0}, "batch_size: must be a positive integer, got 0"),
        ({"warmup_fraction": 1.0}, "warmup_fraction: must lie in [0, 1), got 1.0"),
        ({"rc_strategy": "both"}, "rc_strategy: must be one of none, ps, ph, got 'both'"),
    ],
)
def test_bad_values_name_their_key(changes, message):
    with pytest.raises(ConfigError) as info:
        FinetuneConfig(train=["task.csv"], out="ft", **{"preset": "tiny", **changes})
    assert str(info.value).startswith(message)
