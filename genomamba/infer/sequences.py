"""Embeddings of in-memory sequences: a list of token arrays in, one pooled vector each out.

What the benchmark's probe (and notebooks) need when the sequences are already read: no
windows, no files. The model runs in eval mode under ``torch.inference_mode`` (no autograd
graph), on batches sorted by length so padding stays small; padding never changes a result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from genomamba.infer.runner import load_model
from genomamba.train.evaluate import autocast_for, pad_batch


def embed_sequences(
    model_dir: str | os.PathLike,
    sequences: Sequence[np.ndarray],
    *,
    pooling: str = "mean",
    conjoin: bool | None = None,
    batch_size: int = 128,
    device: str = "auto",
) -> np.ndarray:
    """Pooled embeddings ``(len(sequences), d_model)`` float32, in input order.

    ``sequences``: uint8 token-id arrays (:mod:`genomamba.alphabet`). ``pooling``: a fixed
    pooling (mean, max, first, last, center); ``conjoin``: see ``GenomambaModel.embed``.

    Raises:
        CheckpointError: ``model_dir`` cannot be loaded. UnavailableError: ``cuda`` without a GPU.
    """
    model, device_t = load_model(model_dir, device)
    order = np.argsort([len(s) for s in sequences], kind="stable")
    out = np.empty((len(sequences), model.config.d_model), dtype=np.float32)
    with torch.inference_mode():
        for first in range(0, len(order), batch_size):
            index = order[first : first + batch_size]
            ids, mask = pad_batch([sequences[i] for i in index], device_t)
            with autocast_for(device_t):
                vectors = model.embed(ids, mask, pooling=pooling, conjoin=conjoin)
            out[index] = vectors.float().cpu().numpy()
    return out
