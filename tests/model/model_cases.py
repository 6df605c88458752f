"""Shared builders for the model tests: tiny configs, seeded models, random DNA batches."""

from __future__ import annotations

import torch

from genomamba.alphabet import A_ID, N_ID, VOCAB_SIZE
from genomamba.model import GenomambaModel, preset


def tiny_config(**overrides):
    """The tiny preset shrunk further for tests: d_model 16, 2 layers, d_state 4."""
    base = {"d_model": 16, "n_layer": 2, "mixer": {"d_state": 4}}
    for key, value in overrides.items():
        if key == "mixer":
            base["mixer"] = {**base["mixer"], **value}
        else:
            base[key] = value
    return preset("tiny", **base)


def make_model(seed: int = 0, dtype=torch.float64, **overrides) -> GenomambaModel:
    """A seeded tiny model in eval mode (float64 by default, so equalities can be tight)."""
    torch.manual_seed(seed)
    return GenomambaModel(tiny_config(**overrides)).to(dtype).eval()


def random_bases(batch: int, length: int, seed: int = 0, with_n: bool = True) -> torch.Tensor:
    """Token ids of random bases (A C G T, and N when ``with_n``), shape (batch, length)."""
    g = torch.Generator().manual_seed(seed)
    high = N_ID + 1 if with_n else N_ID
    return torch.randint(A_ID, high, (batch, length), generator=g)


def pad_batch(rows: list[torch.Tensor], length: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D id tensors to ``length`` with random garbage ids (any token), plus the 0/1 mask.

    Garbage rather than [PAD] makes leaks visible: nothing at a padded position may matter.
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB_SIZE, (len(rows), length), generator=g)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask

# The scan backends keep their state in fp32 even for float64 inputs (the reference's compute
# dtype), so two mathematically equal paths through the model agree to fp32 rounding, not fp64.
TOL = {"rtol": 2e-5, "atol": 2e-6}


def scramble_attention(model) -> None:
    """Random attention scores: a fresh AttentionPool starts at zero (mean pooling), which would
    hide a pooling that looked at padded positions or at the wrong strand."""
    attention = getattr(model.head, "attention", None)
    if attention is not None:
        with torch.no_grad():
            attention.score.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(5))
