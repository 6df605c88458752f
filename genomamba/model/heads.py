"""Prediction heads and masked pooling; every head understands one or two strands.

Inputs are the backbone's output ``h (batch, L, n_strands * d_model)``. With two strands
(parameter-sharing RC model) strand 0 is the forward strand and strand 1 the reverse complement
stored at the forward strand's positions:

* :class:`MLMHead` adds the strand-1 logits with the vocabulary complemented -> RC-equivariant
  token logits;
* :class:`SequenceHead` pools each strand *strand-aware* (``first`` means position 0 on the
  forward strand and the last real position on the RC strand, whose 5' end that is) and averages
  the strands -> RC-invariant. Besides the fixed poolings it can learn where to look
  (``attention``, :class:`AttentionPool`) or keep where things lie (``binned``,
  :func:`binned_mean`), which short position-aligned tasks (splice sites, promoters) need: a mean
  over 400 positions drops the one that matters;
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
    position (``lengths - 1``); ``center`` = the mean of the middle real position(s)
    (``(lengths - 1) // 2`` and ``lengths // 2``: one position for odd lengths, two for even),
    a set that maps onto itself under reverse complement.
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
    rows = torch.arange(h.shape[0], device=h.device)
    if how == "last":
        return h[rows, lengths - 1]
    if how == "center":
        return 0.5 * (h[rows, (lengths - 1) // 2] + h[rows, lengths // 2])
    raise ValueError(f"unknown pooling {how!r}")


def binned_mean(h: torch.Tensor, lengths: torch.Tensor, bins: int) -> torch.Tensor:
    """(batch, L, c) -> (batch, bins, c): the mean over each of ``bins`` equal stretches of every
    sequence's real positions.

    A sequence of n positions is laid on [0, bins): position t covers [t bins / n, (t + 1) bins / n),
    and bin k is the average of the positions weighted by how much of [k, k + 1) each covers. The
    weights are exact integer overlaps (in units of 1/n), so reading the sequence backwards reads
    the bins backwards, exactly: a two-strand model's bins stay RC-invariant whatever n is, and a
    sequence shorter than ``bins`` spreads each position over several bins instead of leaving some
    empty. Padding covers nothing. Concatenated, the bins tell the classifier *where* a signal
    lies (a TATA box ~30 bases upstream of the start site, the junction in the middle of a
    splice window), which a mean over all positions cannot.
    """
    n = lengths.clamp(min=1)[:, None, None]
    t = torch.arange(h.shape[1], device=h.device)[None, :, None]
    k = torch.arange(bins, device=h.device)[None, None, :]
    overlap = torch.minimum((t + 1) * bins, (k + 1) * n) - torch.maximum(t * bins, k * n)
    weights = overlap.clamp(min=0).to(h.dtype) / n.to(h.dtype)  # (batch, L, bins); columns sum to 1
    return torch.einsum("blk,blc->bkc", weights, h)


class AttentionPool(nn.Module):
    """Learned attention over positions: (batch, L, d) -> (batch, d).

    ``n_heads`` heads each score every real position with a linear map of its hidden state,
    take a softmax over the real positions, and average their own ``d / n_heads`` channels with
    those weights. The scores start at zero, so a fresh head pools exactly as ``mean`` and
    learns to concentrate where the label is decided.
    """

    def __init__(self, d_model: int, n_heads: int = 4):
        super().__init__()
        if d_model % n_heads:
            n_heads = 1  # narrow test models: one head over all channels
        self.n_heads = n_heads
        self.score = nn.Linear(d_model, n_heads)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, length, d = h.shape
        scores = self.score(h).float()  # (b, L, heads); softmax in fp32 under autocast
        if mask is not None:
            scores = scores.masked_fill(~mask[..., None], float("-inf"))
        weights = scores.softmax(1).to(h.dtype)
        per_head = h.reshape(b, length, self.n_heads, d // self.n_heads)
        return torch.einsum("blh,blhc->bhc", weights, per_head).reshape(b, d)


def pool_strands(
    h: torch.Tensor,
    mask: torch.Tensor | None,
    lengths: torch.Tensor,
    how: str,
    n_strands: int,
    attention: AttentionPool | None = None,
    bins: int = 8,
) -> torch.Tensor:
    """Pool each strand and average them: (batch, L, n_strands*d) -> (batch, d), or
    (batch, bins * d) for ``how="binned"``.

    For the RC strand ``first``/``last`` swap, because its 5' end is at our last real position,
    and its bins are read in reverse order for the same reason. ``how="attention"`` pools with
    ``attention`` (the same module on both strands, so a two-strand model stays RC-invariant).
    """
    hs = strands(h, n_strands)

    def one(x: torch.Tensor, how: str, rc_strand: bool = False) -> torch.Tensor:
        if how == "binned":
            binned = binned_mean(x, lengths, bins)
            return (binned.flip(1) if rc_strand else binned).flatten(1)
        if how != "attention":
            return pool(x, mask, lengths, how)
        if attention is None:
            raise ValueError("attention pooling is learned: only a sequence head has it")
        return attention(x, mask)

    pooled = one(hs[:, :, 0], how)
    if n_strands == 2:
        mirrored = {"first": "last", "last": "first"}.get(how, how)
        pooled = 0.5 * (pooled + one(hs[:, :, 1], mirrored, rc_strand=True))
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
        self.n_strands, self.pooling, self.bins = config.n_strands, head.pooling, head.bins
        if head.pooling == "attention":
            self.attention = AttentionPool(config.d_model)
        self.dropout = nn.Dropout(head.dropout)
        width = config.d_model * (head.bins if head.pooling == "binned" else 1)
        self.classifier = nn.Linear(width, head.num_labels)
        _init_classifier(self.classifier, config.initializer_range)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor) -> torch.Tensor:
        attention = getattr(self, "attention", None)
        pooled = pool_strands(h, mask, lengths, self.pooling, self.n_strands, attention, self.bins)
        return self.classify(pooled)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """(..., d_model) pooled hidden states -> (..., num_labels) logits: the head after its pooling
        (streamed windows pool chunk by chunk, then call this)."""
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
