"""The strand test before fine-tuning: oriented labels are found, labels on both strands are not."""

from __future__ import annotations

import numpy as np

from genomamba.alphabet import encode, reverse_complement
from genomamba.train.strand import check_strand


def _task(n: int, seed: int, both_strands: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Random 60-mers; class 1 carries GTAAGT at position 20, on a random strand when ``both_strands``."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], rng.integers(0, 2, size=n)
    for label in labels:
        chars = list(rng.choice(list("ACGT"), size=60))
        if label:
            chars[20:26] = "GTAAGT"
        ids = encode("".join(chars).encode())[0]
        seqs.append(reverse_complement(ids) if both_strands and rng.random() < 0.5 else ids)
    return seqs, labels


def test_an_oriented_site_is_strand_specific():
    train, y = _task(600, 0, both_strands=False)
    val, val_y = _task(300, 1, both_strands=False)
    check = check_strand(train, y, val, val_y)
    assert check.specific and check.z >= 3
    assert check.tests["one-hot"]["accuracy"] > check.tests["one-hot"]["accuracy_rc"] + 0.2
    assert "strand-specific" in check.describe()


def test_a_site_on_either_strand_is_not():
    train, y = _task(600, 0, both_strands=True)
    val, val_y = _task(300, 1, both_strands=True)
    check = check_strand(train, y, val, val_y)
    assert not check.specific and check.z < 3
    assert set(check.tests) == {"k-mer", "one-hot"} and check.to_dict()["tests"]["k-mer"]["n"] == 300


def test_variable_lengths_use_kmers_only():
    train, y = _task(200, 0, both_strands=False)
    train = [s[: 40 + i % 20] for i, s in enumerate(train)]
    check = check_strand(train, y, train[:50], y[:50])
    assert set(check.tests) == {"k-mer"}
