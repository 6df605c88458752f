"""Logistic-regression baselines of ``genomamba benchmark``: k-mer spectra and position-wise one-hot.

numpy and scikit-learn only (no torch), so the runner can score the cheap baselines without
loading a model stack.

* :func:`fit_kmer_lr`, :func:`fit_onehot_lr` -- standardised features, L2 logistic regression
  (C = 0.05), class probabilities for the test sequences;
* :func:`fit_logistic` -- the same regression on features the caller brings (embedding probes).

The features (:func:`~genomamba.features.kmer_features`, :func:`~genomamba.features.onehot_features`)
live in :mod:`genomamba.features`.

Sequences are uint8 arrays of :mod:`genomamba.alphabet` token ids; labels are int class indices
0..k-1. With ``ks=(1, 2, 3, 4, 5)`` and ``seed=0`` these functions reproduce, to the decimal, the
k-mer and one-hot baseline numbers in ``../shared/benchmarks/README.md`` on all ten GUE tasks there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from genomamba.features import DEFAULT_KS, kmer_features, onehot_features

DEFAULT_C = 0.05
DEFAULT_MAX_TRAIN = 20_000
# Standardised features converge in well under 200 lbfgs iterations on the GUE tasks (measured:
# 6..135); the limit leaves a wide margin before the warning is silenced (see _logistic).
MAX_ITER = 5_000

def fit_kmer_lr(
    train_seqs: Sequence[np.ndarray],
    train_y: np.ndarray,
    test_seqs: Sequence[np.ndarray],
    *,
    seed: int,
    ks: Sequence[int] = DEFAULT_KS,
    c: float = DEFAULT_C,
    max_train: int = DEFAULT_MAX_TRAIN,
) -> np.ndarray:
    """k-mer spectrum (:func:`kmer_features`) logistic regression.

    Args:
        train_seqs, test_seqs: token-id arrays (any lengths).
        train_y: ``(n_train,)`` int class indices 0..k-1, k >= 2.
        seed: picks the subsample when ``n_train > max_train``.

    Returns:
        ``(n_test, k)`` float64 class probabilities, rows summing to 1 (k = ``max(train_y) + 1``).

    Raises:
        ValueError: bad labels (see :func:`check_labels`).
    """
    return _fit(lambda seqs: kmer_features(seqs, ks), train_seqs, train_y, test_seqs, seed, c, max_train)


def fit_onehot_lr(
    train_seqs: Sequence[np.ndarray],
    train_y: np.ndarray,
    test_seqs: Sequence[np.ndarray],
    *,
    seed: int,
    c: float = DEFAULT_C,
    max_train: int = DEFAULT_MAX_TRAIN,
) -> np.ndarray:
    """Position-wise one-hot (:func:`onehot_features`) logistic regression.

    Args and returns as :func:`fit_kmer_lr`.

    Raises:
        ValueError: bad labels, or train and test sequences not all of one length.
    """
    lengths = {len(s) for s in train_seqs} | {len(s) for s in test_seqs}
    if len(lengths) > 1:
        raise ValueError(
            f"one-hot features need sequences of one length, got lengths {min(lengths)}..{max(lengths)} "
            "across train and test"
        )
    return _fit(onehot_features, train_seqs, train_y, test_seqs, seed, c, max_train)


def check_labels(train_y: np.ndarray, n_train: int) -> tuple[np.ndarray, int]:
    """Check training labels: ``(train_y as int64 (n_train,), k = max + 1)``.

    Raises:
        ValueError: not ``n_train`` integers >= 0 in one dimension, or fewer than two distinct classes.
    """
    y = np.asarray(train_y)
    if y.ndim != 1 or len(y) != n_train:
        raise ValueError(f"train_y must be 1-D with one label per sequence ({n_train}), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"train_y must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n_train == 0 or y.min() < 0:
        raise ValueError("train_y must hold class indices 0..k-1 and at least one row")
    if len(np.unique(y)) < 2:
        raise ValueError("train_y holds one class only; a classifier needs at least two")
    return y, int(y.max()) + 1


def fit_logistic(
    x_train: np.ndarray,
    train_y: np.ndarray,
    x_test: np.ndarray,
    *,
    seed: int,
    c: float = DEFAULT_C,
    max_train: int = DEFAULT_MAX_TRAIN,
) -> np.ndarray:
    """The same logistic regression on features given by the caller (e.g. a model's embeddings).

    Args:
        x_train: ``(n_train, d)`` features; x_test: ``(n_test, d)``. Neither is modified.
        train_y, seed, c, max_train: as :func:`fit_kmer_lr`.

    Returns:
        ``(n_test, k)`` float64 class probabilities, rows summing to 1.

    Raises:
        ValueError: bad labels, or train and test of different widths.
    """
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"features must be (n, d) with the same d, got {x_train.shape} and {x_test.shape}")
    y, n_classes = check_labels(train_y, len(x_train))
    rows = _subsample(len(y), max_train, seed)
    return _logistic(x_train[rows], y[rows], x_test.copy(), n_classes, seed, c)


def _fit(featurise, train_seqs, train_y, test_seqs, seed: int, c: float, max_train: int) -> np.ndarray:
    y, n_classes = check_labels(train_y, len(train_seqs))
    # Subsampled before featurising: the features of unused rows would be thrown away.
    rows = _subsample(len(y), max_train, seed)
    x_train = featurise([train_seqs[i] for i in rows])
    return _logistic(x_train, y[rows], featurise(list(test_seqs)), n_classes, seed, c)


def _subsample(n: int, max_train: int, seed: int) -> np.ndarray:
    """Row indices: all ``n`` in order, or a seeded ``max_train`` of them."""
    if n <= max_train:
        return np.arange(n)
    # RandomState, not Generator: its stream is frozen across numpy releases, and with seed 0 it
    # picks the rows, in the order, behind the published baseline numbers (tf_human_0 k-mer 64.1).
    return np.random.RandomState(seed).choice(n, size=max_train, replace=False)


def _logistic(x_train, y, x_test, n_classes: int, seed: int, c: float) -> np.ndarray:
    """Probabilities ``(n_test, n_classes)``; ``x_train``, ``x_test`` are our own copies (scaled in place)."""
    scaler = StandardScaler(copy=False).fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    # Neither penalty nor multi_class is passed: L2 and (for k > 2, with lbfgs) multinomial are the
    # defaults from scikit-learn 1.3 on, and passing them warns of deprecation in recent releases.
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=MAX_ITER, random_state=seed)
    with warnings.catch_warnings():
        # Only past MAX_ITER, far beyond what these problems need: the fit is then as good as it
        # gets at this tolerance and a warning would only alarm the user of a baseline.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y)
    probs = np.zeros((len(x_test), n_classes), dtype=np.float64)
    probs[:, model.classes_] = model.predict_proba(x_test)  # a class missing from the subsample stays 0
    return probs
