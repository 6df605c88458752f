"""Prediction heads and masked pooling; every head understands one or two strands.

Inputs are the backbone's output ``h (batch, L, n_strands * d_model)``. With two strands
(parameter-sharing RC model) strand 0 is the forward strand and strand 1 the reverse complement
stored at the forward strand's positions:

* :class:`MLMHead` adds the strand-1 logits with the vocabulary complemented -> RC-equivariant
  token logits;
* :class:`SequenceHead` pools each strand *strand-aware* (``first`` means position 0 on the
  forward strand and the last real position on the RC strand, whose 5' end that is) and averages
  the strands -> RC-invariant;
* :class:`TokenHead` averages the strands per position -> per-base predictions that follow RC.

Classifier weights start at N(0, initializer_range) with zero bias, so a fresh head predicts
near-uniform classes: the initial cross-entropy is ~log(num_classes).
"""

from __future__ import annotations

import torch
from torch import nn

from genomamba.model.config import HeadConfig, ModelConfig
from genomamba.model.rc import permute_vocab, strands


def pool(h: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """Masked pooling over positions: (batch, L, c) -> (batch, c).

    ``mean``/``max`` over real positions only; ``first`` = position 0; ``last`` = the last real
    position (``lengths - 1``).
    """
    if how == "mean":
        if mask is None:
            return h.mean(1)
        m = mask[..., None].to(h.dtype)
        return (h * m).sum(1) / lengths[:, None].to(h.dtype)
    if how == "max":
        return (h if mask is None else h.masked_fill(~mask[..., None], float("-inf"))).amax(1)
    if how == "first":
        return h[:, 0]
    if how == "last":
        return h[torch.arange(h.shape[0], device=h.device), lengths - 1]
    raise ValueError(f"unknown pooling {how!r}")


def pool_strands(
    h: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor, how: str, n_strands: int
) -> torch.Tensor:
    """Pool each strand and average them: (batch, L, n_strands*d) -> (batch, d).

    For the RC strand ``first``/``last`` swap, because its 5' end is at our last real position.
    """
    hs = strands(h, n_strands)
    pooled = pool(hs[:, :, 0], mask, lengths, how)
    if n_strands == 2:
        mirrored = {"first": "last", "last": "first"}.get(how, how)
        pooled = 0.5 * (pooled + pool(hs[:, :, 1], mask, lengths, mirrored))
    return pooled


def merge_strands(h: torch.Tensor, n_strands: int) -> torch.Tensor:
    """Per-position strand average: (batch, L, n_strands*d) -> (batch, L, d)."""
    return h if n_strands == 1 else strands(h, 2).mean(2)


class MLMHead(nn.Module):
    """Masked-LM logits (batch, L, vocab). ``forward(h, weight)``: ``weight`` is the embedding
    matrix when tied (the head then owns only a bias), else None (the head's own ``decoder``)."""

    def __init__(self, config: ModelConfig, complement: torch.Tensor):
        super().__init__()
        self.n_strands = config.n_strands
        self.tied = config.head.tie_embeddings
        if not self.tied:
            self.decoder = nn.Linear(config.d_model, config.vocab_size, bias=False)
            nn.init.normal_(self.decoder.weight, std=config.initializer_range)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.register_buffer("complement", complement.clone(), persistent=False)

    def forward(self, h: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = weight if self.tied else self.decoder.weight
        if w is None:
            raise ValueError("a tied MLM head needs the embedding weight")
        if self.n_strands == 1:
            return nn.functional.linear(h, w, self.bias)
        hs = strands(h, 2)
        fwd = nn.functional.linear(hs[:, :, 0], w, self.bias)
        rc = nn.functional.linear(hs[:, :, 1], w, self.bias)
        # the RC strand predicts the complement of the base at this position
        return 0.5 * (fwd + permute_vocab(rc, self.complement))


class SequenceHead(nn.Module):
    """One prediction per sequence: masked pooling -> dropout -> linear -> (batch, num_labels)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        head: HeadConfig = config.head
        self.n_strands, self.pooling = config.n_strands, head.pooling
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = nn.Linear(config.d_model, head.num_labels)
        _init_classifier(self.classifier, config.initializer_range)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor) -> torch.Tensor:
        pooled = pool_strands(h, mask, lengths, self.pooling, self.n_strands)
        return self.classifier(self.dropout(pooled))


class TokenHead(nn.Module):
    """One prediction per base: (batch, L, num_labels); labels are assumed strand-symmetric."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_strands = config.n_strands
        self.dropout = nn.Dropout(config.head.dropout)
        self.classifier = nn.Linear(config.d_model, config.head.num_labels)
        _init_classifier(self.classifier, config.initializer_range)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(merge_strands(h, self.n_strands)))


def _init_classifier(linear: nn.Linear, std: float) -> None:
    nn.init.normal_(linear.weight, std=std)
    nn.init.zeros_(linear.bias)
    linear.bias._no_reinit = True  # keep zero under init_weights too (explicit, not by luck)


def build_head(config: ModelConfig, complement: torch.Tensor) -> nn.Module | None:
    task = config.head.task
    if task == "mlm":
        return MLMHead(config, complement)
    if task == "sequence":
        return SequenceHead(config)
    if task == "token":
        return TokenHead(config)
    return None
