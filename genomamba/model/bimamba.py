"""The bidirectional mixer (BiMamba) and the pre-norm residual block built around a mixer.

Two scan directions, each with its own conv, x_proj, dt_proj, A_log and D:

* ``fwd`` scans left to right after a causal conv;
* ``rev`` scans right to left after an anti-causal conv.

Nothing is flipped: the anti-causal conv reads the taps ahead of each position instead of behind
(:func:`~genomamba.ops.conv.depthwise_conv_silu`) and the reverse scan runs with ``reverse=True``
or inside :func:`~genomamba.ops.bidirectional_selective_scan` (both directions summed and gated
once). As in Caduceus, in_proj and out_proj are shared by the two directions by default
(``tie_projections``); then x and z are shared, the two scans are summed and gated once, and the
sum goes through out_proj once -- exactly ``out_proj((y_fwd + y_rev) * silu(z))``. Untied projections or
``combine="product"`` (Caduceus' ``ew_multiply``: ``out_fwd * out_rev`` after out_proj) take two
scan calls.

Strands (the parameter-sharing RC model): a second strand holds the reverse complement stored
at the forward strand's positions (position i carries the complement of base i). Reading that
strand 5'->3' is reading our axis right to left, so running "the same mixer" on it swaps the
roles: its ``fwd`` direction scans right to left through a mirrored (tap-flipped) anti-causal
conv, and its ``rev`` direction scans left to right through a mirrored causal conv. The two
strands become two channel blocks of one scan call (two B/C groups), so the RC strand costs no
flip and padded sequences need nothing special: the RC strand's first base sits at the last
real position, where the right-to-left scan starts with state 0.
"""

from __future__ import annotations

import torch
from torch import nn

from genomamba.model.config import ModelConfig
from genomamba.model.mixer import (
    MambaMixer,
    ScanDirection,
    channels_last,
    split_last,
    ssm_inputs,
    time_major,
)
from genomamba.model.norm import RMSNorm
from genomamba.ops import bidirectional_selective_scan, selective_scan
from genomamba.ops.conv import depthwise_conv_silu

# Which direction each strand uses in each orientation: left-to-right pass, right-to-left pass.
_L2R = ("fwd", "rev")  # strand 0 (forward) uses fwd, strand 1 (RC) uses rev
_R2L = ("rev", "fwd")


class BiMambaMixer(nn.Module):
    """Bidirectional Mamba mixer over one or two strands.

    ``forward(hidden, mask)``: hidden ``(batch, L, d_model)`` or ``(batch, L, strands, d_model)``;
    mask ``(batch, L)`` bool (True = real, right padding) or None. Returns the same shape.
    """

    def __init__(self, d_model: int, cfg, *, tie_projections: bool = True, combine: str = "sum"):
        super().__init__()
        self.d_inner = cfg.expand * d_model
        self.tie_projections = tie_projections
        self.combine = combine
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=cfg.proj_bias)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=cfg.proj_bias)
        if not tie_projections:
            self.in_proj_rev = nn.Linear(d_model, 2 * self.d_inner, bias=cfg.proj_bias)
            self.out_proj_rev = nn.Linear(self.d_inner, d_model, bias=cfg.proj_bias)
        self.fwd = ScanDirection(d_model, cfg)
        self.rev = ScanDirection(d_model, cfg)

    def _proj(self, name: str, which: str) -> nn.Linear:
        if self.tie_projections or which == "fwd":
            return getattr(self, name)
        return getattr(self, name + "_rev")

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if hidden.dim() == 3:
            return self.forward(hidden[:, :, None], mask)[:, :, 0]
        strands = hidden.shape[2]
        di = self.d_inner
        # x and z streams per direction, strands as channel blocks: x as (batch, L, strands * di)
        # rows for the conv (a view for one strand), z as the scan's time-major (batch, channels, L).
        streams = {}
        for which in ("fwd",) if self.tie_projections else ("fwd", "rev"):
            xz = self._proj("in_proj", which)(hidden)
            x, z = split_last(xz, di)
            streams[which] = (x.reshape(*xz.shape[:2], strands * di), time_major(z))
        if self.tie_projections:
            streams["rev"] = streams["fwd"]

        passes = []
        for roles, anti_causal in ((_L2R, False), (_R2L, True)):
            names = roles[:strands]
            directions = [getattr(self, n) for n in names]
            x = _blocks([streams[n][0] for n in names], di, dim=2)
            z = _blocks([streams[n][1] for n in names], di, dim=1)
            # strand 1 reads the mixer mirrored: its kernels are tap-flipped
            weight = torch.cat([d.kernel(flipped=s == 1) for s, d in enumerate(directions)])
            has_bias = directions[0].conv1d.bias is not None
            bias = torch.cat([d.conv1d.bias for d in directions]) if has_bias else None
            u = depthwise_conv_silu(x, weight, bias, anti_causal, mask).transpose(1, 2)
            passes.append((names, u, z, *ssm_inputs(directions, u)))

        names_l, u_l, z_l, dl_l, B_l, C_l, A_l, D_l, db_l = passes[0]
        names_r, u_r, z_r, dl_r, B_r, C_r, A_r, D_r, db_r = passes[1]
        if self.tie_projections and self.combine == "sum":
            y = bidirectional_selective_scan(
                u_l, dl_l, A_l, B_l, C_l, D_l, z=z_l, delta_bias=db_l, delta_softplus=True,
                u_rev=u_r, delta_rev=dl_r, A_rev=A_r, B_rev=B_r, C_rev=C_r, D_rev=D_r, delta_bias_rev=db_r,
            )
            return self.out_proj(channels_last(y, strands))
        y_l = selective_scan(u_l, dl_l, A_l, B_l, C_l, D_l, z=z_l, delta_bias=db_l, delta_softplus=True)
        y_r = selective_scan(
            u_r, dl_r, A_r, B_r, C_r, D_r, z=z_r, delta_bias=db_r, delta_softplus=True, reverse=True
        )
        out_l = self._out(y_l, names_l)
        out_r = self._out(y_r, names_r)
        return out_l + out_r if self.combine == "sum" else out_l * out_r

    def _out(self, y: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
        """out_proj of each strand block by the direction that produced it: (batch, L, strands, d_model)."""
        y4 = channels_last(y, len(names))
        if self.tie_projections:
            return self.out_proj(y4)
        return torch.stack([self._proj("out_proj", n)(y4[:, :, s]) for s, n in enumerate(names)], dim=2)


def _blocks(streams: list[torch.Tensor], d_inner: int, dim: int) -> torch.Tensor:
    """Channel block s taken from ``streams[s]`` (channels along ``dim``); no copy when shared."""
    if all(s is streams[0] for s in streams):
        return streams[0]
    return torch.cat([t.narrow(dim, s * d_inner, d_inner) for s, t in enumerate(streams)], dim=dim)


class Block(nn.Module):
    """Pre-norm residual block: ``h <- h + mixer(RMSNorm(h))``, per strand.

    ``forward(h (batch, L, strands * d_model), mask) -> same shape``. The residual stream keeps its
    dtype (fp32 when ``residual_in_fp32``, even under bf16 autocast).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.d_model = config.d_model
        self.norm = RMSNorm(config.d_model, eps=config.norm_eps)
        if config.bidirectional:
            self.mixer = BiMambaMixer(
                config.d_model, config.mixer, tie_projections=config.tie_projections, combine=config.combine
            )
        else:
            self.mixer = MambaMixer(config.d_model, config.mixer)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, length, width = h.shape
        strands = width // self.d_model
        out = self.mixer(self.norm(h.view(b, length, strands, self.d_model)), mask)
        return h + out.reshape(b, length, width).to(h.dtype)
