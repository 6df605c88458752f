"""Sequence features for linear models: k-mer spectra and the position-wise one-hot matrix.

numpy only. Sequences are uint8 arrays of :mod:`genomamba.alphabet` token ids. Used by the
benchmark's logistic-regression baselines (:mod:`genomamba.suite.baselines`) and by fine-tuning's
strand check (:mod:`genomamba.train.strand`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genomamba.alphabet import ACGT_IDS

# k = 1..5, not 1..6: a baseline should be as strong as it can be. Measured on the development
# suite, adding k = 6 (4,096 columns to 1,364) hurts promoters and most TF tasks (prom_300_tata
# 41.1 -> 32.1, tf_human_0 64.1 -> 55.5, prom_core_all 55.3 -> 49.2 MCC), helps only the yeast EMP
# tasks (H3 50.3 -> 58.2, H4 59.8 -> 65.5) and triples the fit time. 1..5 also reproduces the
# published logistic-regression numbers of the suite's README exactly.
DEFAULT_KS: tuple[int, ...] = (1, 2, 3, 4, 5)

# token id -> base code 0..3 (A C G T); anything else (N, special tokens) -> _NOT_ACGT.
_NOT_ACGT = 4
_BASE_CODE = np.full(256, _NOT_ACGT, dtype=np.uint8)
_BASE_CODE[ACGT_IDS] = np.arange(4, dtype=np.uint8)
# Sequences featurised at once: keeps the float64 bincount buffer (chunk * 4**k) near the cache size
# (16 MB at k = 6); measured fastest among 128..2048 for 50,000 x 101 bp.
_KMER_CHUNK = 512
_MAX_K = 8  # 4**8 columns already; larger k would make dense features absurd


def kmer_features(sequences: Sequence[np.ndarray], ks: Sequence[int] = DEFAULT_KS) -> np.ndarray:
    """k-mer spectra: ``(n, sum(4**k for k in ks))`` float32.

    For each k in ``ks`` (in that order) a block of ``4**k`` columns in lexicographic order of
    the k-mer over A C G T (``AA, AC, AG, AT, CA, ...``) holds the count of that k-mer in the
    sequence divided by the number of k-mer positions ``len - k + 1``. k-mers holding N (or any
    token that is not A C G T) are not counted, but their positions stay in the denominator; a
    sequence shorter than k gives a row of zeros for that k.

    Raises:
        ValueError: an empty ``ks`` or a k outside 1..8.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1 or max(ks) > _MAX_K:
        raise ValueError(f"k-mer sizes must be 1..{_MAX_K} and at least one, got {ks}")
    n = len(sequences)
    widths = [4**k for k in ks]
    offsets = np.cumsum([0] + widths)
    out = np.zeros((n, int(offsets[-1])), dtype=np.float32)
    for first in range(0, n, _KMER_CHUNK):
        chunk = sequences[first : first + _KMER_CHUNK]
        for k, block in _kmer_blocks(chunk, max(ks)):
            for at in (i for i, want in enumerate(ks) if want == k):
                out[first : first + len(chunk), offsets[at] : offsets[at + 1]] = block
    return out


def _kmer_blocks(sequences: Sequence[np.ndarray], max_k: int):
    """Yield ``(k, (len(sequences), 4**k) float64 normalised counts)`` for k = 1..max_k."""
    n = len(sequences)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=n)
    base = _BASE_CODE[np.concatenate([np.asarray(s, dtype=np.uint8) for s in sequences])]
    # One pass over the concatenation of the chunk's sequences, k growing by one each step: the
    # window starting at i has code 4 * (code of the (k-1)-mer at i) + base[i + k - 1], and is
    # counted when it holds only A C G T and ends inside the sequence it starts in.
    row = np.repeat(np.arange(n), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    room = np.repeat(lengths, lengths) - (np.arange(base.size) - starts)  # positions left in the sequence
    base_acgt = base != _NOT_ACGT
    base_code = np.where(base_acgt, base, 0).astype(np.int64)
    code, acgt = base_code, base_acgt
    for k in range(1, max_k + 1):
        if k > 1:
            code = code[:-1] * 4 + base_code[k - 1 :]
            acgt = acgt[:-1] & base_acgt[k - 1 :]
        keep = acgt & (room[: len(acgt)] >= k)
        index = row[: len(acgt)][keep] * 4**k + code[keep]
        weight = 1.0 / np.maximum(lengths - k + 1, 1)[row[: len(acgt)][keep]]
        counts = np.bincount(index, weights=weight, minlength=n * 4**k)
        yield k, counts.reshape(n, 4**k)


def onehot_features(sequences: Sequence[np.ndarray]) -> np.ndarray:
    """Position-wise one-hot: ``(n, L * 4)`` float32, columns ``pos0 A, pos0 C, pos0 G, pos0 T,
    pos1 A, ...``; N (or any token that is not A C G T) is a position of zeros.

    Raises:
        ValueError: the sequences are not all of one length (one-hot needs fixed-length tasks), or
            there are none.
    """
    if len(sequences) == 0:
        raise ValueError("onehot_features needs at least one sequence")
    lengths = {len(s) for s in sequences}
    if len(lengths) != 1:
        raise ValueError(
            f"one-hot features need sequences of one length, got lengths {min(lengths)}..{max(lengths)}"
        )
    codes = _BASE_CODE[np.stack([np.asarray(s, dtype=np.uint8) for s in sequences])]  # (n, L)
    # A 5th column for "not ACGT" that is dropped turns N into all zeros without a branch.
    return np.eye(5, 4, dtype=np.float32)[codes].reshape(len(sequences), -1)
