"""Triton backward kernel of the selective scan: lanes own channels, each lane walks time.

Notation (scan order; for ``REVERSE`` the "next" position is the one to the left):
``h_t = a_t h_{t-1} + dt_t B_t u_t`` with ``a_t = exp(dt_t A)``, ``y_t = C_t . h_t + D u_t``,
``out_t = y_t silu(z_t)``. With ``g_t = dout_t silu(z_t)`` the state's adjoint obeys

    dh_t = C_t g_t + a_{t+1} dh_{t+1}

a first-order recurrence running against the scan order. The quantity carried between tiles is
``c = a_first dh_first`` of the tile just processed (the gradient reaching the state before it).
Per position, with ``a_t h_{t-1} = h_t - dt_t B_t u_t`` (no division, no shifted copy of h):

    d dt_t = sum_n dh_t (A (h_t - dt_t B_t u_t) + B_t u_t)      dA  += dh_t dt_t (h_t - dt_t B_t u_t)
    du_t   = sum_n dh_t dt_t B_t + D g_t                         dB_t = sum_d dh_t dt_t u_t
    dC_t   = sum_d g_t h_t                                       dD  += g_t u_t

Work decomposition. A program owns ``BLOCK_D`` channels of one batch row and one segment (see
scan_forward.py) and visits the segment's tiles of ``BLOCK_T`` positions against scan order. Every
tile is (BLOCK_T, BLOCK_D), channels along the fast axis as time-major tensors store them. The
states are visited one at a time, so the sums over states (d dt, du, y for dz) accumulate in
registers; both recurrences of a tile (the states, recomputed from the forward pass's checkpoint,
and the adjoint) are scans along positions. dB and dC, sums over channels, are reduced inside the
program and added with one atomic per program into fp32 buffers.

Layout on the GPU: Triton vectorises the tile loads along channels, so each lane holds a run of 8
channels and a tile's 16 positions spread over 8 lanes: the scans are partly in-lane, partly
shuffles. Forcing all positions into each lane (no stride specialisation) measured twice as slow
(more registers spilled). Against the earlier state-loop kernel (positions across all 32 lanes)
this kernel measured 3-5% faster at the same checkpoint memory, 12% faster with checkpoints every
16 positions (docs/benchmarks.md).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .scan_forward import _program_coords, _softplus


@triton.jit
def _first_order_combine(a_left, b_left, a_right, b_right):
    # Composition of two affine maps h -> a h + b, the left one applied first.
    return a_left * a_right, a_right * b_left + b_right


@triton.jit
def _load_step(dt_ptr, bias, t, d, mask, stride_dtd, stride_dtl, HAS_BIAS: tl.constexpr,
               SOFTPLUS: tl.constexpr, APPLY_SOFTPLUS: tl.constexpr):
    """dt (BLOCK_T, BLOCK_D) in fp32: delta + bias, through softplus when asked; 0 where masked.

    Masked positions get dt = 0, the identity map (a = 1, b = 0), whatever the bias says.
    """
    raw = tl.load(dt_ptr + t[:, None] * stride_dtl + d[None, :] * stride_dtd, mask=mask, other=0.0)
    raw = raw.to(tl.float32)
    if HAS_BIAS:
        raw += bias[None, :]
    if SOFTPLUS and APPLY_SOFTPLUS:
        raw = _softplus(raw)
    return tl.where(mask, raw, 0.0)


@triton.jit
def _row_of(tile, n, nn):
    """Row ``nn`` of a (BLOCK_N, BLOCK_D) tile as a (BLOCK_D,) vector (states live inside a lane)."""
    return tl.sum(tl.where(n[:, None] == nn, tile, 0.0), axis=0)


@triton.jit
def _states_entering_tile(
    ckpt_ptr, dt_base, u_base, AT_ptr, B_base, bias, tile, b, d, n, nd_mask, seg_end, n_ckpts, dim, d_state,
    stride_dtd, stride_dtl, stride_ud, stride_ul, stride_bn, stride_bl,
    BLOCK_T: tl.constexpr, CKPT_EVERY: tl.constexpr, REVERSE: tl.constexpr, HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr,
):
    """States (BLOCK_N, BLOCK_D) entering ``tile`` in scan order, from the forward pass's checkpoints.

    Checkpoints are ``CKPT_EVERY`` positions apart, a multiple of the tile: a tile that does not start
    a checkpoint block walks the block's earlier positions (in scan order) from the checkpoint, the
    forward recurrence over all states at once. Spacing checkpoints wider than the tile halves
    their memory at the price of that walk.
    """
    tiles_per_ckpt: tl.constexpr = CKPT_EVERY // BLOCK_T
    block = tile // tiles_per_ckpt
    h = tl.load(ckpt_ptr + ((b * n_ckpts + block) * d_state + n[:, None]) * dim + d[None, :], mask=nd_mask,
                other=0.0)
    if tiles_per_ckpt > 1:
        A2 = tl.load(AT_ptr + n[:, None] * dim + d[None, :], mask=nd_mask, other=0.0).to(tl.float32)
        A2 = A2 * 1.4426950408889634
        sub = tile % tiles_per_ckpt
        if REVERSE:
            steps = (tiles_per_ckpt - 1 - sub) * BLOCK_T
        else:
            steps = sub * BLOCK_T
        for s in range(0, steps):
            if REVERSE:
                t = (block + 1) * CKPT_EVERY - 1 - s
            else:
                t = block * CKPT_EVERY + s
            # Positions past the segment's end (reverse scans only) are the identity map.
            live = t < seg_end
            m = d < tl.where(live, dim, 0)
            dt = tl.load(dt_base + t * stride_dtl + d * stride_dtd, mask=m, other=0.0).to(tl.float32)
            if HAS_BIAS:
                dt += bias
            if SOFTPLUS:
                dt = _softplus(dt)
            dt = tl.where(m, dt, 0.0)
            u = tl.load(u_base + t * stride_ul + d * stride_ud, mask=m, other=0.0).to(tl.float32)
            nm = n < tl.where(live, d_state, 0)  # a scalar & vector mask trips the interpreter
            Bt = tl.load(B_base + n * stride_bn + t * stride_bl, mask=nm, other=0.0).to(tl.float32)
            h = tl.exp2(dt[None, :] * A2) * h + Bt[:, None] * (dt * u)[None, :]
    return h


# Measured slower on an H100 and not kept: positions inside each lane (do_not_specialize on the
# channel strides, 2x), and an adjoint scan carrying the last position's a instead of a shifted dt
# tile (one exp fewer per element, but a three-value scan: 11% slower).
@triton.jit
def _selective_scan_bwd_kernel(
    u_ptr, dt_ptr, AT_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, ckpt_ptr, carry_in_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, carry_out_ptr, dtsum_ptr,
    length, dim, d_state, seg_len, dim_per_group,
    stride_ub, stride_ud, stride_ul, stride_dtb, stride_dtd, stride_dtl, stride_zb, stride_zd, stride_zl,
    stride_ob, stride_od, stride_ol,
    stride_bb, stride_bg, stride_bn, stride_bl, stride_cb, stride_cg, stride_cn, stride_cl,
    stride_dbb, stride_dbg, stride_dbn, stride_dbl, stride_dcb, stride_dcg, stride_dcn, stride_dcl,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr, CKPT_EVERY: tl.constexpr,
    REVERSE: tl.constexpr, ADJOINT_ONLY: tl.constexpr, HAS_Z: tl.constexpr, HAS_D: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_CARRY_IN: tl.constexpr,
    ACCUMULATE_DZ: tl.constexpr, ACCUMULATE_DU: tl.constexpr,
):
    seg, b, n_seg, d, n, d_mask, n_mask, _, g_idx = _program_coords(
        dim, d_state, dim_per_group, BLOCK_D, BLOCK_N
    )
    nd_mask = n_mask[:, None] & d_mask[None, :]

    # Per-program state is kept (states, channels): the states of one channel inside one lane.
    # Segment states are (batch, dim, S, d_state); checkpoints (batch, n_tiles, d_state, dim).
    seg_state_off = ((b * dim + d[None, :]) * n_seg + seg) * d_state + n[:, None]
    if HAS_CARRY_IN:
        c = tl.load(carry_in_ptr + seg_state_off, mask=nd_mask, other=0.0)
    else:
        c = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    else:
        bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    dA_acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dt_total = tl.zeros((BLOCK_D,), dtype=tl.float32)

    dt_base = dt_ptr + b * stride_dtb
    B_base = B_ptr + b * stride_bb + g_idx * stride_bg
    C_base = C_ptr + b * stride_cb + g_idx * stride_cg
    dB_base = dB_ptr + b * stride_dbb + g_idx * stride_dbg
    dC_base = dC_ptr + b * stride_dcb + g_idx * stride_dcg
    seg_start = seg * seg_len
    seg_end = tl.minimum(seg_start + seg_len, length)
    n_tiles = tl.cdiv(seg_end - seg_start, BLOCK_T)
    n_ckpts = tl.cdiv(length, CKPT_EVERY)
    lane_t = tl.arange(0, BLOCK_T)
    if REVERSE:
        first = lane_t == BLOCK_T - 1  # first position of a tile in scan order
        not_last = lane_t != 0
        step = -1
    else:
        first = lane_t == 0
        not_last = lane_t != BLOCK_T - 1
        step = 1
    for i in range(0, n_tiles):
        # Against scan order: for a forward scan the tiles are visited right to left.
        if REVERSE:
            tile = seg_start // BLOCK_T + i
        else:
            tile = seg_start // BLOCK_T + n_tiles - 1 - i
        t = tile * BLOCK_T + lane_t
        t_mask = t < seg_end
        m2 = t_mask[:, None] & d_mask[None, :]
        dt = _load_step(dt_base, bias, t, d, m2, stride_dtd, stride_dtl, HAS_BIAS, SOFTPLUS, True)
        # dt of the next position in scan order; the tile's last position gets 0 (a factor of 1)
        # because its successor's factor travels in the carry.
        t_next = t + step
        next_mask = ((t_next >= seg_start) & (t_next < seg_end) & not_last)[:, None] & d_mask[None, :]
        dt_next = _load_step(dt_base, bias, t_next, d, next_mask, stride_dtd, stride_dtl, HAS_BIAS, SOFTPLUS,
                             True)
        dout_off = b * stride_ob + t[:, None] * stride_ol + d[None, :] * stride_od
        g = tl.load(dout_ptr + dout_off, mask=m2, other=0.0).to(tl.float32)
        if HAS_Z:
            z_off = b * stride_zb + t[:, None] * stride_zl + d[None, :] * stride_zd
            zt = tl.load(z_ptr + z_off, mask=m2, other=0.0).to(tl.float32)
            g = g * zt * tl.sigmoid(zt)
        if ADJOINT_ONLY:
            dt_total += tl.sum(dt, axis=0)
        else:
            u_off = b * stride_ub + t[:, None] * stride_ul + d[None, :] * stride_ud
            dtu = dt * tl.load(u_ptr + u_off, mask=m2, other=0.0).to(tl.float32)
            h0 = _states_entering_tile(
                ckpt_ptr, dt_base, u_ptr + b * stride_ub, AT_ptr, B_base, bias, tile, b, d, n, nd_mask,
                seg_end, n_ckpts, dim, d_state, stride_dtd, stride_dtl, stride_ud, stride_ul,
                stride_bn, stride_bl,
                BLOCK_T, CKPT_EVERY, REVERSE, HAS_BIAS, SOFTPLUS,
            )
            # Sums over states: dh A a h_prev (for d dt), dh B (for du and d dt), C h (for dz).
            ddt = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
            dhB = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
            y = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
        c_next = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
        for nn in range(0, d_state):
            A_n = tl.load(AT_ptr + nn * dim + d, mask=d_mask, other=0.0).to(tl.float32)
            A2_n = A_n * 1.4426950408889634  # exp(dt A) as one exp2
            Cn = tl.load(C_base + nn * stride_cn + t * stride_cl, mask=t_mask, other=0.0).to(tl.float32)
            P, X = tl.associative_scan(
                (tl.exp2(dt_next * A2_n[None, :]), Cn[:, None] * g), 0, _first_order_combine,
                reverse=not REVERSE,
            )
            dh = X + P * _row_of(c, n, nn)[None, :]
            a = tl.exp2(dt * A2_n[None, :])
            c_n = tl.sum(tl.where(first[:, None], a * dh, 0.0), axis=0)
            c_next = tl.where(n[:, None] == nn, c_n[None, :], c_next)
            if not ADJOINT_ONLY:
                Bn = tl.load(B_base + nn * stride_bn + t * stride_bl, mask=t_mask, other=0.0).to(tl.float32)
                dBu = dtu * Bn[:, None]
                a_cum, b_cum = tl.associative_scan((a, dBu), 0, _first_order_combine, reverse=REVERSE)
                hs = a_cum * _row_of(h0, n, nn)[None, :] + b_cum
                prev = hs - dBu  # a_t h_{t-1}
                dh_prev = dh * prev
                ddt += A_n[None, :] * dh_prev
                dhB += dh * Bn[:, None]
                if HAS_Z:
                    y += hs * Cn[:, None]
                dA_n = tl.sum(dh_prev * dt, axis=0)
                dA_acc = tl.where(n[:, None] == nn, dA_acc + dA_n[None, :], dA_acc)
                tl.atomic_add(dB_base + nn * stride_dbn + t * stride_dbl, tl.sum(dh * dtu, axis=1),
                              mask=t_mask, sem="relaxed")
                tl.atomic_add(dC_base + nn * stride_dcn + t * stride_dcl, tl.sum(hs * g, axis=1),
                              mask=t_mask, sem="relaxed")
        c = c_next
        if not ADJOINT_ONLY:
            # u, z and dout are loaded again here rather than kept live across the state loop.
            u = tl.load(u_ptr + u_off, mask=m2, other=0.0).to(tl.float32)
            ddt += dhB * u
            du = dhB * dt
            if HAS_D:
                du += Dv[None, :] * g
                dD_acc += tl.sum(g * u, axis=0)
            if SOFTPLUS:
                raw = _load_step(dt_base, bias, t, d, m2, stride_dtd, stride_dtl, HAS_BIAS, SOFTPLUS, False)
                ddt = ddt * tl.sigmoid(raw)
            ddt = tl.where(m2, ddt, 0.0)
            dbias_acc += tl.sum(ddt, axis=0)
            # du/ddelta/dz are allocated with u's strides.
            if HAS_Z:
                if HAS_D:
                    y += Dv[None, :] * u
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
    tl.store(carry_out_ptr + seg_state_off, c, mask=nd_mask)
    if ADJOINT_ONLY:
        tl.store(dtsum_ptr + (b * dim + d) * n_seg + seg, dt_total, mask=d_mask)
    else:
        tl.atomic_add(dA_ptr + d[None, :] * d_state + n[:, None], dA_acc, mask=nd_mask, sem="relaxed")
        if HAS_D:
            tl.atomic_add(dD_ptr + d, dD_acc, mask=d_mask, sem="relaxed")
        if HAS_BIAS:
            tl.atomic_add(dbias_ptr + d, dbias_acc, mask=d_mask, sem="relaxed")
