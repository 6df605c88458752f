"""Triton forward kernel of the selective scan, and its launcher.

One program owns ``BLOCK_D`` channels of one batch row and one *segment* of the sequence, and walks
the segment chunk by chunk (``BLOCK_T`` positions at a time) in scan order, carrying the state
``h`` (BLOCK_D x d_state, fp32) in registers. Inside a chunk the recurrence
``h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t`` is a parallel prefix over pairs ``(a, b)`` with
``(a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2)`` (``tl.associative_scan``), so a chunk costs one
exponential per (channel, state, position) and no dependent chain of length ``BLOCK_T``.

Why segments. At long lengths and batch 1 there are too few (batch x channel-block) programs to
fill the GPU, and small channel blocks would make every program re-read B and C. The sequence is
then cut into ``S`` segments scanned in parallel:

1. ``STATE_ONLY`` pass: each segment is scanned from a zero state; it writes only its final state
   and the sum of dt over the segment (the segment's decay is ``exp(A * sum dt)``).
2. :func:`combine_segment_states` chains those few states on the host side of the launch.
3. Output pass: each segment is scanned again from its true entering state and writes ``y``.

With ``S == 1`` pass 1 and 2 are skipped, so the exponential count is minimal whenever there is
enough (batch, channel) parallelism; otherwise it doubles but every SM is busy. The output pass
also stores the state entering every chunk (``SAVE_CKPT``) for the backward pass, which
recomputes states chunk by chunk instead of saving ``O(length x d_state)`` activations.

Bytes: reads u, delta, z (batch, dim, length) and B, C (batch, groups, d_state, length) once per
pass, writes y once; B and C are re-read once per channel block, which ``BLOCK_D`` amortises.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def _first_order_combine(a_left, b_left, a_right, b_right):
    # Composition of two affine maps h -> a h + b, the left one applied first.
    return a_left * a_right, a_right * b_left + b_right


@triton.jit
def _softplus(x):
    # log(1 + exp(x)) without overflow; matches torch.nn.functional.softplus (threshold 20).
    return tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))))


@triton.jit
def _load_dt(dt_ptr, bias_ptr, t, d, m2, d_mask, stride_dtd, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """The step dt = softplus(delta + bias) (BLOCK_D, BLOCK_T) in fp32, and delta + bias before softplus.

    Masked positions get dt = 0, the identity map (a = 1, b = 0), whatever the bias says.
    """
    raw = tl.load(dt_ptr + d[:, None] * stride_dtd + t[None, :], mask=m2, other=0.0).to(tl.float32)
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
    stride_ud, stride_dtd, stride_bn,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    """Load u, dt, delta + bias (BLOCK_D, BLOCK_T) and B (BLOCK_N, BLOCK_T) in fp32."""
    m2 = d_mask[:, None] & t_mask[None, :]
    u = tl.load(u_ptr + d[:, None] * stride_ud + t[None, :], mask=m2, other=0.0).to(tl.float32)
    dt, raw = _load_dt(dt_ptr, bias_ptr, t, d, m2, d_mask, stride_dtd, HAS_BIAS, SOFTPLUS)
    Bt = tl.load(
        B_ptr + n[:, None] * stride_bn + t[None, :], mask=n_mask[:, None] & t_mask[None, :], other=0.0
    ).to(tl.float32)
    return u, dt, raw, Bt


@triton.jit
def _selective_scan_fwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    h_in_ptr, y_ptr, h_out_ptr, dtsum_ptr, ckpt_ptr,
    length, dim, d_state, seg_len, dim_per_group,
    stride_ub, stride_ud, stride_dtb, stride_dtd, stride_zb, stride_zd, stride_yb, stride_yd,
    stride_bb, stride_bg, stride_bn, stride_cb, stride_cg, stride_cn,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr,
    REVERSE: tl.constexpr, STATE_ONLY: tl.constexpr, HAS_Z: tl.constexpr, HAS_D: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H_IN: tl.constexpr, SAVE_CKPT: tl.constexpr,
    ADD_TO_Y: tl.constexpr,
):
    pid_d = tl.program_id(0)
    seg = tl.program_id(1)
    b = tl.program_id(2)
    n_seg = tl.num_programs(1)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    d_mask = d < dim
    n_mask = n < d_state
    g = (pid_d * BLOCK_D) // dim_per_group  # a channel block never straddles two groups

    dn_mask = d_mask[:, None] & n_mask[None, :]
    # A is pre-scaled by log2(e) so that exp(dt A) is a single exp2.
    A = tl.load(A_ptr + d[:, None] * d_state + n[None, :], mask=dn_mask, other=0.0).to(tl.float32) * 1.4426950408889634

    u_base = u_ptr + b * stride_ub
    dt_base = dt_ptr + b * stride_dtb
    B_base = B_ptr + b * stride_bb + g * stride_bg
    C_base = C_ptr + b * stride_cb + g * stride_cg
    # (batch, dim, S, d_state) layout for per-segment states.
    seg_state_off = ((b * dim + d[:, None]) * n_seg + seg) * d_state + n[None, :]
    if HAS_H_IN:
        h = tl.load(h_in_ptr + seg_state_off, mask=dn_mask, other=0.0)
    else:
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    dt_total = tl.zeros((BLOCK_D,), dtype=tl.float32)

    seg_start = seg * seg_len
    seg_end = tl.minimum(seg_start + seg_len, length)
    n_chunks = tl.cdiv(seg_end - seg_start, BLOCK_T)
    n_chunks_total = tl.cdiv(length, BLOCK_T)
    last = BLOCK_T - 1
    for i in range(0, n_chunks):
        # Scan order: chunks left to right, or right to left for REVERSE (no flipped copy).
        if REVERSE:
            chunk = tl.cdiv(seg_end - seg_start, BLOCK_T) - 1 - i
        else:
            chunk = i
        t0 = seg_start + chunk * BLOCK_T
        t = t0 + tl.arange(0, BLOCK_T)
        t_mask = t < seg_end
        if SAVE_CKPT:
            k = t0 // BLOCK_T
            ck_off = ((b * dim + d[:, None]) * n_chunks_total + k) * d_state + n[None, :]
            tl.store(ckpt_ptr + ck_off, h, mask=dn_mask)
        u, dt, _, Bt = _load_chunk(
            u_base, dt_base, bias_ptr, B_base, t, d, n, t_mask, d_mask, n_mask,
            stride_ud, stride_dtd, stride_bn, HAS_BIAS, SOFTPLUS,
        )
        dA = tl.exp2(dt[:, None, :] * A[:, :, None])  # (BLOCK_D, BLOCK_N, BLOCK_T)
        dBu = (dt * u)[:, None, :] * Bt[None, :, :]
        a_cum, b_cum = tl.associative_scan((dA, dBu), 2, _first_order_combine, reverse=REVERSE)
        hs = a_cum * h[:, :, None] + b_cum
        # The state leaving the chunk is at its last position in scan order; positions past
        # the end are identity maps, so the edge position is right even for a partial chunk.
        if REVERSE:
            edge = tl.arange(0, BLOCK_T) == 0
        else:
            edge = tl.arange(0, BLOCK_T) == last
        h = tl.sum(tl.where(edge[None, None, :], hs, 0.0), axis=2)
        if STATE_ONLY:
            dt_total += tl.sum(dt, axis=1)
        else:
            Ct = tl.load(
                C_base + n[:, None] * stride_cn + t[None, :], mask=n_mask[:, None] & t_mask[None, :], other=0.0
            ).to(tl.float32)
            y = tl.sum(Ct[None, :, :] * hs, axis=1)
            if HAS_D:
                y += Dv[:, None] * u
            m2 = d_mask[:, None] & t_mask[None, :]
            y_off = b * stride_yb + d[:, None] * stride_yd + t[None, :]
            if ADD_TO_Y:
                # Bidirectional: y already holds the other direction's ungated output.
                y += tl.load(y_ptr + y_off, mask=m2, other=0.0).to(tl.float32)
            if HAS_Z:
                zt = tl.load(
                    z_ptr + b * stride_zb + d[:, None] * stride_zd + t[None, :], mask=m2, other=0.0
                ).to(tl.float32)
                y *= zt * tl.sigmoid(zt)
            tl.store(y_ptr + y_off, y.to(y_ptr.dtype.element_ty), mask=m2)
    tl.store(h_out_ptr + seg_state_off, h, mask=dn_mask)
    if STATE_ONLY:
        tl.store(dtsum_ptr + (b * dim + d) * n_seg + seg, dt_total, mask=d_mask)
