"""Crop sampling: seeded, resumable, both strands, N-heavy windows skipped."""

from __future__ import annotations

import numpy as np
import pytest

from genomamba import alphabet as ab
from genomamba.errors import InputDataError
from genomamba.train.data import CropSampler, open_shards


def _sequence(lambda_shards) -> bytes:
    store = open_shards([lambda_shards])[0]
    return ab.decode(np.concatenate([store[i] for i in range(len(store))]))


def test_crops_come_from_the_genome_on_both_strands(lambda_shards):
    genome = _sequence(lambda_shards)
    store = open_shards([lambda_shards])[0]
    rc = ab.decode(ab.reverse_complement(np.concatenate([store[i] for i in range(len(store))])))
    sampler = CropSampler(open_shards([lambda_shards]), seed=3, rc_augment=True)
    crops = sampler.sample(40, 100)
    assert crops.shape == (40, 100) and crops.dtype == np.uint8
    plus = minus = 0
    for row in crops:
        text = ab.decode(row)
        plus += text in genome
        minus += text in rc and text not in genome
    assert plus + minus == 40
    assert plus > 5 and minus > 5
    only_plus = CropSampler(open_shards([lambda_shards]), seed=3, rc_augment=False).sample(20, 100)
    assert all(ab.decode(row) in genome for row in only_plus)


def test_short_windows_are_right_padded(lambda_shards):
    crops = CropSampler(open_shards([lambda_shards]), seed=0).sample(8, 600)
    assert (crops[:, 512:] == ab.PAD_ID).sum() >= 8 * 88
    # padding only at the end of each row
    for row in crops:
        real = row != ab.PAD_ID
        assert real[: real.sum()].all()


def test_sampler_position_resumes_exactly(lambda_shards):
    a = CropSampler(open_shards([lambda_shards]), seed=5)
    a.sample(4, 64)
    state = a.state_dict()
    expected = a.sample(4, 64)
    b = CropSampler(open_shards([lambda_shards]), seed=99)
    b.load_state_dict(state)
    assert np.array_equal(b.sample(4, 64), expected)
    assert b.crops_drawn == 8


def test_n_heavy_windows_are_skipped(all_n_shards, lambda_shards):
    with pytest.raises(InputDataError, match="no window"):
        CropSampler(open_shards([all_n_shards]), max_n_fraction=0.5)
    both = CropSampler(open_shards([all_n_shards, lambda_shards]), max_n_fraction=0.5)
    assert not (both.sample(64, 128) == ab.N_ID).all(axis=1).any()
    assert CropSampler(open_shards([all_n_shards]), max_n_fraction=1.0).num_windows == 5


def test_missing_directory_is_input_error(tmp_path):
    with pytest.raises(InputDataError, match="no such token-shard directory"):
        open_shards([tmp_path / "nope"])
    with pytest.raises(InputDataError, match="not a token-shard directory"):
        open_shards([tmp_path])
