"""The model a user holds: backbone + head, padding, RC conjoining, losses, embeddings, inference.

``GenomambaModel(config)``; ``forward(input_ids, attention_mask=None, *, lengths=None, labels=None,
conjoin=None) -> ModelOutput``. Inputs are right-padded token ids (batch, L) from
:mod:`genomamba.alphabet` with either a 0/1 ``attention_mask`` or per-row ``lengths``. Padding
never changes a real position's result: a sequence gives the same embedding, logits and loss
alone, batched with longer ones, or padded to any length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genomamba.model.backbone import Backbone, init_weights, resolve_padding
from genomamba.model.config import ModelConfig
from genomamba.model.heads import build_head, merge_strands, pool_strands
from genomamba.model.rc import conjoin_token_logits, flip_real, reverse_complement_ids

IGNORE_INDEX = -100  # label value that never counts in a per-token loss


@dataclass
class ModelOutput:
    """``logits``: (batch, L, vocab) for mlm, (batch, num_labels) for sequence, (batch, L, num_labels)
    for token heads, None without a head. ``loss``: scalar when labels were given. ``hidden_states``:
    backbone output for x (batch, L, hidden_size). ``lengths``: (batch,) real lengths."""

    logits: torch.Tensor | None
    loss: torch.Tensor | None
    hidden_states: torch.Tensor
    lengths: torch.Tensor


class GenomambaModel(nn.Module):
    """Backbone plus the head named in ``config.head`` (see :mod:`genomamba.model.heads`)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = Backbone(config)
        self.head = build_head(config, self.backbone.complement)
        init_weights(self, config)

    # -- public API -----------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        lengths: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        conjoin: bool | None = None,
    ) -> ModelOutput:
        """Logits (and loss if ``labels``) for a right-padded batch.

        ``conjoin`` averages the predictions on x and on RC(x) (post-hoc conjoining); None means
        "in eval mode, for rc_strategy 'ph'". Labels: mlm/token (batch, L) ids with -100 ignored
        (padded positions are ignored anyway); sequence: (batch,) class ids (multiclass), (batch,)
        or (batch, 1) 0/1 (binary), (batch, num_labels) 0/1 (multilabel) or values (regression).

        Raises:
            ValueError: bad mask/lengths (see :func:`~genomamba.model.backbone.resolve_padding`).
        """
        mask, lengths = resolve_padding(input_ids, attention_mask, lengths)
        ids = input_ids.long()
        if not self._conjoin(conjoin):
            hidden = self.backbone(ids, mask)
            logits = self._logits(hidden, mask, lengths)
        else:
            hidden, hidden_rc, mask2, lengths2 = self._both_strands(ids, mask, lengths)
            logits = None
            if self.head is not None:
                both = self._logits(torch.cat([hidden, hidden_rc]), mask2, lengths2)
                logits = self._conjoin_logits(*both.chunk(2), lengths)
        loss = None if labels is None or logits is None else self.loss(logits, labels, mask)
        return ModelOutput(logits=logits, loss=loss, hidden_states=hidden, lengths=lengths)

    @torch.inference_mode()
    def predict(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        """:meth:`forward` in eval mode under ``torch.inference_mode``: no autograd state is kept."""
        was_training = self.training
        self.eval()
        try:
            return self.forward(input_ids, attention_mask, **kwargs)
        finally:
            self.train(was_training)

    def embed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        lengths: torch.Tensor | None = None,
        pooling: str | None = None,
        conjoin: bool | None = None,
        layer: int | None = None,
    ) -> torch.Tensor:
        """Embeddings of width ``d_model``: per base (batch, L, d) with padded rows zero, or pooled
        (batch, d) with ``pooling`` in mean/max/first/last/center. Two-strand models average their
        strands (strand-aware for first/last); with ``conjoin`` the embedding of RC(x) is averaged
        in, position-matched. Either way the result is RC-symmetric for ``ps`` and conjoined models.
        ``layer`` (1..n_layer; None = the last) takes the residual stream after that layer, through
        the final norm: the last layer is often not the best one for a probe.

        Raises:
            ValueError: ``layer`` outside 1..n_layer.
        """
        mask, lengths = resolve_padding(input_ids, attention_mask, lengths)
        if layer is not None and not 1 <= layer <= self.config.n_layer:
            raise ValueError(f"layer must be 1..{self.config.n_layer} (the model's layers), got {layer}")
        ids = input_ids.long()
        s = self.config.n_strands
        if self._conjoin(conjoin):
            hidden, hidden_rc, _, _ = self._both_strands(ids, mask, lengths, depth=layer)
        else:
            hidden, hidden_rc = self.backbone(ids, mask, depth=layer), None
        if pooling is not None:
            out = pool_strands(hidden, mask, lengths, pooling, s)
            if hidden_rc is not None:
                out = 0.5 * (out + pool_strands(hidden_rc, mask, lengths, pooling, s))
            return out
        out = merge_strands(hidden, s)
        if hidden_rc is not None:
            out = 0.5 * (out + flip_real(merge_strands(hidden_rc, s), lengths))
        return out if mask is None else out * mask[..., None].to(out.dtype)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None):
        """The head's loss in fp32 (see :meth:`forward` for label shapes). A per-token loss with no
        counted token is 0, not NaN (all-N or fully masked batches)."""
        head = self.config.head
        logits = logits.float()
        if head.task in ("mlm", "token"):
            labels = labels.long()
            if mask is not None:
                labels = labels.masked_fill(~mask, IGNORE_INDEX)
            total = F.cross_entropy(
                logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
            )
            return total / (labels != IGNORE_INDEX).sum().clamp(min=1)
        if head.problem_type == "multiclass":
            return F.cross_entropy(logits, labels.long().reshape(-1))
        if head.problem_type == "binary":
            return F.binary_cross_entropy_with_logits(logits[:, 0], labels.float().reshape(-1))
        if head.problem_type == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        return F.mse_loss(logits, labels.float().reshape(logits.shape))

    def num_parameters(self) -> int:
        """Distinct parameters (tied ones counted once)."""
        return sum(p.numel() for p in self.parameters())

    # -- internals ------------------------------------------------------------------------------
    def _conjoin(self, conjoin: bool | None) -> bool:
        if conjoin is None:
            return self.config.rc_strategy == "ph" and not self.training
        return conjoin

    def _both_strands(self, ids, mask, lengths, depth: int | None = None):
        """Backbone on x and RC(x) in one batch; RC(x) reverses each row's real part only."""
        rc = reverse_complement_ids(ids, lengths, self.backbone.complement)
        mask2 = None if mask is None else torch.cat([mask, mask])
        hidden, hidden_rc = self.backbone(torch.cat([ids, rc]), mask2, depth=depth).chunk(2)
        return hidden, hidden_rc, mask2, torch.cat([lengths, lengths])

    def _logits(self, hidden, mask, lengths):
        task = self.config.head.task
        if task == "mlm":
            return self.head(hidden, self.backbone.embedding.weight if self.head.tied else None)
        if task == "sequence":
            return self.head(hidden, mask, lengths)
        if task == "token":
            return self.head(hidden)
        return None

    def _conjoin_logits(self, logits_x, logits_rc, lengths):
        task = self.config.head.task
        if task == "sequence":
            return 0.5 * (logits_x + logits_rc)
        table = self.backbone.complement if task == "mlm" else None
        return conjoin_token_logits(logits_x, logits_rc, lengths, table)
