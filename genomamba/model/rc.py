"""Reverse-complement (RC) strategies and the tensor helpers they need.

Two strategies (``ModelConfig.rc_strategy``), plus ``"none"``:

* ``"ps"`` -- parameter sharing (as Caduceus-PS). The hidden state carries two strands of
  ``d_model`` channels: strand 0 embeds x, strand 1 embeds the complement of x *at the same
  positions*; every block runs the same weights on both (the RC strand reads the mixer
  mirrored, see :mod:`genomamba.model.bimamba`). With ``RC`` on hidden states defined as "swap
  the strands and reverse the real positions", the backbone satisfies
  ``backbone(RC(x)) = RC(backbone(x))`` exactly, by construction. The LM head adds the strand-1
  logits with the vocabulary permuted by the complement, so token logits are RC-equivariant;
  classification heads average the two strands, so they are RC-invariant.
* ``"ph"`` -- post-hoc conjoining (as Caduceus-Ph): an ordinary single-strand model, trained
  with RC augmentation (the data loader's job), whose predictions on x and on RC(x) are averaged
  at inference (by default whenever the model is in eval mode).

Reverse complement of a right-padded batch reverses only the real part of each row, so real
bases stay at the front and pads stay at the end (a plain flip would put pads first).
The complement table comes from :mod:`genomamba.alphabet`.
"""

from __future__ import annotations

import numpy as np
import torch

from genomamba.alphabet import COMPLEMENT_IDS


def complement_table(vocab_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Long tensor (vocab_size,): complement id of each token; ids beyond the alphabet map to themselves."""
    table = np.arange(vocab_size, dtype=np.int64)
    table[: len(COMPLEMENT_IDS)] = COMPLEMENT_IDS
    return torch.as_tensor(table, device=device)


def reversed_positions(lengths: torch.Tensor, length: int) -> torch.Tensor:
    """Index (batch, length): ``n-1-i`` for real positions ``i < n``, ``i`` for padded ones."""
    pos = torch.arange(length, device=lengths.device)
    n = lengths[:, None]
    return torch.where(pos < n, n - 1 - pos, pos)


def flip_real(t: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse axis 1 of ``t`` (batch, L, ...) within each row's real length; padded entries stay put."""
    index = reversed_positions(lengths, t.shape[1])
    index = index.view(*index.shape, *([1] * (t.dim() - 2))).expand_as(t)
    return torch.gather(t, 1, index)


def reverse_complement_ids(input_ids: torch.Tensor, lengths: torch.Tensor, table: torch.Tensor):
    """RC of each row's real part of ``input_ids`` (batch, L); padded positions keep their place
    (their ids are complemented too, which leaves ``[PAD]`` as it is)."""
    return table[flip_real(input_ids, lengths)]


def permute_vocab(logits: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Complement the vocabulary axis (last) of ``logits``: ``out[..., v] = logits[..., comp(v)]``."""
    return logits.index_select(-1, table.to(logits.device))


def conjoin_token_logits(
    logits_x: torch.Tensor, logits_rc: torch.Tensor, lengths: torch.Tensor, table: torch.Tensor | None
) -> torch.Tensor:
    """Average per-position predictions on x and RC(x), mapped back to x's positions.

    ``table`` given: the last axis is the vocabulary, complemented (LM logits); None: labels are
    strand-symmetric (per-base classes), only positions are mapped.
    """
    back = flip_real(logits_rc, lengths)
    if table is not None:
        back = permute_vocab(back, table)
    return 0.5 * (logits_x + back)


def strands(h: torch.Tensor, n_strands: int) -> torch.Tensor:
    """View ``(batch, L, n_strands * d)`` as ``(batch, L, n_strands, d)``."""
    b, length, width = h.shape
    return h.view(b, length, n_strands, width // n_strands)


def rc_hidden(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """RC of a two-strand hidden state (batch, L, 2d): swap strands, reverse real positions.

    The identity the PS backbone satisfies: ``backbone(RC ids) == rc_hidden(backbone(ids))``.
    """
    return flip_real(strands(h, 2).flip(2).reshape(h.shape), lengths)
