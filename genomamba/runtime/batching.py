"""Token arrays of different lengths to one batch: right-padded ids and an attention mask.

Padding never changes a sequence's result (the model masks it), so a sequence scores the same
alone or in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from genomamba.alphabet import PAD_ID


def pad_batch(sequences: Sequence[np.ndarray], device=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(ids (b, L) long, mask (b, L) bool or None)``: right-padded with ``[PAD]`` to the longest;
    the mask is None when all sequences have the same length (the model skips masking then)."""
    lengths = [len(s) for s in sequences]
    width = max(lengths)
    ids = np.full((len(sequences), width), PAD_ID, dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
    ids_t = torch.from_numpy(ids).to(device)
    if min(lengths) == width:
        return ids_t, None
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return ids_t, mask.to(device)
