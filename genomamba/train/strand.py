"""Does a label belong to the strand as given, or to both strands? A data test before fine-tuning.

Reverse-complement augmentation and conjoining (averaging the predictions on x and RC(x)) are right
when a label holds on both strands (ChIP-seq peaks, nucleosome occupancy) and wrong when it belongs
to the strand as given (splice donors and acceptors, promoters oriented on their gene): there they
force the model to score a site and its reverse complement alike. Measured on the development
suite, the wrong choice costs a lot either way (docs/results.md).

The test: fit a cheap linear model on the training data as given (position-wise one-hot for
fixed-length tasks, where position carries the signal; k-mer spectra always) and compare its
accuracy on the validation rows as given and reverse-complemented. A label that holds on both
strands comes from data in both orientations, so the model is nearly RC-symmetric and the
accuracy barely moves; an oriented label loses accuracy on the reverse complement. The drop is
judged per row, as a paired (McNemar) z-score of the rows right only as given against those right
only reverse-complemented; ``z >= 3`` (a one-sided p of about 0.001) calls the task strand-specific.

numpy and scikit-learn only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from genomamba.alphabet import reverse_complement
from genomamba.features import kmer_features, onehot_features

Z_THRESHOLD = 3.0
MAX_TRAIN = 5_000  # rows the linear models see: enough for a clear signal, about a second of fitting
KMER_SIZES = (1, 2, 3, 4)


@dataclass
class StrandCheck:
    """The outcome: ``specific`` and, per feature set, the validation accuracy as given and
    reverse-complemented and the paired z-score (the largest decides)."""

    specific: bool
    z: float
    tests: dict  # feature set -> {"accuracy": a, "accuracy_rc": b, "z": z, "n": n}

    def describe(self) -> str:
        parts = ", ".join(
            f"{name}: validation accuracy {t['accuracy']:.3f} as given, {t['accuracy_rc']:.3f} "
            f"reverse-complemented (z {t['z']:.1f})"
            for name, t in self.tests.items()
        )
        verdict = "strand-specific" if self.specific else "the same on both strands"
        return f"labels look {verdict} ({parts})"

    def to_dict(self) -> dict:
        return asdict(self)


def check_strand(
    train_seqs: Sequence[np.ndarray],
    train_y: np.ndarray,
    val_seqs: Sequence[np.ndarray],
    val_y: np.ndarray,
    *,
    seed: int = 0,
) -> StrandCheck:
    """Test whether class labels ``train_y``/``val_y`` (int class ids) belong to the given strand.

    Sequences are token-id arrays. One-hot features are tried when every sequence has one length.
    """
    rows = np.random.default_rng(seed).permutation(len(train_seqs))[:MAX_TRAIN]
    train = [train_seqs[i] for i in rows]
    y = np.asarray(train_y)[rows]
    val_rc = [reverse_complement(s) for s in val_seqs]
    featurisers = {"k-mer": lambda seqs: kmer_features(seqs, KMER_SIZES)}
    if len({len(s) for s in train} | {len(s) for s in val_seqs}) == 1:
        featurisers["one-hot"] = onehot_features
    tests = {}
    for name, featurise in featurisers.items():
        if len(np.unique(y)) < 2:
            break
        predict = _fit_linear(featurise(train), y, seed)
        right = predict(featurise(list(val_seqs))) == val_y
        right_rc = predict(featurise(val_rc)) == val_y
        tests[name] = {
            "accuracy": float(right.mean()),
            "accuracy_rc": float(right_rc.mean()),
            "z": _paired_z(right, right_rc),
            "n": len(val_y),
        }
    z = max((t["z"] for t in tests.values()), default=0.0)
    return StrandCheck(z >= Z_THRESHOLD, z, tests)


def _paired_z(right: np.ndarray, right_rc: np.ndarray) -> float:
    """McNemar's z of the rows right only as given against those right only reverse-complemented."""
    only_given = int(np.count_nonzero(right & ~right_rc))
    only_rc = int(np.count_nonzero(~right & right_rc))
    if only_given + only_rc == 0:
        return 0.0
    return (only_given - only_rc) / math.sqrt(only_given + only_rc)


def _fit_linear(x: np.ndarray, y: np.ndarray, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=0.05, max_iter=2_000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a rough fit is enough for the test
        model.fit(scaler.transform(x), y)
    return lambda features: model.predict(scaler.transform(features))
