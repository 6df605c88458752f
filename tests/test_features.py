"""Sequence features (genomamba.features): k-mer spectra and one-hot, against their definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from genomamba import features as features_module
from genomamba.features import kmer_features, onehot_features
from tests.suite.suite_cases import ids


def kmer_reference(text: str, ks) -> np.ndarray:
    """The definition, one window at a time."""
    blocks = []
    for k in ks:
        block = np.zeros(4**k)
        for i in range(len(text) - k + 1):
            window = text[i : i + k]
            if set(window) <= set("ACGT"):
                block[int("".join(str("ACGT".index(c)) for c in window), 4)] += 1
        blocks.append(block / max(len(text) - k + 1, 1))
    return np.concatenate(blocks)


def test_kmer_counts_of_a_hand_made_sequence():
    features = kmer_features([ids("ACGTA")], ks=(1, 2))
    assert features.shape == (1, 4 + 16) and features.dtype == np.float32
    np.testing.assert_allclose(features[0, :4], [2 / 5, 1 / 5, 1 / 5, 1 / 5])  # A C G T
    pairs = ["".join(p) for p in itertools.product("ACGT", repeat=2)]
    expected = {"AC": 0.25, "CG": 0.25, "GT": 0.25, "TA": 0.25}
    np.testing.assert_allclose(features[0, 4:], [expected.get(p, 0.0) for p in pairs])


def test_kmers_with_n_are_skipped_but_their_positions_count():
    features = kmer_features([ids("ACNTA")], ks=(2,))[0]
    # AC and TA counted; CN and NT skipped; 4 positions in the denominator
    assert features[0 * 4 + 1] == pytest.approx(0.25) and features[3 * 4 + 0] == pytest.approx(0.25)
    assert features.sum() == pytest.approx(0.5)


def test_short_and_empty_sequences_give_zero_blocks():
    features = kmer_features([ids("A"), np.zeros(0, np.uint8), ids("AAA")], ks=(2, 3))
    assert not features[:2].any()
    assert features[2, 0] == 1.0 and features[2, 16] == 1.0  # AA, AAA


def test_kmer_features_match_the_definition_across_chunks(monkeypatch):
    monkeypatch.setattr(features_module, "_KMER_CHUNK", 7)  # several chunks, sequences of mixed lengths
    rng = np.random.default_rng(1)
    texts = ["".join(rng.choice(list("ACGTN"), size=int(rng.integers(0, 25)))) for _ in range(40)]
    features = kmer_features([ids(t) for t in texts], ks=(3, 1, 2))
    expected = np.stack([kmer_reference(t, (3, 1, 2)) for t in texts])
    np.testing.assert_allclose(features, expected, rtol=1e-6, atol=1e-7)


def test_kmer_sizes_are_checked():
    with pytest.raises(ValueError, match="k-mer sizes"):
        kmer_features([ids("ACGT")], ks=())
    with pytest.raises(ValueError, match="k-mer sizes"):
        kmer_features([ids("ACGT")], ks=(0, 2))


def test_onehot_rows():
    features = onehot_features([ids("ACGTN"), ids("TTTTT")])
    assert features.shape == (2, 20) and features.dtype == np.float32
    np.testing.assert_array_equal(features[0].reshape(5, 4), np.vstack([np.eye(4), np.zeros(4)]))
    np.testing.assert_array_equal(features[1].reshape(5, 4), np.tile([0, 0, 0, 1], (5, 1)))
