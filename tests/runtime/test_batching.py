"""genomamba.runtime.batching: right padding with [PAD] and the attention mask."""

from __future__ import annotations

import numpy as np

from genomamba.alphabet import PAD_ID
from genomamba.runtime.batching import pad_batch


def test_sequences_are_right_padded_to_the_longest_with_a_mask():
    seqs = [np.array([5, 6, 7], np.uint8), np.array([8], np.uint8), np.array([5, 5, 6, 9, 7], np.uint8)]
    ids, mask = pad_batch(seqs)
    pad = PAD_ID
    assert ids.tolist() == [[5, 6, 7, pad, pad], [8, pad, pad, pad, pad], [5, 5, 6, 9, 7]]
    assert mask.tolist() == [[True] * 3 + [False] * 2, [True] + [False] * 4, [True] * 5]


def test_sequences_of_one_length_need_no_mask():
    ids, mask = pad_batch([np.array([5, 6], np.uint8), np.array([7, 8], np.uint8)])
    assert mask is None and ids.tolist() == [[5, 6], [7, 8]]
