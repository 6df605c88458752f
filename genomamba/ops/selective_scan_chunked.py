"""Chunked selective scan in pure PyTorch: the CPU backend (same contract as ``selective_scan_ref``).

How it is parallel. The recurrence ``h_t = a_t ⊙ h_{t-1} + x_t`` (``a_t = exp(Δ_t A)``, ``x_t = Δ_t u_t B_t``;
glossary in :mod:`genomamba.ops.selective_scan_ref`) is elementwise over the ``M = batch·dim·d_state``
*lanes*, so a loop over positions issues ``length`` tiny ops and is dominated by per-op overhead. We cut the
sequence into *blocks* of ``K`` *chunks* of ``T`` positions and advance all ``K`` chunks of a block at once:

1. pass 1 runs the recurrence inside every chunk from a zero state (``T`` ops over ``K·M`` lanes) and keeps
   only each chunk's last local state;
2. a loop over the ``K`` chunks carries the true state, ``start_{k+1} = (Π_chunk a) ⊙ start_k + end_k``,
   the chunk's total decay being ``exp(A·ΣΔ)``;
3. pass 2 reruns the recurrence in place from the true chunk starts, leaving every ``h_t`` of the block, and
   ``y_t = C_t · h_t`` is one batched matmul over d_state.

Every factor is a product of per-step decays ``exp(Δ·A)`` (never ``exp(-cumsum(Δ·A))``), so nothing
overflows whatever Δ and A are. Exponentials use ``exp2`` with ``A·log2(e)`` (~3x faster than ``exp`` here).

Layout and memory. The state work arrays are position-major, ``(positions, batch, groups, d_state,
dim/groups)``, so that one position is a contiguous run of lanes. The channel-major work (bias, softplus,
``Δ·u``, ``D·u``, the gate, and the layout changes between the caller's ``(batch, dim, length)`` tensors
and position-major ``(length, batch, dim)`` ones) is done per *span* of a few blocks (~128K elements of u):
each op costs a few microseconds whatever its size, so it is worth batching, and longer slices read the
caller's arrays in longer runs. The working set is a few block- and span-sized arrays (~1M state elements,
4 MiB in fp32, per block array) that stay in cache; there is no whole-sequence intermediate, so the work
memory is bounded by the block and the span, whatever the length.

Backward (one ``torch.autograd.Function`` for the whole gated scan). The forward saves, besides A, B, C, D,
z: Δ and u position-major (in place of delta and u), one state per block and, with a gate, the ungated
output; O(inputs) in all. For each block, last scanned first, the backward recomputes the block's states
from its saved start state, runs the adjoint recurrence ``dh_t = C_t dy_t + a_{t+1} ⊙ dh_{t+1}`` with the
same chunked machinery in the opposite direction, and forms every input gradient from ``dh_t``, ``h_t`` and
``a_t ⊙ h_{t-1}``. ``reverse=True`` walks spans, blocks, chunks and positions right to left over the same
arrays (no flipped copy).

The building blocks (plan, buffers, chunk scan, per-span and per-block steps) are in
:mod:`genomamba.ops._chunked_blocks`; this module holds the two loops and the public functions.

Speed: docs/benchmarks.md ("Selective scan (CPU)"); why an op-by-op scan stops there, and the
formulations measured and rejected: docs/benchmarks-history.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genomamba.ops._chunked_blocks import _channel_major, _from_pm, _Scan, _scan_chunks, _to_pm, _Work
from genomamba.ops._contract import bidirectional_scan, check_scan_inputs

__all__ = ["selective_scan_chunked", "bidirectional_selective_scan_chunked"]


def _forward(S: _Scan, y: torch.Tensor, starts, ypre, saved_dt, saved_u) -> torch.Tensor:
    """Every span and block in scan order: writes ``y`` (and ``starts``, ``ypre``, ``saved_*`` when given);
    returns the last state."""
    p = S.p
    w = _Work(p, S.cd, y.device, 2)
    h = S.h0
    for i in p.spans(S.reverse):
        S0, E0 = p.span(i)
        l = E0 - S0
        dtP, uP, xP = S.span_inputs(w, S0, E0, saved_dt, saved_u)
        yP = w.pm(2, dtP.shape[0])
        for j, s, _, k in p.blocks(i, S.reverse):
            o, kT = s - S0, k * p.T
            if starts is not None:
                starts[j].copy_(h)
            ptot = w.ptot_rows[o // p.T : o // p.T + k]
            _, x, h = S.states(w, dtP[o : o + kT], xP[o : o + kT], ptot, s, k, h, w.carry[j % 2], w.big[1])
            S.output(x, s, k, yP[o : o + kT])
        if S.D is not None:
            yP.addcmul_(uP, S.D)
        yn = _from_pm(yP, w.nat(2, l))  # through a contiguous buffer: 2x faster than into the y slice
        if S.z is None:
            y[:, :, S0:E0].copy_(yn)
            continue
        if ypre is not None:
            ypre[:, :, S0:E0].copy_(yn)
        gate = F.silu(w.nat(0, l).copy_(S.z[:, :, S0:E0]), inplace=True)
        torch.mul(yn, gate, out=y[:, :, S0:E0])
    return h.clone()


class _ChunkedScan(torch.autograd.Function):
    """The whole gated scan ``y = (C·h + D·u) · silu(z)`` with ``Δ = softplus(delta + bias)``, as one node.

    Inputs: u, delta, z ``(b, d, L)``; A ``(d, n)``; B, C ``(b, g, n, L)``; D, bias ``(d,)``; h0 ``(b, d, n)``
    (D, z, bias, h0 may be None). Outputs: y ``(b, d, L)`` in ``out_dtype``, h_last ``(b, d, n)`` in the
    compute precision (fp64 for fp64 ``u``, else fp32). Saved for the backward: Δ and u position-major (in
    place of delta and u), one state per block, with a gate z and the ungated output; O(inputs) in all.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, bias, h0, softplus, reverse, T, K, keep, out_dtype):
        cd = torch.float64 if u.dtype == torch.float64 else torch.float32
        dev = u.device
        S = _Scan(u.shape, cd, dev, u, delta, A, B, C, D, z, bias, h0, softplus, reverse, T, K)
        p = S.p
        y = torch.empty(u.shape, dtype=out_dtype, device=dev)
        starts = saved_dt = saved_u = ypre = None
        if keep:
            starts = torch.empty(p.nblk, p.M, dtype=cd, device=dev)
            saved_dt, saved_u = (torch.empty(S.padded(p.L), p.b, p.g * p.dg, dtype=cd, device=dev)
                                 for _ in range(2))
            ypre = torch.empty(u.shape, dtype=cd, device=dev) if z is not None else None
        h = _forward(S, y, starts, ypre, saved_dt, saved_u)
        if keep:
            ctx.save_for_backward(A, B, C, D, z, bias, h0, starts, ypre, saved_dt, saved_u)
            ctx.cfg = (softplus, reverse, T, K)
            ctx.meta = (tuple(u.shape), cd, u.dtype, delta.dtype)
        return y, S.unlanes(h)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_last):
        A, B, C, D, z, bias, h0, starts, ypre, saved_dt, saved_u = ctx.saved_tensors
        shape, cd, u_dtype, delta_dtype = ctx.meta
        dev = A.device
        S = _Scan(shape, cd, dev, None, None, A, B, C, D, z, bias, h0, *ctx.cfg)
        need = ctx.needs_input_grad
        p = S.p
        b, g, n, dg, L, M = p.b, p.g, p.n, p.dg, p.L, p.M
        d = g * dg
        dy = torch.zeros(shape, dtype=cd, device=dev) if dy is None else _channel_major(dy)
        w = _Work(p, cd, dev, 3)
        R = w.carry[1]
        R.copy_(S.lanes(dh_last.to(cd)) if dh_last is not None else torch.zeros(M, dtype=cd, device=dev))
        du = torch.empty(shape, dtype=u_dtype, device=dev)
        ddelta = torch.empty(shape, dtype=delta_dtype, device=dev)
        dz = torch.empty(z.shape, dtype=z.dtype, device=dev) if z is not None and need[6] else None
        dBP, dCP = torch.zeros_like(S.BP), torch.zeros_like(S.CP)
        dA = torch.zeros(g, n, dg, dtype=cd, device=dev)
        A_nat = S.A.view(g, dg, n).transpose(1, 2).contiguous()  # (g, n, dg): d(Δ·A)/dΔ
        dD = torch.zeros(d, dtype=cd, device=dev) if D is not None else None
        dbias = torch.zeros(d, dtype=cd, device=dev) if bias is not None else None
        for i in p.spans(not S.reverse):
            S0, E0 = p.span(i)
            l = E0 - S0
            dtP, uP, xP = S.span_inputs_saved(w, S0, E0, saved_dt, saved_u)
            lp = dtP.shape[0]
            # gradient of the ungated output: dy · silu(z); and dz = dy · y_pre · silu'(z)
            dys = dy[:, :, S0:E0]
            if S.z is not None:
                zs = S.z[:, :, S0:E0]
                if zs.dtype != cd:  # a unary op computes in its input's dtype
                    zs = w.nat(0, l).copy_(zs)
                sig = torch.sigmoid(zs, out=w.nat(1, l))
                silu = torch.mul(zs, sig, out=w.nat(3, l))
                if dz is not None:  # silu'(z) = σ(z) (1 + z (1 - σ(z)))
                    t = torch.sub(zs, silu, out=w.nat(4, l)).add_(1.0).mul_(sig).mul_(dys)
                    torch.mul(t, ypre[:, :, S0:E0], out=dz[:, :, S0:E0])
                dyn = torch.mul(dys, silu, out=w.nat(2, l))
            else:
                dyn = w.nat(2, l).copy_(dys)
            dyP = _to_pm(dyn, w.pm(2, lp))
            dyP[l:].zero_()
            if dD is not None:
                dD += torch.mul(dyP[:l], uP[:l], out=w.pm(3, l)).sum((0, 1))
            dxP, ddtP = w.pm(3, lp), w.pm(4, lp)
            for j, s, _, k in p.blocks(i, not S.reverse):
                o, kT = s - S0, k * p.T
                nb = kT * b * g
                dyb, xb, dtb = dyP[o : o + kT], xP[o : o + kT], dtP[o : o + kT]
                ptot = w.ptot_rows[o // p.T : o // p.T + k]
                # the block's states again, from its saved start state
                a, h, _ = S.states(w, dtb, xb, ptot, s, k, starts[j], w.carry[0], w.big[1])
                # dC_t[n] = Σ_dg dy_t[dg] h_t[n, dg]. As a row times a transposed matrix: MKL's batched
                # matrix-vector form (n×dg)·(dg×1) measured ten times slower here.
                if need[4]:
                    torch.bmm(dyb.view(nb, 1, dg), h.view(nb, n, dg).transpose(1, 2),
                              out=dCP[s : s + kT].view(nb, 1, n))
                gr = w.big[2][:kT]  # C_t dy_t, then the adjoint dh_t
                torch.mul(dyb.view(kT, b, g, 1, dg), S.CP[s : s + kT].unsqueeze(-1), out=gr)
                R = _scan_chunks(w, a, gr, k, ptot, R, not S.reverse, True, R)
                # dx_t[dg] = Σ_n B_t[n] dh_t[n, dg]; dB_t[n] = Σ_dg x_t[dg] dh_t[n, dg]
                torch.bmm(S.BP[s : s + kT].view(nb, 1, n), gr.view(nb, n, dg),
                          out=dxP[o : o + kT].view(nb, 1, dg))
                if need[3]:
                    torch.bmm(xb.view(nb, 1, dg), gr.view(nb, n, dg).transpose(1, 2),
                              out=dBP[s : s + kT].view(nb, 1, n))
                # q = dh_t ⊙ a_t ⊙ h_prev, the gradient of the log-decay Δ_t·A (h_prev: the state before t in
                # scan order, the block's saved start for its first position). Formed from a_t·h_prev rather
                # than h_t - x_t, which would lose precision by cancellation when the decay is strong.
                a2, h2 = a.view(kT, M), h.view(kT, M)
                if S.reverse:
                    a2[:-1].mul_(h2[1:])
                    a2[-1].mul_(starts[j])
                else:
                    a2[1:].mul_(h2[:-1])
                    a2[0].mul_(starts[j])
                a.mul_(gr)
                if need[2]:
                    dA += torch.mul(a, dtb.view(kT, b, g, 1, dg), out=h).sum((0, 1))
                a.mul_(A_nat)
                torch.sum(a, dim=3, out=ddtP[o : o + kT].view(kT, b, g, dg))
            # position-major: du = dx·Δ + dy·D; dΔ = (Σ_n q·A + dx·u) · softplus'(delta + bias), where
            # softplus'(v) = sigmoid(v) = 1 - exp(-softplus(v)) = -expm1(-Δ)
            ddtP = ddtP[:l].addcmul_(dxP[:l], uP[:l])
            if S.softplus:
                ddtP.mul_(torch.neg(dtP[:l]).expm1_().neg_())
            if dbias is not None:
                dbias += ddtP.sum((0, 1))
            ddelta[:, :, S0:E0].copy_(_from_pm(ddtP, w.nat(4, l)))  # (via a contiguous buffer: 2x faster)
            duP = dxP[:l].mul_(dtP[:l])
            if S.D is not None:
                duP.addcmul_(dyP[:l], S.D)
            du[:, :, S0:E0].copy_(_from_pm(duP, w.nat(5, l)))
        dB = dBP[:L].permute(1, 2, 3, 0).to(B.dtype) if need[3] else None
        dC = dCP[:L].permute(1, 2, 3, 0).to(C.dtype) if need[4] else None
        dA_out = dA.transpose(1, 2).reshape(d, n).to(A.dtype)
        dD_out = None if dD is None else dD.to(D.dtype)
        dbias_out = None if dbias is None else dbias.to(bias.dtype)
        dh0 = None if h0 is None else S.unlanes(R).to(h0.dtype)
        return du, ddelta, dA_out, dB, dC, dD_out, dz, dbias_out, dh0, None, None, None, None, None, None


def _core(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, reverse, chunk_size,
          block_chunks, out_dtype):
    """``(y (b, d, L) in out_dtype, h_last (b, d, n))``; h_last in fp64 for fp64 ``u``, else fp32."""
    shapes = check_scan_inputs(u, delta, A, B, C, D, z, delta_bias, initial_state)
    batch, dim, length, d_state, groups = shapes
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32
    if length == 0:
        h = initial_state.to(cd) if initial_state is not None else u.new_zeros(batch, dim, d_state, dtype=cd)
        y = u.new_zeros(batch, dim, 0, dtype=out_dtype)
        return y, h
    B4 = B.unsqueeze(1) if groups == 0 else B
    C4 = C.unsqueeze(1) if groups == 0 else C
    tensors = (u, delta, A, B4, C4, D, z, delta_bias, initial_state)
    keep = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    return _ChunkedScan.apply(*tensors, bool(delta_softplus), bool(reverse), chunk_size, block_chunks, keep,
                              out_dtype)


def _check_sizes(chunk_size: int | None, block_chunks: int | None) -> None:
    if (chunk_size is not None and chunk_size < 1) or (block_chunks is not None and block_chunks < 1):
        raise ValueError(f"chunk_size and block_chunks must be >= 1, got {chunk_size}, {block_chunks}")


def selective_scan_chunked(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False, *, initial_state: torch.Tensor | None = None,
    return_final_state: bool = False, reverse: bool = False,
    chunk_size: int | None = None, block_chunks: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective scan, chunk-parallel in pure PyTorch; same arguments and results as ``selective_scan_ref``.

    Args:
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, return_final_state, reverse:
            as ``selective_scan_ref`` (``u, delta, z`` ``(batch, dim, length)``; ``A`` ``(dim, d_state)``).
        chunk_size: positions per chunk ``T`` (default 16).
        block_chunks: chunks per block ``K`` (default: ~64K lanes per loop op, <= 1M state elements per
            block).

    Returns:
        ``y`` in ``u.dtype`` or ``(y, h_last)``; computed in fp32 (fp64 when ``u`` is fp64), ``h_last`` in
        that precision.

    Raises:
        ValueError: inconsistent shapes (see ``check_scan_inputs``) or a non-positive chunk size.
    """
    _check_sizes(chunk_size, block_chunks)
    y, h = _core(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, reverse, chunk_size,
                 block_chunks, u.dtype)
    return (y, h) if return_final_state else y


def bidirectional_selective_scan_chunked(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False, *, u_rev: torch.Tensor | None = None, delta_rev: torch.Tensor | None = None,
    A_rev: torch.Tensor | None = None, B_rev: torch.Tensor | None = None, C_rev: torch.Tensor | None = None,
    D_rev: torch.Tensor | None = None, delta_bias_rev: torch.Tensor | None = None,
    chunk_size: int | None = None, block_chunks: int | None = None,
) -> torch.Tensor:
    """``(scan(u, ...) + reverse_scan(u_rev, ...)) · silu(z)``, as ``bidirectional_selective_scan_ref``.

    Each ``*_rev`` left as None reuses the forward tensor; the sum is formed in fp32 (fp64 when ``u`` is
    fp64) and cast once. Composition: :func:`genomamba.ops._contract.bidirectional_scan`.

    Raises:
        ValueError: inconsistent shapes in either direction, or a non-positive chunk size.
    """
    _check_sizes(chunk_size, block_chunks)
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32

    def scan(u, delta, A, B, C, D, delta_bias, reverse):
        return _core(u, delta, A, B, C, D, None, delta_bias, delta_softplus, None, reverse, chunk_size,
                     block_chunks, cd)[0]

    rev = (u_rev, delta_rev, A_rev, B_rev, C_rev, D_rev, delta_bias_rev)
    return bidirectional_scan(scan, (u, delta, A, B, C, D, delta_bias), z, rev)
