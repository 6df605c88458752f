"""Triton backward kernel of the selective scan.

Notation (scan order; for ``REVERSE`` the "next" position is the one to the left):
``h_t = a_t h_{t-1} + dt_t B_t u_t`` with ``a_t = exp(dt_t A)``, ``y_t = C_t . h_t + D u_t``,
``out_t = y_t silu(z_t)``. With ``g_t = dout_t silu(z_t)`` the state's adjoint obeys

    dh_t = C_t g_t + a_{t+1} dh_{t+1}

a first-order recurrence running against the scan order, solved per chunk with the same parallel
prefix as the forward pass. The quantity carried between chunks is ``c = a_first dh_first`` of the
chunk just processed (the gradient reaching the state before it). Per position, with
``a_t h_{t-1} = h_t - dt_t B_t u_t`` (no division, no shifted copy of h):

    d dt_t = sum_n dh_t (A (h_t - dt_t B_t u_t) + B_t u_t)      dA  += dh_t dt_t (h_t - dt_t B_t u_t)
    du_t   = sum_n dh_t dt_t B_t + D g_t                         dB_t = sum_d dh_t dt_t u_t
    dC_t   = sum_d g_t h_t                                       dD  += g_t u_t

States inside a chunk are recomputed from the checkpoint the forward pass stored at the chunk's
start, so memory stays O(inputs). Segments (see scan_forward.py) make long, narrow problems
parallel: an ``ADJOINT_ONLY`` pass finds each segment's outgoing carry from a zero carry, the host
chains them, then the full pass runs every segment from its true carry.

dB and dC sum over channels, which belong to different programs: each program reduces its
``BLOCK_D`` channels in registers and adds the (d_state, BLOCK_T) result atomically into an fp32
buffer, so the number of atomics per element is dim / BLOCK_D, not dim.
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
def _load_chunk(
    u_ptr, dt_ptr, bias_ptr, B_ptr, t, d, n, t_mask, d_mask, n_mask,
    stride_ud, stride_ul, stride_dtd, stride_dtl, stride_bn, stride_bl,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    """Load u, dt, delta + bias (BLOCK_D, BLOCK_T) and B (BLOCK_N, BLOCK_T) in fp32."""
    m2 = d_mask[:, None] & t_mask[None, :]
    u = tl.load(u_ptr + d[:, None] * stride_ud + t[None, :] * stride_ul, mask=m2, other=0.0).to(tl.float32)
    dt, raw = _load_dt(dt_ptr, bias_ptr, t, d, m2, d_mask, stride_dtd, stride_dtl, HAS_BIAS, SOFTPLUS)
    nt_mask = n_mask[:, None] & t_mask[None, :]
    Bt = tl.load(B_ptr + n[:, None] * stride_bn + t[None, :] * stride_bl, mask=nt_mask, other=0.0)
    Bt = Bt.to(tl.float32)
    return u, dt, raw, Bt


@triton.jit
def _selective_scan_bwd_kernel(
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
    A = tl.load(A_ptr + d[:, None] * d_state + n[None, :], mask=dn_mask, other=0.0).to(tl.float32)
    A2 = A * 1.4426950408889634

    u_base = u_ptr + b * stride_ub
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
        first = lane == BLOCK_T - 1  # first position of a chunk in scan order
        not_last = lane != 0
        step = -1
    else:
        first = lane == 0
        not_last = lane != BLOCK_T - 1
        step = 1
    for i in range(0, n_chunks):
        # Against scan order: for a forward scan the chunks are visited right to left.
        if REVERSE:
            chunk = i
        else:
            chunk = n_chunks - 1 - i
        t0 = seg_start + chunk * BLOCK_T
        t = t0 + lane
        t_mask = t < seg_end
        m2 = d_mask[:, None] & t_mask[None, :]
        nt_mask = n_mask[:, None] & t_mask[None, :]
        u, dt, raw, Bt = _load_chunk(
            u_base, dt_base, bias_ptr, B_base, t, d, n, t_mask, d_mask, n_mask,
            stride_ud, stride_ul, stride_dtd, stride_dtl, stride_bn, stride_bl, HAS_BIAS, SOFTPLUS,
        )
        Ct = tl.load(C_base + n[:, None] * stride_cn + t[None, :] * stride_cl, mask=nt_mask, other=0.0)
        Ct = Ct.to(tl.float32)
        dout = tl.load(
            dout_ptr + b * stride_ob + d[:, None] * stride_od + t[None, :] * stride_ol, mask=m2, other=0.0
        ).to(tl.float32)
        if HAS_Z:
            z_off = b * stride_zb + d[:, None] * stride_zd + t[None, :] * stride_zl
            zt = tl.load(z_ptr + z_off, mask=m2, other=0.0)
            zt = zt.to(tl.float32)
            sig_z = tl.sigmoid(zt)
            g = dout * zt * sig_z
        else:
            g = dout
        # a_{t+1} in scan order, from a second (cache-hitting) load of dt shifted by one; the
        # chunk's last position gets 1 because its successor's factor travels in the carry c.
        t_next = t + step
        next_mask = d_mask[:, None] & ((t_next >= seg_start) & (t_next < seg_end) & not_last)[None, :]
        dt_next, _ = _load_dt(
            dt_base, bias_ptr, t_next, d, next_mask, d_mask, stride_dtd, stride_dtl, HAS_BIAS, SOFTPLUS
        )
        a_next = tl.exp2(dt_next[:, None, :] * A2[:, :, None])
        x = Ct[None, :, :] * g[:, None, :]
        P, X = tl.associative_scan((a_next, x), 2, _first_order_combine, reverse=not REVERSE)
        dh = X + P * c[:, :, None]
        dt_first = tl.sum(tl.where(first[None, :], dt, 0.0), axis=1)
        dh_first = tl.sum(tl.where(first[None, None, :], dh, 0.0), axis=2)
        c = tl.exp2(dt_first[:, None] * A2) * dh_first
        if ADJOINT_ONLY:
            dt_total += tl.sum(dt, axis=1)
        else:
            k = t0 // BLOCK_T
            h0 = tl.load(
                ckpt_ptr + ((b * dim + d[:, None]) * n_chunks_total + k) * d_state + n[None, :],
                mask=dn_mask, other=0.0,
            )
            dA = tl.exp2(dt[:, None, :] * A2[:, :, None])
            dtu = dt * u
            dBu = dtu[:, None, :] * Bt[None, :, :]
            a_cum, b_cum = tl.associative_scan((dA, dBu), 2, _first_order_combine, reverse=REVERSE)
            hs = a_cum * h0[:, :, None] + b_cum
            prev = hs - dBu  # a_t h_{t-1}
            ddt = tl.sum(dh * (A[:, :, None] * prev + Bt[None, :, :] * u[:, None, :]), axis=1)
            dA_acc += tl.sum(dh * prev * dt[:, None, :], axis=2)
            du = tl.sum(dh * Bt[None, :, :], axis=1) * dt
            if HAS_D:
                du += Dv[:, None] * g
                dD_acc += tl.sum(g * u, axis=1)
            if SOFTPLUS:
                ddt = ddt * tl.sigmoid(raw)
            ddt = tl.where(m2, ddt, 0.0)
            dbias_acc += tl.sum(ddt, axis=1)
            dB = tl.sum(dh * dtu[:, None, :], axis=0)
            dC = tl.sum(hs * g[:, None, :], axis=0)
            dB_off = b * stride_dbb + g_idx * stride_dbg + n[:, None] * stride_dbn + t[None, :] * stride_dbl
            tl.atomic_add(dB_ptr + dB_off, dB, mask=nt_mask, sem="relaxed")
            dC_off = b * stride_dcb + g_idx * stride_dcg + n[:, None] * stride_dcn + t[None, :] * stride_dcl
            tl.atomic_add(dC_ptr + dC_off, dC, mask=nt_mask, sem="relaxed")
            # du/ddelta/dz are allocated with u's strides.
            grad_off = b * stride_ub + d[:, None] * stride_ud + t[None, :] * stride_ul
            if HAS_Z:
                y = tl.sum(Ct[None, :, :] * hs, axis=1)
                if HAS_D:
                    y += Dv[:, None] * u
                dz = dout * y * sig_z * (1.0 + zt * (1.0 - sig_z))
                if ACCUMULATE_DZ:
                    dz += tl.load(dz_ptr + grad_off, mask=m2, other=0.0).to(tl.float32)
                tl.store(dz_ptr + grad_off, dz.to(dz_ptr.dtype.element_ty), mask=m2)
            if ACCUMULATE_DU:
                du += tl.load(du_ptr + grad_off, mask=m2, other=0.0).to(tl.float32)
                ddt += tl.load(ddelta_ptr + grad_off, mask=m2, other=0.0).to(tl.float32)
            tl.store(du_ptr + grad_off, du.to(du_ptr.dtype.element_ty), mask=m2)
            tl.store(ddelta_ptr + grad_off, ddt.to(ddelta_ptr.dtype.element_ty), mask=m2)
    tl.store(carry_out_ptr + seg_state_off, c, mask=dn_mask)
    if ADJOINT_ONLY:
        tl.store(dtsum_ptr + (b * dim + d) * n_seg + seg, dt_total, mask=d_mask)
    else:
        tl.atomic_add(dA_ptr + d[:, None] * d_state + n[None, :], dA_acc, mask=dn_mask, sem="relaxed")
        if HAS_D:
            tl.atomic_add(dD_ptr + d, dD_acc, mask=d_mask, sem="relaxed")
        if HAS_BIAS:
            tl.atomic_add(dbias_ptr + d, dbias_acc, mask=d_mask, sem="relaxed")
