"""Triton backward kernel of the selective scan, one state at a time over long time tiles.

Same equations and the same launch contract as scan_backward.py (read its docstring for the
notation); only the work decomposition differs. A program owns ``BLOCK_D`` channels of one batch
row and one segment, and visits the segment's time tiles of ``BLOCK_T`` positions against scan
order. Inside a tile it loops over the ``d_state`` states: for state ``n`` it recomputes the states
``h[:, n, t]`` of the tile from the forward pass's checkpoint with a parallel prefix along time,
runs the adjoint recurrence the same way, and accumulates the per-position sums over states (d
delta, du, y for dz) in (BLOCK_D, BLOCK_T) registers.

Why this shape. dB and dC sum over channels, which is a cross-program reduction: each program adds
its partial sums with atomics, so the atomics per element are ``dim / BLOCK_D``. Looping over
states keeps the live tile two-dimensional, so ``BLOCK_D`` can be 16-32 channels (the 3-D tile of
scan_backward.py fits 2), which cuts those atomics by an order of magnitude, and a long ``BLOCK_T``
amortises the scan's cross-thread levels over many positions. The price is one reload of a B and C
row per state, which hits L1: a tile's B and C rows are a few KiB.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .scan_backward import _first_order_combine
from .scan_forward import _program_coords, _softplus


@triton.jit
def _load_dt(
    dt_ptr, bias_ptr, t, d, m2, d_mask, stride_dtd, stride_dtl, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr
):
    """The step dt = softplus(delta + bias) (BLOCK_D, BLOCK_T) in fp32, and delta + bias before softplus.

    Masked positions get dt = 0, the identity map (a = 1, b = 0), whatever the bias says.
    """
    raw = tl.load(dt_ptr + d[:, None] * stride_dtd + t[None, :] * stride_dtl, mask=m2, other=0.0)
    raw = raw.to(tl.float32)
    if HAS_BIAS:
        raw += tl.load(bias_ptr + d, mask=d_mask, other=0.0).to(tl.float32)[:, None]
    if SOFTPLUS:
        dt = _softplus(raw)
    else:
        dt = raw
    return tl.where(m2, dt, 0.0), raw


@triton.jit
def _column(tile, n, nn):
    """Column ``nn`` of a (BLOCK_D, BLOCK_N) tile as a (BLOCK_D,) vector."""
    return tl.sum(tl.where(n[None, :] == nn, tile, 0.0), axis=1)


@triton.jit
def _selective_scan_bwd_stateloop_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, ckpt_ptr, carry_in_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, carry_out_ptr, dtsum_ptr,
    length, dim, d_state, seg_len, dim_per_group,
    stride_ub, stride_ud, stride_ul, stride_dtb, stride_dtd, stride_dtl, stride_zb, stride_zd, stride_zl,
    stride_ob, stride_od, stride_ol,
    stride_bb, stride_bg, stride_bn, stride_bl, stride_cb, stride_cg, stride_cn, stride_cl,
    stride_dbb, stride_dbg, stride_dbn, stride_dbl, stride_dcb, stride_dcg, stride_dcn, stride_dcl,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr,
    REVERSE: tl.constexpr, ADJOINT_ONLY: tl.constexpr, HAS_Z: tl.constexpr, HAS_D: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_CARRY_IN: tl.constexpr,
    ACCUMULATE_DZ: tl.constexpr, ACCUMULATE_DU: tl.constexpr,
):
    seg, b, n_seg, d, n, d_mask, n_mask, dn_mask, g_idx = _program_coords(
        dim, d_state, dim_per_group, BLOCK_D, BLOCK_N
    )
    A_tile = tl.load(A_ptr + d[:, None] * d_state + n[None, :], mask=dn_mask, other=0.0).to(tl.float32)

    dt_base = dt_ptr + b * stride_dtb
    B_base = B_ptr + b * stride_bb + g_idx * stride_bg
    C_base = C_ptr + b * stride_cb + g_idx * stride_cg
    seg_state_off = ((b * dim + d[:, None]) * n_seg + seg) * d_state + n[None, :]
    if HAS_CARRY_IN:
        c = tl.load(carry_in_ptr + seg_state_off, mask=dn_mask, other=0.0)
    else:
        c = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    dA_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dt_total = tl.zeros((BLOCK_D,), dtype=tl.float32)

    seg_start = seg * seg_len
    seg_end = tl.minimum(seg_start + seg_len, length)
    n_chunks = tl.cdiv(seg_end - seg_start, BLOCK_T)
    n_chunks_total = tl.cdiv(length, BLOCK_T)
    lane = tl.arange(0, BLOCK_T)
    if REVERSE:
        first = lane == BLOCK_T - 1  # first position of a tile in scan order
        not_last = lane != 0
        step = -1
    else:
        first = lane == 0
        not_last = lane != BLOCK_T - 1
        step = 1
    for i in range(0, n_chunks):
        # Against scan order: for a forward scan the tiles are visited right to left.
        if REVERSE:
            chunk = i
        else:
            chunk = n_chunks - 1 - i
        t0 = seg_start + chunk * BLOCK_T
        t = t0 + lane
        t_mask = t < seg_end
        m2 = d_mask[:, None] & t_mask[None, :]
        dt, _ = _load_dt(dt_base, bias_ptr, t, d, m2, d_mask, stride_dtd, stride_dtl, HAS_BIAS, SOFTPLUS)
        # dt of the next position in scan order; the tile's last position gets 0 (a factor of 1)
        # because its successor's factor travels in the carry.
        t_next = t + step
        next_mask = d_mask[:, None] & ((t_next >= seg_start) & (t_next < seg_end) & not_last)[None, :]
        dt_next, _ = _load_dt(
            dt_base, bias_ptr, t_next, d, next_mask, d_mask, stride_dtd, stride_dtl, HAS_BIAS, SOFTPLUS
        )
        dout_off = b * stride_ob + d[:, None] * stride_od + t[None, :] * stride_ol
        g = tl.load(dout_ptr + dout_off, mask=m2, other=0.0).to(tl.float32)
        if HAS_Z:
            z_off = b * stride_zb + d[:, None] * stride_zd + t[None, :] * stride_zl
            zt = tl.load(z_ptr + z_off, mask=m2, other=0.0).to(tl.float32)
            g = g * zt * tl.sigmoid(zt)
        if ADJOINT_ONLY:
            dt_total += tl.sum(dt, axis=1)
        else:
            u_off = b * stride_ub + d[:, None] * stride_ud + t[None, :] * stride_ul
            u = tl.load(u_ptr + u_off, mask=m2, other=0.0).to(tl.float32)
            dtu = dt * u
            k = t0 // BLOCK_T
            h0_tile = tl.load(
                ckpt_ptr + ((b * n_chunks_total + k) * d_state + n[None, :]) * dim + d[:, None],
                mask=dn_mask, other=0.0,
            )
            ddt = tl.zeros((BLOCK_D, BLOCK_T), dtype=tl.float32)
            du = tl.zeros((BLOCK_D, BLOCK_T), dtype=tl.float32)
            y = tl.zeros((BLOCK_D, BLOCK_T), dtype=tl.float32)
        c_next = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        for nn in range(0, d_state):
            A_n = _column(A_tile, n, nn)
            A2_n = A_n * 1.4426950408889634
            Cn = tl.load(C_base + nn * stride_cn + t * stride_cl, mask=t_mask, other=0.0).to(tl.float32)
            a_next = tl.exp2(dt_next * A2_n[:, None])
            x = Cn[None, :] * g
            P, X = tl.associative_scan((a_next, x), 1, _first_order_combine, reverse=not REVERSE)
            dh = X + P * _column(c, n, nn)[:, None]
            a = tl.exp2(dt * A2_n[:, None])
            # Carry for the next tile: the gradient reaching the state before this tile.
            c_n = tl.sum(tl.where(first[None, :], a * dh, 0.0), axis=1)
            c_next = tl.where(n[None, :] == nn, c_n[:, None], c_next)
            if not ADJOINT_ONLY:
                Bn = tl.load(B_base + nn * stride_bn + t * stride_bl, mask=t_mask, other=0.0).to(tl.float32)
                dBu = dtu * Bn[None, :]
                a_cum, b_cum = tl.associative_scan((a, dBu), 1, _first_order_combine, reverse=REVERSE)
                hs = a_cum * _column(h0_tile, n, nn)[:, None] + b_cum
                prev = hs - dBu  # a_t h_{t-1}
                ddt += dh * (A_n[:, None] * prev + Bn[None, :] * u)
                du += dh * Bn[None, :]
                if HAS_Z:
                    y += hs * Cn[None, :]
                dA_n = tl.sum(dh * prev * dt, axis=1)
                dA_acc = tl.where(n[None, :] == nn, dA_acc + dA_n[:, None], dA_acc)
                dB_n = tl.sum(dh * dtu, axis=0)
                dC_n = tl.sum(hs * g, axis=0)
                tl.atomic_add(
                    dB_ptr + b * stride_dbb + g_idx * stride_dbg + nn * stride_dbn + t * stride_dbl, dB_n,
                    mask=t_mask, sem="relaxed",
                )
                tl.atomic_add(
                    dC_ptr + b * stride_dcb + g_idx * stride_dcg + nn * stride_dcn + t * stride_dcl, dC_n,
                    mask=t_mask, sem="relaxed",
                )
        c = c_next
        if not ADJOINT_ONLY:
            # What the state loop did not need is loaded again here rather than kept live across it
            # (fewer registers, no spills): delta before softplus, z and dout for dz.
            du = du * dt
            if HAS_D:
                du += Dv[:, None] * g
                dD_acc += tl.sum(g * u, axis=1)
            if SOFTPLUS:
                raw, _ = _load_dt(
                    dt_base, bias_ptr, t, d, m2, d_mask, stride_dtd, stride_dtl, HAS_BIAS, False
                )
                ddt = ddt * tl.sigmoid(raw)
            ddt = tl.where(m2, ddt, 0.0)
            dbias_acc += tl.sum(ddt, axis=1)
            # du/ddelta/dz are allocated with u's strides.
            if HAS_Z:
                if HAS_D:
                    y += Dv[:, None] * u
                zt = tl.load(z_ptr + z_off, mask=m2, other=0.0).to(tl.float32)
                sig_z = tl.sigmoid(zt)
                dout = tl.load(dout_ptr + dout_off, mask=m2, other=0.0).to(tl.float32)
                dz = dout * y * sig_z * (1.0 + zt * (1.0 - sig_z))
                if ACCUMULATE_DZ:
                    dz += tl.load(dz_ptr + u_off, mask=m2, other=0.0).to(tl.float32)
                tl.store(dz_ptr + u_off, dz.to(dz_ptr.dtype.element_ty), mask=m2)
            if ACCUMULATE_DU:
                du += tl.load(du_ptr + u_off, mask=m2, other=0.0).to(tl.float32)
                ddt += tl.load(ddelta_ptr + u_off, mask=m2, other=0.0).to(tl.float32)
            tl.store(du_ptr + u_off, du.to(du_ptr.dtype.element_ty), mask=m2)
            tl.store(ddelta_ptr + u_off, ddt.to(ddelta_ptr.dtype.element_ty), mask=m2)
    tl.store(carry_out_ptr + seg_state_off, c, mask=dn_mask)
    if ADJOINT_ONLY:
        tl.store(dtsum_ptr + (b * dim + d) * n_seg + seg, dt_total, mask=d_mask)
    else:
        tl.atomic_add(dA_ptr + d[:, None] * d_state + n[None, :], dA_acc, mask=dn_mask, sem="relaxed")
        if HAS_D:
            tl.atomic_add(dD_ptr + d, dD_acc, mask=d_mask, sem="relaxed")
        if HAS_BIAS:
            tl.atomic_add(dbias_ptr + d, dbias_acc, mask=d_mask, sem="relaxed")
