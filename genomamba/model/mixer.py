"""The Mamba mixer: in_proj -> depthwise conv -> SiLU -> x_proj/dt_proj -> selective scan -> gate -> out_proj.

This module holds the pieces every mixer shares:

* :func:`time_major` / :func:`channels_last` -- the only place where the model's
  ``(batch, length, [strands,] channels)`` layout and the scan's ``(batch, channels, length)``
  shape meet. Strands (two for the parameter-sharing RC model) become consecutive channel blocks,
  which the scan sees as ``groups`` of ``B``/``C``. Everything the scan reads (u, z, delta, B, C)
  stays time-major, rows of channels as the projections and the fused conv write them, the layout
  the GPU kernels load in wide coalesced vectors (a transposed view, no copy for one strand).
  The conv + SiLU + padding mask is :func:`genomamba.ops.conv.depthwise_conv_silu`, which takes
  and returns time-major rows (on CPU it runs PyTorch's conv1d on channel-major rows and hands
  back a transposed view, the layout the CPU scan prefers).
* :class:`ScanDirection` -- the parameters of one scan direction (conv, x_proj, dt_proj,
  A_log, D) with Mamba's initialisation, and the helpers that turn a gated stream into scan
  inputs.
* :class:`ScanInputs` and :func:`scan` -- what one scan call reads, and the call itself (with the
  state carried in and out when a sequence is run a chunk at a time).
* :class:`MambaMixer` -- the plain unidirectional (causal) Mamba mixer for one strand.

Every mixer's forward is a chain of steps -- project (in_proj), conv (+ SiLU), scan inputs
(x_proj, dt_proj), scan, out (gate, out_proj, combine) -- each a method or function of its own, so
that the one-pass forward and the chunk-by-chunk pass over a long sequence
(:mod:`genomamba.model.streaming`, through each mixer's ``forward_chunk``) run the same code.
A chunk's conv reads ``d_conv - 1`` rows of halo on each side (the caller passes the chunk with
its halo and says which rows are the chunk's own), so its output equals the one-pass conv there.

Glossary (Mamba paper -> code): x_t -> ``u`` (post-conv activations, (batch, d_inner, L));
Delta -> ``delta`` before the bias, softplus(delta + dt_proj.bias) inside the scan;
A -> ``-exp(A_log)``; B, C -> input-dependent (batch, d_state, L) slices of ``x_proj(u)``;
D -> skip connection; z -> the gate branch of in_proj.

Padding contract (right padding, ``mask`` True at real positions): the x stream is zeroed at
padded positions before the conv and ``u`` is zeroed there before the scan. A causal conv or a
left-to-right scan never looks past a real position anyway; an anti-causal conv then sees the
same zeros past the end as for an unpadded sequence, and a right-to-left scan reaches the last
real position with state exactly 0 (``h = exp(dt*A) h + dt*B*0`` keeps 0).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from genomamba.model.config import MixerConfig
from genomamba.ops import selective_scan
from genomamba.ops.conv import depthwise_conv_silu


def time_major(t: torch.Tensor) -> torch.Tensor:
    """``(batch, length, strands, c) -> (batch, strands * c, length)`` stored time-major.

    A transposed view where strides allow (one strand); otherwise one copy into (batch, length,
    strands * c) rows, never a channel-major one.
    """
    b, length, s, c = t.shape
    return t.reshape(b, length, s * c).transpose(1, 2)


class _SplitLast(torch.autograd.Function):
    """``t (..., 2c) -> (t[..., :c], t[..., c:])`` as views, with a backward that writes the two
    gradients side by side in one copy. Autograd's own slice backward zero-fills a full-width
    buffer for each slice, copies into it, and adds the two buffers."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, c: int):
        ctx.shape, ctx.c = t.shape, c
        return t[..., :c], t[..., c:]

    @staticmethod
    def backward(ctx, d_first, d_second):
        ref = d_first if d_first is not None else d_second
        if ref is None:
            return None, None
        halves = [g if g is not None else ref.new_zeros(*ctx.shape[:-1], w)
                  for g, w in ((d_first, ctx.c), (d_second, ctx.shape[-1] - ctx.c))]
        return torch.cat(halves, dim=-1), None


def split_last(t: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``c`` and the remaining channels of ``t`` (views; see :class:`_SplitLast`)."""
    return _SplitLast.apply(t, c)


def channels_last(t: torch.Tensor, strands: int) -> torch.Tensor:
    """``(batch, strands * c, length) -> (batch, length, strands, c)``, a view."""
    b, sc, length = t.shape
    return t.view(b, strands, sc // strands, length).permute(0, 3, 1, 2)


class ScanDirection(nn.Module):
    """Parameters of one scan direction over ``d_inner`` channels, with Mamba's initialisation.

    * ``A_log``: S4D-real, A = -(1, 2, ..., d_state) for every channel, (d_inner, d_state), for
      ``decay="full"``; (d_inner, 1) for ``decay="ladder"``, whose A is -exp(A_log) (1, 2, ..., d_state)
      at every step of training (one rate per channel, the ladder kept), and for ``decay="scalar"``,
      whose A is -exp(A_log) in every state, drawn uniformly from [1, 16] as Mamba-2 draws its heads';
    * ``dt_proj.bias``: inverse softplus of dt drawn log-uniformly in [dt_min, dt_max]
      (floored at dt_init_floor), so the initial step sizes span that range;
    * ``dt_proj.weight``: uniform(+-dt_rank**-0.5 * dt_scale) (or that constant);
    * ``D`` = 1.
    ``A_log``, ``D`` and ``dt_proj.bias`` carry ``_no_weight_decay = True``; ``dt_proj.bias``
    also ``_no_reinit`` so model-level init leaves it alone.
    """

    def __init__(self, d_model: int, cfg: MixerConfig):
        super().__init__()
        d_inner = cfg.expand * d_model
        self.d_inner, self.d_state = d_inner, cfg.d_state
        self.dt_rank = cfg.resolved_dt_rank(d_model)
        self.conv1d = nn.Conv1d(d_inner, d_inner, cfg.d_conv, groups=d_inner, bias=cfg.conv_bias)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * cfg.d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        self.decay = cfg.decay
        self.A_log = nn.Parameter(torch.empty(d_inner, cfg.d_state if self.decay == "full" else 1))
        self.D = nn.Parameter(torch.empty(d_inner))
        self.cfg = cfg
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        cfg = self.cfg
        std = self.dt_rank**-0.5 * cfg.dt_scale
        if cfg.dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        else:
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(
            torch.rand(self.d_inner) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min)
        ).clamp(min=cfg.dt_init_floor)
        # inverse of softplus: x = dt + log(1 - exp(-dt)), written with expm1 for small dt.
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        if self.decay == "ladder":
            self.A_log.zero_()  # rate 1: A = -(1..N), the ladder that A() multiplies in
        elif self.decay == "scalar":
            self.A_log.copy_(torch.log(torch.empty(self.d_inner, 1).uniform_(1.0, 16.0)))
        else:
            s4d_real = torch.arange(1, self.d_state + 1, dtype=torch.float32)  # A = -(1..N) in every channel
            self.A_log.copy_(torch.log(s4d_real).expand_as(self.A_log))
        self.D.fill_(1.0)
        self.dt_proj.bias._no_reinit = True
        for p in (self.A_log, self.D, self.dt_proj.bias):
            p._no_weight_decay = True

    def kernel(self, flipped: bool = False) -> torch.Tensor:
        """Conv weight (d_inner, 1, K); ``flipped`` reverses the taps (a parameter flip, not data)."""
        w = self.conv1d.weight
        return w.flip(-1) if flipped else w

    def A(self) -> torch.Tensor:
        """(d_inner, d_state) fp32; for a ladder each channel's rate times 1..d_state, for a scalar
        decay each channel's rate in every state."""
        rate = -torch.exp(self.A_log.float())
        if self.decay == "ladder":
            return rate * torch.arange(1, self.d_state + 1, device=rate.device, dtype=rate.dtype)
        if self.decay == "scalar":
            return rate.expand(self.d_inner, self.d_state)
        return rate


def ssm_inputs(directions: list[ScanDirection], u: torch.Tensor):
    """Scan inputs for a stream whose channel blocks use different directions' parameters.

    Args:
        directions: one :class:`ScanDirection` per channel block (strand), in block order.
        u: (batch, blocks * d_inner, L) post-conv activations.

    Returns:
        ``(delta, B, C, A, D, delta_bias)`` as :func:`genomamba.ops.selective_scan` takes them:
        delta (batch, blocks*d_inner, L); B, C (batch, d_state, L) for one block, else
        (batch, blocks, d_state, L) -- block g's channels read group g; A (blocks*d_inner, N);
        D, delta_bias (blocks*d_inner,) fp32.
    """
    s = len(directions)
    first = directions[0]
    b, _, length = u.shape
    u4 = u.view(b, s, first.d_inner, length)
    # (b, s, L, d_inner) @ (s, d_inner, R+2N) -> (b, s, L, R+2N): x_proj writes time-major rows,
    # so B and C come out as (b, s, N, L) views with unit stride along the state.
    w_x = torch.stack([d.x_proj.weight for d in directions])
    x_dbl = torch.matmul(u4.transpose(-1, -2), w_x.transpose(-1, -2))
    dt_in, B, C = x_dbl.split([first.dt_rank, first.d_state, first.d_state], dim=-1)
    w_dt = torch.stack([d.dt_proj.weight for d in directions])
    delta = torch.matmul(dt_in, w_dt.transpose(-1, -2))  # (b, s, L, d_inner)
    delta = time_major(delta.transpose(1, 2))
    B, C = B.transpose(-1, -2), C.transpose(-1, -2)
    if s == 1:
        B, C = B[:, 0], C[:, 0]
    A = torch.cat([d.A() for d in directions])
    D = torch.cat([d.D.float() for d in directions])
    delta_bias = torch.cat([d.dt_proj.bias.float() for d in directions])
    return delta, B, C, A, D, delta_bias


class ScanInputs(NamedTuple):
    """The tensors of one scan call over a stream whose channel blocks (strands) may use different
    directions' parameters. Shapes as :func:`ssm_inputs` returns them, plus u and z (batch,
    channels, L)."""

    u: torch.Tensor
    z: torch.Tensor | None
    delta: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    A: torch.Tensor
    D: torch.Tensor
    delta_bias: torch.Tensor
    #: how A is structured (the directions' ``decay``): passed to the scan as ``decay``
    decay: str = "full"


def scan_inputs(directions: list[ScanDirection], u: torch.Tensor, z: torch.Tensor | None) -> ScanInputs:
    """:func:`ssm_inputs` of ``u`` bundled with ``u`` and the gate ``z`` (see :class:`ScanInputs`)."""
    delta, B, C, A, D, delta_bias = ssm_inputs(directions, u)
    decays = {d.decay for d in directions}
    return ScanInputs(u, z, delta, B, C, A, D, delta_bias, decays.pop() if len(decays) == 1 else "full")


def scan(inputs: ScanInputs, *, reverse: bool = False, initial_state: torch.Tensor | None = None,
         return_final_state: bool = False):
    """:func:`genomamba.ops.selective_scan` of one pass, gated by its ``z`` (softplus on delta).

    ``initial_state`` (batch, channels, d_state) and ``return_final_state`` carry the state across
    the chunks of a long sequence; returns y (batch, channels, L), or (y, final state)."""
    i = inputs
    return selective_scan(i.u, i.delta, i.A, i.B, i.C, i.D, z=i.z, delta_bias=i.delta_bias,
                          delta_softplus=True, initial_state=initial_state,
                          return_final_state=return_final_state, reverse=reverse, decay=i.decay)


def own_rows(t: torch.Tensor, rows: slice | None) -> torch.Tensor:
    """``t`` (batch, channels, L_halo) narrowed along its last axis to the chunk's own ``rows``
    (None: all of it, a one-pass forward)."""
    return t if rows is None else t[..., rows]


class MambaMixer(nn.Module):
    """Mamba's unidirectional (causal) mixer: output at position t depends on positions <= t only.

    ``forward(hidden (batch, L, d_model), mask (batch, L) bool or None) -> (batch, L, d_model)``.
    """

    def __init__(self, d_model: int, cfg: MixerConfig):
        super().__init__()
        self.d_inner = cfg.expand * d_model
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=cfg.proj_bias)
        self.fwd = ScanDirection(d_model, cfg)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=cfg.proj_bias)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if hidden.dim() == 4:  # (batch, L, 1, d) from a block; one strand only
            return self.forward(hidden[:, :, 0], mask)[:, :, None]
        inputs = self.pass_inputs(hidden, mask)
        return self.out(scan(inputs))

    def forward_chunk(self, hidden: torch.Tensor, rows: slice, left_state: torch.Tensor | None,
                      right_state: None = None):
        """One chunk of a long sequence (:mod:`genomamba.model.streaming`): ``hidden`` (batch,
        L_halo, 1, d_model) is the chunk with ``d_conv - 1`` rows of halo on its left (fewer at the
        sequence's start; rows on its right are read by nothing here), ``rows`` the chunk's own
        rows; ``left_state`` the scan state after the chunk to the left (None: the first chunk).
        ``right_state`` is for the bidirectional mixer's signature: a causal mixer has none.
        Returns (output (batch, len(rows), 1, d_model), the state after this chunk)."""
        inputs = self.pass_inputs(hidden[:, :, 0], None, rows)
        y, state = scan(inputs, initial_state=left_state, return_final_state=True)
        return self.out(y)[:, :, None], state

    def pass_inputs(self, hidden: torch.Tensor, mask: torch.Tensor | None, rows: slice | None = None):
        """in_proj, causal conv + SiLU, x_proj/dt_proj: the :class:`ScanInputs` of ``hidden``
        (batch, L, d_model), of its ``rows`` only when given (the conv reads the rest as halo)."""
        xz = self.in_proj(hidden)  # (batch, L, 2*d_inner)
        x, z = split_last(xz, self.d_inner)
        z = time_major(z[:, :, None])
        u = depthwise_conv_silu(x, self.fwd.kernel(), self.fwd.conv1d.bias, False, mask)
        u = u.transpose(1, 2)  # (batch, d_inner, L)
        return scan_inputs([self.fwd], own_rows(u, rows), own_rows(z, rows))

    def out(self, y: torch.Tensor) -> torch.Tensor:
        """out_proj of the gated scan output y (batch, d_inner, L): (batch, L, d_model)."""
        return self.out_proj(channels_last(y, 1)[:, :, 0])
