"""Logistic-regression baselines (genomamba.suite.baselines): features, probabilities, a learnable task."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import matthews_corrcoef

from genomamba.alphabet import encode
from genomamba.suite import baselines
from genomamba.suite.baselines import (
    check_labels,
    fit_kmer_lr,
    fit_logistic,
    fit_onehot_lr,
    kmer_features,
    onehot_features,
)

BENCHMARKS = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"


def ids(text: str) -> np.ndarray:
    return encode(text.encode())[0]


def motif_task(n: int, seed: int, length: int = 60, motif: str = "TATAAA", at: int = 20):
    """Random ACGT sequences; class 1 (half of them) carries ``motif`` at ``at``."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], rng.integers(0, 2, size=n)
    for label in labels:
        chars = list(rng.choice(list("ACGT"), size=length))
        if label:
            chars[at : at + len(motif)] = motif
        seqs.append(ids("".join(chars)))
    return seqs, labels.astype(np.int64)


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
    monkeypatch.setattr(baselines, "_KMER_CHUNK", 7)  # several chunks, sequences of mixed lengths
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


def test_onehot_needs_one_length():
    with pytest.raises(ValueError, match="one length"):
        onehot_features([ids("ACGT"), ids("ACG")])
    with pytest.raises(ValueError, match="one length"):
        fit_onehot_lr([ids("ACGT")] * 4, np.array([0, 1, 0, 1]), [ids("ACG")], seed=0)


@pytest.mark.parametrize("fit", [fit_kmer_lr, fit_onehot_lr], ids=["kmer", "onehot"])
def test_learns_a_motif_at_a_fixed_position(fit):
    train, y_train = motif_task(400, seed=0)
    test, y_test = motif_task(200, seed=1)
    probs = fit(train, y_train, test, seed=0)
    assert probs.shape == (200, 2) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert matthews_corrcoef(y_test, probs.argmax(axis=1)) > 0.6


def test_three_classes_and_subsampling_are_seeded():
    rng = np.random.default_rng(2)
    seqs = [ids("".join(rng.choice(list("ACGT"), size=30))) for _ in range(90)]
    y = np.arange(90) % 3
    first = fit_kmer_lr(seqs, y, seqs[:10], seed=3, ks=(1, 2), max_train=60)
    assert first.shape == (10, 3)
    np.testing.assert_allclose(first.sum(axis=1), 1.0)
    np.testing.assert_array_equal(first, fit_kmer_lr(seqs, y, seqs[:10], seed=3, ks=(1, 2), max_train=60))
    assert not np.array_equal(first, fit_kmer_lr(seqs, y, seqs[:10], seed=4, ks=(1, 2), max_train=60))


def test_a_class_missing_from_train_gets_probability_zero():
    seqs = [ids("ACGTACGT"), ids("TTTTTTTT")] * 5
    probs = fit_onehot_lr(seqs, np.array([0, 2] * 5), seqs[:3], seed=0)
    assert probs.shape == (3, 3) and not probs[:, 1].any()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_fit_logistic_leaves_the_callers_features_alone():
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    kept = x_train.copy(), x_test.copy()
    probs = fit_logistic(x_train, (x_train[:, 0] > 0).astype(np.int64), x_test, seed=0)
    assert probs.shape == (5, 2)
    np.testing.assert_array_equal(x_train, kept[0])
    np.testing.assert_array_equal(x_test, kept[1])


def test_labels_are_checked():
    with pytest.raises(ValueError, match="one class"):
        check_labels(np.zeros(4, np.int64), 4)
    with pytest.raises(ValueError, match="integer"):
        check_labels(np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="one label per sequence"):
        check_labels(np.array([0, 1]), 3)


def test_real_task_slice():
    pd = pytest.importorskip("pandas")
    folder = BENCHMARKS / "GUE_prom_300_tata"
    if not folder.is_dir():
        pytest.skip(f"benchmark data not found at {folder} (the shared benchmarks folder is absent)")
    train = pd.read_csv(folder / "train.csv", nrows=600)
    test = pd.read_csv(folder / "test.csv", nrows=300)
    train_seqs, test_seqs = [ids(s) for s in train["sequence"]], [ids(s) for s in test["sequence"]]
    probs = fit_onehot_lr(train_seqs, train["label"].to_numpy(), test_seqs, seed=0)
    assert matthews_corrcoef(test["label"], probs.argmax(axis=1)) > 0.3
