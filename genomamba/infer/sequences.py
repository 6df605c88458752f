"""A loaded model over in-memory sequences: pooled or per-base embeddings, pseudo-log-likelihoods.

What :mod:`genomamba.api` and the benchmark's probe need when the sequences are already read:
no windows, no files. The model runs in eval mode under ``torch.inference_mode`` (no autograd
graph), on batches sorted by length so padding stays small; padding never changes a result.
Sequences are uint8 token-id arrays (:mod:`genomamba.alphabet`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from genomamba.alphabet import ACGT_IDS, MASK_ID
from genomamba.runtime.batching import pad_batch
from genomamba.runtime.precision import autocast_for


def _by_length(sequences: Sequence[np.ndarray], batch_size: int):
    """Index batches of similar lengths (fewer padded positions)."""
    order = np.argsort([len(s) for s in sequences], kind="stable")
    return [order[first : first + batch_size] for first in range(0, len(order), batch_size)]


def embed_sequences(
    model,
    sequences: Sequence[np.ndarray],
    device: torch.device,
    *,
    pooling: str = "mean",
    conjoin: bool | None = None,
    layer: int | None = None,
    batch_size: int = 128,
) -> np.ndarray:
    """Pooled embeddings ``(len(sequences), d_model)`` float32, in input order.

    ``model``: a ``GenomambaModel`` in eval mode on ``device`` (:func:`genomamba.infer.runner.load_model`).
    ``pooling``: a fixed pooling (mean, max, first, last, center); ``conjoin``, ``layer``: see
    ``GenomambaModel.embed``.
    """
    out = np.empty((len(sequences), model.config.d_model), dtype=np.float32)
    with torch.inference_mode():
        for index in _by_length(sequences, batch_size):
            ids, mask = pad_batch([sequences[i] for i in index], device)
            with autocast_for(device):
                vectors = model.embed(ids, mask, pooling=pooling, conjoin=conjoin, layer=layer)
            out[index] = vectors.float().cpu().numpy()
    return out


def per_base_embeddings(
    model,
    sequences: Sequence[np.ndarray],
    device: torch.device,
    *,
    conjoin: bool | None = None,
    layer: int | None = None,
    batch_size: int = 64,
) -> list[np.ndarray]:
    """One ``(length, d_model)`` float32 array per sequence, in input order."""
    out: list[np.ndarray | None] = [None] * len(sequences)
    with torch.inference_mode():
        for index in _by_length(sequences, batch_size):
            ids, mask = pad_batch([sequences[i] for i in index], device)
            with autocast_for(device):
                hidden = model.embed(ids, mask, pooling=None, conjoin=conjoin, layer=layer)
                hidden = hidden.float().cpu().numpy()
            for row, i in enumerate(index):
                out[i] = hidden[row, : len(sequences[i])]
    return out


def pseudo_log_likelihood(model, sequence: np.ndarray, device: torch.device, batch_size: int = 64) -> float:
    """Sum over the A/C/G/T positions of log P(base | the sequence with that position masked),
    in nats; each masked copy is one row of a batch (cost: length forward passes)."""
    positions = np.flatnonzero(np.isin(sequence, ACGT_IDS))
    total = 0.0
    base = torch.as_tensor(sequence.astype(np.int64), device=device)
    with torch.inference_mode():
        for first in range(0, len(positions), batch_size):
            chunk = torch.as_tensor(positions[first : first + batch_size], device=device)
            ids = base.repeat(len(chunk), 1)
            ids[torch.arange(len(chunk), device=device), chunk] = MASK_ID
            with autocast_for(device):
                logits = model.predict(ids).logits.float()
            log_probs = torch.log_softmax(logits[torch.arange(len(chunk), device=device), chunk], dim=-1)
            total += float(log_probs.gather(1, base[chunk][:, None]).sum())
    return total
