"""Logistic-regression baselines (genomamba.suite.baselines): features, probabilities, a learnable task."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import matthews_corrcoef

from genomamba.features import onehot_features
from genomamba.suite.baselines import check_labels, fit_kmer_lr, fit_logistic, fit_onehot_lr
from tests.suite.suite_cases import SHARED_SUITE, ids, motif_task


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
    folder = SHARED_SUITE / "GUE_prom_300_tata"
    if not folder.is_dir():
        pytest.skip(f"benchmark data not found at {folder} (the shared benchmarks folder is absent)")
    train = pd.read_csv(folder / "train.csv", nrows=600)
    test = pd.read_csv(folder / "test.csv", nrows=300)
    train_seqs, test_seqs = [ids(s) for s in train["sequence"]], [ids(s) for s in test["sequence"]]
    probs = fit_onehot_lr(train_seqs, train["label"].to_numpy(), test_seqs, seed=0)
    assert matthews_corrcoef(test["label"], probs.argmax(axis=1)) > 0.3
