"""Chunked selective scan in pure PyTorch: the CPU backend (same contract as ``selective_scan_ref``).

How it is parallel. The recurrence ``h_t = a_t ⊙ h_{t-1} + b_t`` (``a_t = exp(Δ_t A)``,
``b_t = Δ_t B_t u_t``; glossary in :mod:`genomamba.ops.selective_scan_ref`) is elementwise in
(batch, dim, d_state), so a sequential loop over positions has only ``batch·dim·d_state`` lanes per step
and is dominated by per-op overhead. We cut the sequence into *blocks* of ``K`` *chunks* of ``T``
positions and scan all ``K`` chunks of a block at once:

1. pass 1 runs the recurrence inside every chunk from a zero state (loop of ``T`` steps, each step one
   ``addcmul`` over ``K·batch·dim·d_state`` lanes) and keeps only each chunk's last local state;
2. a loop over the ``K`` chunks carries the true state: ``start_{k+1} = (Π_chunk a) ⊙ start_k + end_k``,
   with the chunk's total decay computed as ``exp(A·ΣΔ)``;
3. pass 2 reruns the recurrence in place from the true chunk starts, leaving every ``h_t`` of the block;
   ``y_t = C_t · h_t`` is then one batched matmul over d_state.

Every factor is a product of per-step decays ``exp(Δ·A)``, never ``exp(-cumsum(Δ·A))``, so nothing
overflows whatever Δ and A are. The state goes from block to block in a Python loop; the work arrays hold
one block (``T·K`` positions × batch × dim × d_state, about 1M elements), so memory is bounded by the
block, never by the sequence. Exponentials use ``exp2`` with ``A·log2(e)``: ~3× faster than ``exp`` on CPU.
``reverse=True`` walks the same arrays right to left (no flipped copy).

Backward (a ``torch.autograd.Function``) saves only the inputs and one state per block (O(inputs)). For
each block, last to first, it recomputes the block's states from its saved start state, runs the adjoint
recurrence ``dh_t = C_t dy_t + a_{t+1} ⊙ dh_{t+1}`` with the same chunked machinery in the opposite
direction, and forms ``dA, dΔ, dB, dC, du, dh_0`` from ``dh_t`` and ``a_t ⊙ h_{t-1}``. The elementwise
parts (bias, softplus, ``Δ·u``, ``D·u``, gate) stay in plain autograd, all O(batch·dim·length).

Speed (docs/benchmarks.md, "Selective scan (CPU)"): the passes over the block arrays are bound by cache
bandwidth and ``exp2`` throughput, so this path is several times faster than the sequential reference,
not orders of magnitude; it is the CPU fallback and the test double of the Triton kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genomamba.ops.selective_scan_ref import check_scan_inputs

__all__ = ["selective_scan_chunked", "bidirectional_selective_scan_chunked"]

LOG2E = 1.0 / math.log(2.0)
_BLOCK_ELEMENTS = 1 << 20  # work-array size per block: 4 MiB in fp32, well inside a small CPU's L3
_LANES_PER_OP = 1 << 17  # elements per loop op, enough to amortise the ~2 us per-op overhead


def _pos_major(X: torch.Tensor, Lp: int) -> torch.Tensor:
    """``(b, c, L)`` → contiguous ``(Lp, b, c)``, zero-padded at the end (zero Δ and input are neutral)."""
    b, c, L = X.shape
    out = X.new_empty(Lp, b, c)
    out[L:].zero_()
    # a 2-D transpose copy takes ATen's blocked path: ~3x faster than copying a 3-D permuted view
    out[:L].view(L, b * c).copy_(X.reshape(b * c, L).t())
    return out


def _from_pos_major(XP: torch.Tensor, L: int, b: int, c: int) -> torch.Tensor:
    """``(Lp, b, ...)`` with ``c`` trailing elements per batch → contiguous ``(b, c, L)``."""
    return XP[:L].reshape(L, b * c).t().contiguous().view(b, c, L)


def _scan_chunks(a, x, ptot, carry, reverse, after, pp, buf):
    """In-place chunked linear scan of one block; returns the carry leaving the block (a new tensor).

    ``a, x``: ``(K, T, M)`` views (decays and inputs); ``ptot``: ``(K, M)`` product of ``a`` over each chunk;
    ``carry``: ``(M,)``. Positions are processed in increasing index order, or decreasing when ``reverse``.

    * ``after=False`` (the forward recurrence): ``x_t ← a_t x_prev + x_t``; the carry is the state.
    * ``after=True`` (the adjoint recurrence): ``x_t ← a_prev x_prev + x_t``; the carry entering a chunk is
      already multiplied by its decay, and the carry leaving is ``a_last · x_last``.
    """
    K, T, M = x.shape
    order = list(range(T - 1, -1, -1)) if reverse else list(range(T))
    first, last = order[0], order[-1]
    # Pass 1 over every chunk but the last one scanned: no chunk needs that one's local end state (the carry
    # leaving the block comes out of pass 2). With K = 1 there is no pass 1 at all.
    sel = slice(0, K - 1) if not reverse else slice(1, K)
    if K > 1:
        cur, prev = x[sel, first], first
        for i, t in enumerate(order[1:]):
            alpha = a[sel, prev] if after else a[sel, t]
            cur = torch.addcmul(x[sel, t], alpha, cur, out=pp[i % 2, : K - 1])
            prev = t
        if after:
            cur = cur * a[sel, last]
    # Carry across chunks: ins[k] is the carry entering chunk k; `cur` row j holds chunk j (forward) or
    # chunk j + 1 (reverse) because pass 1 skipped the last chunk scanned.
    ins = buf[:K]
    if not reverse:
        ins[0].copy_(carry)
        for k in range(K - 1):
            torch.addcmul(cur[k], ptot[k], ins[k], out=ins[k + 1])
    else:
        ins[K - 1].copy_(carry)
        for k in range(K - 1, 0, -1):
            torch.addcmul(cur[k - 1], ptot[k], ins[k], out=ins[k - 1])
    # Pass 2, in place, from the true chunk starts.
    if after:
        x[:, first].add_(ins)
    else:
        x[:, first].addcmul_(a[:, first], ins)
    prev = first
    for t in order[1:]:
        x[:, t].addcmul_(a[:, prev] if after else a[:, t], x[:, prev])
        prev = t
    kl = 0 if reverse else K - 1  # the last chunk scanned
    return x[kl, last] * a[kl, last] if after else x[kl, last].clone()


class _Plan:
    """Sizes of the position-major work layout for one call."""

    def __init__(self, b: int, g: int, dg: int, n: int, L: int, T: int | None, K: int | None):
        lanes = b * g * dg * n
        self.T = T or 8
        self.K = K or max(1, min(64, -(-_LANES_PER_OP // lanes), _BLOCK_ELEMENTS // (lanes * self.T) or 1))
        self.Lb = self.T * self.K
        self.Lp = -(-L // self.T) * self.T
        self.nblk = -(-self.Lp // self.Lb)
        self.b, self.g, self.dg, self.n, self.L, self.M = b, g, dg, n, L, lanes

    def block(self, j: int) -> tuple[int, int, int]:
        s = j * self.Lb
        e = min(self.Lp, s + self.Lb)
        return s, e, (e - s) // self.T


class _Work:
    """Work arrays reused by every block (fresh multi-MB tensors per block would cost page faults)."""

    def __init__(self, p: _Plan, dtype, device, n_big: int):
        shape = (p.Lb, p.b, p.g, p.n, p.dg)
        self.big = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_big)]
        self.pp = torch.empty(2, max(p.K - 1, 1), p.M, dtype=dtype, device=device)
        self.buf = torch.empty(p.K, p.M, dtype=dtype, device=device)


def _decays(p: _Plan, w_a, dtP, A2, s, e, k):
    """``a = 2^(Δ·A·log2 e)`` for positions [s, e) into ``w_a``, and each chunk's total decay ``(k, M)``."""
    a = w_a[: e - s]
    torch.mul(dtP[s:e], A2, out=a)
    a.exp2_()
    dsum = dtP[s:e].view(k, p.T, p.b, p.g, 1, p.dg).sum(1)
    ptot = (dsum * A2).exp2_()
    return a, ptot.view(k, p.M)


def _forward_blocks(p: _Plan, dtP, xP, BP, CP, A2, h0, reverse, work: _Work, keep_starts: bool):
    """Scan every block; returns ``(yP (Lp, b, g, 1, dg), h_last (M,), block start states or None)``."""
    yP = dtP.new_empty(p.Lp, p.b, p.g, 1, p.dg)
    starts = dtP.new_empty(p.nblk, p.M) if keep_starts else None
    h = h0
    for j in range(p.nblk - 1, -1, -1) if reverse else range(p.nblk):
        s, e, k = p.block(j)
        a, ptot = _decays(p, work.big[0], dtP, A2, s, e, k)
        x = work.big[1][: e - s]
        torch.mul(xP[s:e], BP[s:e], out=x)  # b_t = Δ_t u_t B_t
        if starts is not None:
            starts[j].copy_(h)
        h = _scan_chunks(a.view(k, p.T, p.M), x.view(k, p.T, p.M), ptot, h, reverse, False, work.pp, work.buf)
        nb = (e - s) * p.b * p.g
        torch.bmm(CP[s:e].view(nb, 1, p.n), x.view(nb, p.n, p.dg), out=yP[s:e].view(nb, 1, p.dg))
    return yP, h, starts


class _ChunkedScan(torch.autograd.Function):
    """Core scan ``y_t = Σ_n C_t h_t`` with ``h_t = exp(Δ_t A) h_{t-1} + x_t B_t`` (``x = Δ·u`` given).

    Inputs: dt, x ``(b, d, L)``; A ``(d, n)``; B, C ``(b, g, n, L)``; h0 ``(b, d, n)``; all one float dtype.
    Outputs: y ``(b, d, L)`` and h_last ``(b, d, n)`` in that dtype.
    """

    @staticmethod
    def forward(ctx, dt, x, A, B, C, h0, reverse, T, K):
        b, d, L = dt.shape
        g, n = B.shape[1], B.shape[2]
        p = _Plan(b, g, d // g, n, L, T, K)
        A2 = (A * LOG2E).reshape(g, p.dg, n).transpose(1, 2).contiguous()  # (g, n, dg)
        dtP = _pos_major(dt, p.Lp).view(p.Lp, b, g, 1, p.dg)
        xP = _pos_major(x, p.Lp).view(p.Lp, b, g, 1, p.dg)
        BP = _pos_major(B.reshape(b, g * n, L), p.Lp).view(p.Lp, b, g, n, 1)
        CP = _pos_major(C.reshape(b, g * n, L), p.Lp).view(p.Lp, b, g, 1, n)
        h0P = h0.reshape(b, g, p.dg, n).transpose(-1, -2).reshape(p.M)
        work = _Work(p, dt.dtype, dt.device, 2)
        yP, h, starts = _forward_blocks(p, dtP, xP, BP, CP, A2, h0P, reverse, work, any(ctx.needs_input_grad))
        ctx.save_for_backward(dt, x, A, B, C, starts)
        ctx.plan, ctx.reverse = p, reverse
        y = _from_pos_major(yP, L, b, d)
        h_last = h.view(b, g, n, p.dg).transpose(-1, -2).reshape(b, d, n)
        return y, h_last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_last):
        dt, x, A, B, C, starts = ctx.saved_tensors
        p, reverse = ctx.plan, ctx.reverse
        b, g, dg, n, L, Lp = p.b, p.g, p.dg, p.n, p.L, p.Lp
        d = g * dg
        A2 = (A * LOG2E).reshape(g, dg, n).transpose(1, 2).contiguous()
        A_nat = A.reshape(g, dg, n).transpose(1, 2).contiguous()
        dtP = _pos_major(dt, Lp).view(Lp, b, g, 1, dg)
        xP = _pos_major(x, Lp).view(Lp, b, g, 1, dg)
        BP = _pos_major(B.reshape(b, g * n, L), Lp).view(Lp, b, g, n, 1)
        CP = _pos_major(C.reshape(b, g * n, L), Lp).view(Lp, b, g, n, 1)  # column layout this time
        dyP = _pos_major(dy if dy is not None else dt.new_zeros(b, d, L), Lp).view(Lp, b, g, 1, dg)
        if dh_last is None:
            R = dt.new_zeros(p.M)
        else:
            R = dh_last.reshape(b, g, dg, n).transpose(-1, -2).reshape(p.M)
        ddtP, dxP = torch.empty_like(dtP), torch.empty_like(xP)
        dBP, dCP = torch.empty_like(BP), torch.empty_like(CP)
        dA = A2.new_zeros(g, n, dg)
        work = _Work(p, dt.dtype, dt.device, 3)
        for j in range(p.nblk) if reverse else range(p.nblk - 1, -1, -1):
            s, e, k = p.block(j)
            nb = (e - s) * b * g
            a, ptot = _decays(p, work.big[0], dtP, A2, s, e, k)
            h = work.big[1][: e - s]
            torch.mul(xP[s:e], BP[s:e], out=h)
            _scan_chunks(a.view(k, p.T, p.M), h.view(k, p.T, p.M), ptot, starts[j], reverse, False,
                         work.pp, work.buf)
            # dC_t[n] = Σ_dg h_t[n, dg] dy_t[dg]
            torch.bmm(h.view(nb, n, dg), dyP[s:e].view(nb, dg, 1), out=dCP[s:e].view(nb, n, 1))
            gr = work.big[2][: e - s]
            torch.mul(dyP[s:e], CP[s:e], out=gr)  # C_t dy_t, the input of the adjoint recurrence
            R = _scan_chunks(a.view(k, p.T, p.M), gr.view(k, p.T, p.M), ptot, R, not reverse, True,
                             work.pp, work.buf)  # gr now holds dh_t
            torch.bmm(BP[s:e].view(nb, 1, n), gr.view(nb, n, dg), out=dxP[s:e].view(nb, 1, dg))
            torch.bmm(gr.view(nb, n, dg), xP[s:e].view(nb, dg, 1), out=dBP[s:e].view(nb, n, 1))
            # ∂loss/∂(Δ_t A) = dh_t ⊙ a_t ⊙ h_{t-1}, formed in a's buffer (a_t h_{t-1} = h_t - b_t would lose
            # precision by cancellation when the decay is strong).
            a2, h2 = a.view(e - s, p.M), h.view(e - s, p.M)
            if reverse:  # the previous state of position t is h_{t+1}; at the block end, the block's start
                a2[:-1].mul_(h2[1:])
                a2[-1].mul_(starts[j])
            else:
                a2[1:].mul_(h2[:-1])
                a2[0].mul_(starts[j])
            a.mul_(gr)
            dA += (a * dtP[s:e]).sum((0, 1))
            a.mul_(A_nat)
            torch.sum(a, dim=-2, keepdim=True, out=ddtP[s:e])
        ddt = _from_pos_major(ddtP, L, b, d)
        dx = _from_pos_major(dxP, L, b, d)
        dB = _from_pos_major(dBP, L, b, g * n).view(b, g, n, L)
        dC = _from_pos_major(dCP, L, b, g * n).view(b, g, n, L)
        dA_out = dA.transpose(1, 2).reshape(d, n)
        dh0 = R.view(b, g, n, dg).transpose(-1, -2).reshape(b, d, n)
        return ddt, dx, dA_out, dB, dC, dh0, None, None, None


def _core(u, delta, A, B, C, D, delta_bias, delta_softplus, initial_state, reverse, chunk_size, block_chunks):
    """Ungated ``(y (b, d, L), h_last (b, d, n))`` in the compute dtype (fp64 for fp64 ``u``, else fp32)."""
    shapes = check_scan_inputs(u, delta, A, B, C, D, None, delta_bias, initial_state)
    batch, dim, length, d_state, groups = shapes
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32
    uc = u.to(cd)
    dt = delta.to(cd)
    if delta_bias is not None:
        dt = dt + delta_bias.to(cd)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    Bg = (B.unsqueeze(1) if groups == 0 else B).to(cd)
    Cg = (C.unsqueeze(1) if groups == 0 else C).to(cd)
    if initial_state is None:
        h0 = uc.new_zeros(batch, dim, d_state)
    else:
        h0 = initial_state.to(cd)
    if length == 0:
        y, h = uc.new_zeros(batch, dim, 0), h0
    else:
        y, h = _ChunkedScan.apply(dt, dt * uc, A.to(cd), Bg, Cg, h0, reverse, chunk_size, block_chunks)
    if D is not None:
        y = y + D.to(cd)[:, None] * uc
    return y, h


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    *,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
    reverse: bool = False,
    chunk_size: int | None = None,
    block_chunks: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective scan, chunk-parallel in pure PyTorch; same arguments and results as ``selective_scan_ref``.

    Args:
        u, delta, z: ``(batch, dim, length)``; A ``(dim, d_state)``; B, C ``(batch, d_state, length)`` or
            ``(batch, groups, d_state, length)``; D, delta_bias ``(dim,)``;
            initial_state ``(batch, dim, d_state)``.
        chunk_size: positions per chunk ``T`` (default 8).
        block_chunks: chunks per block ``K`` (default: ~128K lanes per loop op, <= 1M elements per block).

    Returns:
        ``y`` in ``u.dtype`` or ``(y, h_last)``; computed in fp32 (fp64 when ``u`` is fp64), ``h_last`` in
        that precision.

    Raises:
        ValueError: inconsistent shapes (see ``check_scan_inputs``) or a non-positive chunk size.
    """
    if (chunk_size is not None and chunk_size < 1) or (block_chunks is not None and block_chunks < 1):
        raise ValueError(f"chunk_size and block_chunks must be >= 1, got {chunk_size}, {block_chunks}")
    if z is not None and tuple(z.shape) != tuple(u.shape):
        raise ValueError(f"selective_scan: z must have shape {tuple(u.shape)}, got {tuple(z.shape)}")
    y, h = _core(u, delta, A, B, C, D, delta_bias, delta_softplus, initial_state, reverse, chunk_size,
                 block_chunks)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    y = y.to(u.dtype)
    return (y, h) if return_final_state else y


def bidirectional_selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    *,
    u_rev: torch.Tensor | None = None,
    delta_rev: torch.Tensor | None = None,
    A_rev: torch.Tensor | None = None,
    B_rev: torch.Tensor | None = None,
    C_rev: torch.Tensor | None = None,
    D_rev: torch.Tensor | None = None,
    delta_bias_rev: torch.Tensor | None = None,
    chunk_size: int | None = None,
    block_chunks: int | None = None,
) -> torch.Tensor:
    """``(scan(u, ...) + reverse_scan(u_rev, ...)) · silu(z)``, as ``bidirectional_selective_scan_ref``.

    Each ``*_rev`` left as None reuses the forward tensor; the sum is formed in fp32 and cast once.

    Raises:
        ValueError: inconsistent shapes in either direction.
    """
    if z is not None and tuple(z.shape) != tuple(u.shape):
        raise ValueError(f"selective_scan: z must have shape {tuple(u.shape)}, got {tuple(z.shape)}")
    ur = u if u_rev is None else u_rev
    if tuple(ur.shape) != tuple(u.shape):
        raise ValueError(f"selective_scan: u_rev must have shape {tuple(u.shape)}, got {tuple(ur.shape)}")
    y_f, _ = _core(u, delta, A, B, C, D, delta_bias, delta_softplus, None, False, chunk_size, block_chunks)
    y_r, _ = _core(
        ur,
        delta if delta_rev is None else delta_rev,
        A if A_rev is None else A_rev,
        B if B_rev is None else B_rev,
        C if C_rev is None else C_rev,
        D if D_rev is None else D_rev,
        delta_bias if delta_bias_rev is None else delta_bias_rev,
        delta_softplus,
        None,
        True,
        chunk_size,
        block_chunks,
    )
    y = y_f + y_r
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(u.dtype)
