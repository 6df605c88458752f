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

The forward is three steps, each its own method so that the chunk-by-chunk pass over a long
sequence (:meth:`BiMambaMixer.forward_chunk`, :meth:`BiMambaMixer.right_state`,
:mod:`genomamba.model.streaming`) runs the same code: :meth:`~BiMambaMixer.project` (in_proj),
:meth:`~BiMambaMixer.pass_inputs` (conv + SiLU and scan inputs of one pass),
:meth:`~BiMambaMixer.mix` (the two scans, gate, out_proj, combine). The steps hand on named
structures: a :class:`Branch` per direction (its parameters, its out_proj, what its in_proj made)
and a :class:`Pass` per scan (the scan's inputs and the branch each strand runs).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from genomamba.model.config import ModelConfig
from genomamba.model.mixer import (
    MambaMixer,
    ScanDirection,
    ScanInputs,
    channels_last,
    own_rows,
    scan,
    scan_inputs,
    split_last,
    time_major,
)
from genomamba.model.norm import RMSNorm
from genomamba.ops import bidirectional_selective_scan
from genomamba.ops.conv import depthwise_conv_silu


class Branch(NamedTuple):
    """One scan direction of a :class:`BiMambaMixer` in one call: its parameters, the out_proj that
    maps its output back, and what its in_proj made of the input. With tied projections both
    directions hold the same out_proj and the very same x and z (in_proj runs once).

    Built on every call rather than kept: LoRA (:mod:`genomamba.model.lora`) replaces the
    projections in place after construction, and the call must run the replacements.
    """

    params: ScanDirection
    out_proj: nn.Module
    x: torch.Tensor  # (batch, L, strands * d_inner): rows for the conv
    z: torch.Tensor  # (batch, strands * d_inner, L): the gate, time-major


class Pass(NamedTuple):
    """One scan over every strand (left to right or right to left): the scan's inputs, and in strand
    order the branch each strand runs (whose out_proj maps that strand's output back)."""

    inputs: ScanInputs
    branches: tuple[Branch, ...]


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

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if hidden.dim() == 3:
            return self.forward(hidden[:, :, None], mask)[:, :, 0]
        branches = self.project(hidden)
        left = self.pass_inputs(branches, anti_causal=False, mask=mask)
        right = self.pass_inputs(branches, anti_causal=True, mask=mask)
        return self.mix(left, right)

    def forward_chunk(self, hidden: torch.Tensor, rows: slice, left_state: torch.Tensor | None,
                      right_state: torch.Tensor | None):
        """One chunk of a long sequence (:mod:`genomamba.model.streaming`).

        ``hidden`` (batch, L_halo, strands, d_model) is the chunk with ``d_conv - 1`` rows of halo
        on each side (fewer at the sequence's ends), ``rows`` the chunk's own rows. ``left_state``:
        the left-to-right scan's state after the chunk to the left; ``right_state``: the
        right-to-left scan's state after the chunk to the right (:meth:`right_state`); None at the
        sequence's ends. Returns (output (batch, len(rows), strands, d_model), the left-to-right
        scan's state after this chunk).
        """
        branches = self.project(hidden)
        left = self.pass_inputs(branches, anti_causal=False, mask=None, rows=rows)
        right = self.pass_inputs(branches, anti_causal=True, mask=None, rows=rows)
        return self.mix(left, right, states=(left_state, right_state))

    def right_state(self, hidden: torch.Tensor, rows: slice, state: torch.Tensor | None) -> torch.Tensor:
        """The right-to-left scan's state after scanning the chunk ``rows`` of ``hidden`` (as
        :meth:`forward_chunk` takes it) from ``state`` (that after the chunk to its right; None at
        the sequence's end): (batch, strands * d_inner, d_state), fp32."""
        right = self.pass_inputs(self.project(hidden), anti_causal=True, mask=None, rows=rows)
        return scan(right.inputs, reverse=True, initial_state=state, return_final_state=True)[1]

    def project(self, hidden: torch.Tensor) -> tuple[Branch, Branch]:
        """in_proj of ``hidden`` (batch, L, strands, d_model): the ``(fwd, rev)`` branches, each with
        the x stream as (batch, L, strands * d_inner) rows for the conv (a view for one strand) and
        z as the scan's time-major (batch, strands * d_inner, L); strands are channel blocks."""
        fwd = self._branch(self.fwd, self.in_proj, self.out_proj, hidden)
        if self.tie_projections:
            return fwd, fwd._replace(params=self.rev)
        return fwd, self._branch(self.rev, self.in_proj_rev, self.out_proj_rev, hidden)

    def _branch(self, params: ScanDirection, in_proj: nn.Module, out_proj: nn.Module,
                hidden: torch.Tensor) -> Branch:
        xz = in_proj(hidden)
        x, z = split_last(xz, self.d_inner)
        x = x.reshape(*xz.shape[:2], hidden.shape[2] * self.d_inner)
        return Branch(params, out_proj, x, time_major(z))

    def pass_inputs(self, branches: tuple[Branch, Branch], anti_causal: bool, mask: torch.Tensor | None,
                    rows: slice | None = None) -> Pass:
        """Conv + SiLU and scan inputs of one pass: left to right (causal conv) or right to left
        (``anti_causal``), every strand with the branch its orientation gives it; of the chunk's
        ``rows`` only, when given (the conv reads the other rows as halo)."""
        fwd, rev = branches
        di = self.d_inner
        strands = fwd.x.shape[2] // di
        # The RC strand reads our axis right to left, so it runs each direction the other way round:
        # left to right, strand 0 runs fwd and strand 1 rev; right to left, strand 0 rev, strand 1 fwd.
        by_strand = ((rev, fwd) if anti_causal else (fwd, rev))[:strands]
        x = _blocks([b.x for b in by_strand], di, dim=2)
        z = _blocks([b.z for b in by_strand], di, dim=1)
        # strand 1 reads the mixer mirrored: its kernels are tap-flipped
        weight = torch.cat([b.params.kernel(flipped=s == 1) for s, b in enumerate(by_strand)])
        has_bias = by_strand[0].params.conv1d.bias is not None
        bias = torch.cat([b.params.conv1d.bias for b in by_strand]) if has_bias else None
        u = depthwise_conv_silu(x, weight, bias, anti_causal, mask).transpose(1, 2)
        inputs = scan_inputs([b.params for b in by_strand], own_rows(u, rows), own_rows(z, rows))
        return Pass(inputs, by_strand)

    def mix(self, left: Pass, right: Pass, states: tuple | None = None):
        """Both passes' scans, gated, through out_proj and combined: (batch, L, strands, d_model).

        ``states`` (left-to-right initial state, right-to-left initial state), either None for
        zeros, runs a chunk of a longer sequence and returns (output, the left-to-right scan's
        final state). A one-pass forward with tied projections summed scans both directions in one
        call, gated once; a chunk gates each direction (silu(z) distributes over the sum).
        """
        strands = len(left.branches)
        fused = self.tie_projections and self.combine == "sum"
        if states is None and fused:
            l2r, r2l = left.inputs, right.inputs
            y = bidirectional_selective_scan(
                l2r.u, l2r.delta, l2r.A, l2r.B, l2r.C, l2r.D, z=l2r.z, delta_bias=l2r.delta_bias,
                delta_softplus=True, u_rev=r2l.u, delta_rev=r2l.delta, A_rev=r2l.A, B_rev=r2l.B,
                C_rev=r2l.C, D_rev=r2l.D, delta_bias_rev=r2l.delta_bias,
                decay=l2r.decay if l2r.decay == r2l.decay else "full",
            )
            return self.out_proj(channels_last(y, strands))
        left_state, right_state = states if states is not None else (None, None)
        y_l = scan(left.inputs, initial_state=left_state, return_final_state=states is not None)
        if states is not None:
            y_l, left_state = y_l
        y_r = scan(right.inputs, reverse=True, initial_state=right_state)
        if fused:
            out = self.out_proj(channels_last(y_l + y_r, strands))
        else:
            out_l, out_r = self._out(y_l, left.branches), self._out(y_r, right.branches)
            out = out_l + out_r if self.combine == "sum" else out_l * out_r
        return out if states is None else (out, left_state)

    def _out(self, y: torch.Tensor, by_strand: tuple[Branch, ...]) -> torch.Tensor:
        """out_proj of each strand block by the branch that produced it: (batch, L, strands, d_model)."""
        y4 = channels_last(y, len(by_strand))
        if self.tie_projections:
            return self.out_proj(y4)
        return torch.stack([b.out_proj(y4[:, :, s]) for s, b in enumerate(by_strand)], dim=2)


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
        return self.add(h, self.mixer(self.mixer_input(h), mask))

    def mixer_input(self, h: torch.Tensor) -> torch.Tensor:
        """RMSNorm of the residual stream h (batch, L, strands * d_model), as (batch, L, strands, d_model)."""
        b, length, width = h.shape
        return self.norm(h.view(b, length, width // self.d_model, self.d_model))

    def add(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The residual update ``h + out`` in h's dtype; out (batch, L, strands, d_model)."""
        return h + out.reshape(h.shape).to(h.dtype)
