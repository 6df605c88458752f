"""BERT masking statistics and the learning-rate / sequence-length schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genomamba import alphabet as ab
from genomamba.train.masking import IGNORE_INDEX, bert_mask
from genomamba.train.schedule import lr_factor, seq_len_at, seq_len_stages


def test_masking_proportions_on_real_bases():
    rng = np.random.default_rng(0)
    ids = rng.choice(ab.ACGT_IDS, size=(64, 4096)).astype(np.uint8)
    inputs, labels = bert_mask(ids, np.random.default_rng(1))
    selected = labels != IGNORE_INDEX
    assert selected.mean() == pytest.approx(0.15, abs=0.003)
    assert np.array_equal(labels[selected], ids[selected])
    chosen = inputs[selected]
    original = ids[selected]
    masked = chosen == ab.MASK_ID
    unchanged = chosen == original
    replaced = ~masked & ~unchanged
    assert masked.mean() == pytest.approx(0.8, abs=0.01)
    # the 10% random bases land on the original base a quarter of the time
    assert unchanged.mean() == pytest.approx(0.1 + 0.1 / 4, abs=0.01)
    assert replaced.mean() == pytest.approx(0.1 * 3 / 4, abs=0.01)
    assert np.isin(chosen[replaced], ab.ACGT_IDS).all()
    # positions not selected keep their token
    assert np.array_equal(inputs[~selected], ids[~selected])


def test_n_and_pad_never_selected():
    ids = np.full((4, 1000), ab.N_ID, dtype=np.uint8)
    ids[:, 500:] = ab.PAD_ID
    inputs, labels = bert_mask(ids, np.random.default_rng(0), mask_prob=1.0)
    assert (labels == IGNORE_INDEX).all()
    assert np.array_equal(inputs, ids.astype(np.int64))


def test_masking_is_seeded():
    ids = np.random.default_rng(2).choice(ab.ACGT_IDS, size=(3, 100)).astype(np.uint8)
    a = bert_mask(ids, np.random.default_rng(7))
    b = bert_mask(ids, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_masking_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="mask_prob"):
        bert_mask(np.zeros((1, 4), np.uint8), np.random.default_rng(), mask_prob=1.5)


def test_lr_warmup_then_cosine():
    assert lr_factor(0, 10, 110) == pytest.approx(0.1)
    assert lr_factor(9, 10, 110) == pytest.approx(1.0)
    assert lr_factor(10, 10, 110) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110, min_ratio=0.0) == pytest.approx(0.5)
    assert lr_factor(60, 10, 110, min_ratio=0.2) == pytest.approx(0.2 + 0.8 * 0.5)
    assert lr_factor(110, 10, 110, min_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(500, 10, 110, min_ratio=0.1) == pytest.approx(0.1)
    mid = lr_factor(35, 10, 110, min_ratio=0.0)
    assert mid == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    values = [lr_factor(s, 10, 110) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert lr_factor(0, 0, 10) == pytest.approx(1.0)


def test_sequence_length_warmup():
    assert seq_len_stages(128, 1024) == [128, 256, 512, 1024]
    assert seq_len_stages(100, 1000) == [100, 200, 400, 800, 1000]
    assert seq_len_stages(1024, 1024) == [1024]
    lengths = [seq_len_at(s, 1024, 128, 30) for s in range(40)]
    assert lengths[:10] == [128] * 10
    assert lengths[10:20] == [256] * 10
    assert lengths[20:30] == [512] * 10
    assert lengths[30:] == [1024] * 10
    assert seq_len_at(0, 1024, None, 30) == 1024
    assert seq_len_at(0, 1024, 128, 0) == 1024
