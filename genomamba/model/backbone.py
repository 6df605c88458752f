"""Embedding -> residual BiMamba blocks -> final RMSNorm, with padding, checkpointing and init.

``Backbone.forward(input_ids (batch, L) int, mask (batch, L) bool | None) -> (batch, L, hidden_size)``
where ``hidden_size = n_strands * d_model``. For the parameter-sharing RC model the two strand
halves are ``[..., :d_model]`` (forward strand) and ``[..., d_model:]`` (reverse complement, at the
forward strand's positions).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from genomamba.model.bimamba import Block
from genomamba.model.config import ModelConfig
from genomamba.model.norm import RMSNorm
from genomamba.model.rc import complement_table


def resolve_padding(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Turn an attention mask or per-row lengths into ``(mask, lengths)``.

    Padding is on the right: row b is real at positions ``< lengths[b]``. ``mask`` is None when no
    row is padded (the mixers then skip the masking work); ``lengths`` is always a long tensor.

    Raises:
        ValueError: both given; a mask that is not ones-then-zeros; a length outside [1, L].
    """
    batch, length = input_ids.shape
    if attention_mask is not None and lengths is not None:
        raise ValueError("give attention_mask or lengths, not both")
    positions = torch.arange(length, device=input_ids.device)
    if attention_mask is not None:
        if tuple(attention_mask.shape) != (batch, length):
            raise ValueError(f"attention_mask must be {(batch, length)}, got {tuple(attention_mask.shape)}")
        mask = attention_mask.to(device=input_ids.device).bool()
        lengths = mask.sum(1)
        if not torch.equal(mask, positions < lengths[:, None]):
            raise ValueError("attention_mask must be right padding: ones for real positions, then zeros")
    elif lengths is not None:
        lengths = torch.as_tensor(lengths, device=input_ids.device).long().reshape(batch)
        mask = positions < lengths[:, None]
    else:
        return None, torch.full((batch,), length, dtype=torch.long, device=input_ids.device)
    if bool((lengths < 1).any()) or bool((lengths > length).any()):
        raise ValueError(f"every sequence needs a length in [1, {length}], got {lengths.tolist()}")
    return (None if bool(mask.all()) else mask), lengths


class Backbone(nn.Module):
    """Token embedding, ``n_layer`` residual blocks and the final norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.n_strands = config.n_strands
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        # derived from the alphabet (recorded in config.json), so not a tensor of model.safetensors
        self.register_buffer("complement", complement_table(config.vocab_size), persistent=False)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = RMSNorm(config.d_model, eps=config.norm_eps)
        self.gradient_checkpointing = config.gradient_checkpointing

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(batch, L) ids -> (batch, L, n_strands * d_model); strand 1 embeds the complement in place."""
        h = self.embedding(input_ids)
        if self.n_strands == 2:
            h = torch.cat([h, self.embedding(self.complement[input_ids])], dim=-1)
        return h

    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor | None = None, *, depth: int | None = None
    ) -> torch.Tensor:
        """Hidden states ``(batch, L, hidden_size)`` after the final norm. ``depth`` runs only the
        first ``depth`` layers (an intermediate layer's representation, for probes)."""
        h = self.initial_residual(input_ids)
        # checkpointing only matters when autograd records; inference_mode/no_grad skip it
        use_ckpt = self.gradient_checkpointing and torch.is_grad_enabled()
        for layer in self.layers[:depth]:
            if use_ckpt:
                h = checkpoint(layer, h, mask, use_reentrant=False)
            else:
                h = layer(h, mask)
        return self.final_norm(h)

    def initial_residual(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The residual stream before the first layer: :meth:`embed_tokens`, in fp32 when
        ``residual_in_fp32`` (a model cast to half precision still accumulates its residual in fp32)."""
        h = self.embed_tokens(input_ids.long())
        if self.config.residual_in_fp32 and h.dtype in (torch.float16, torch.bfloat16):
            h = h.float()
        return h

    def final_norm(self, h: torch.Tensor) -> torch.Tensor:
        """The final RMSNorm of the residual stream h (batch, L, hidden_size), per strand."""
        b, length, width = h.shape
        return self.norm_f(h.view(b, length, self.n_strands, self.config.d_model)).reshape(b, length, width)


@torch.no_grad()
def init_weights(model: nn.Module, config: ModelConfig) -> None:
    """Mamba's model-level initialisation.

    Embeddings ~ N(0, initializer_range); Linear biases zero (except those marked ``_no_reinit``:
    dt_proj); out_proj weights re-drawn as kaiming-uniform / sqrt(n_layer) (GPT-2's residual
    scaling, one residual branch per layer). The mixer's own SSM init (A, dt, D) is untouched.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.bias is not None:
            if not getattr(module.bias, "_no_reinit", False):
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=config.initializer_range)
    if config.rescale_prenorm_residual:
        for name, p in model.named_parameters():
            if name.endswith(("out_proj.weight", "out_proj_rev.weight")):
                nn.init.kaiming_uniform_(p, a=math.sqrt(5))
                p /= math.sqrt(config.n_layer)
