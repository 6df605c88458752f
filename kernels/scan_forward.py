"""Triton forward kernel of the selective scan.

One program owns ``BLOCK_D`` channels of one batch row and one *segment* of the sequence, and walks
it one position at a time in scan order, carrying the state ``h`` (BLOCK_D x d_state, fp32) in
registers: ``h = exp(dt A) h + dt B u``, ``y = C . h + D u``, ``y *= silu(z)``. The channels lie
across lanes and a channel's states within one lane (Triton's layout for the default 128 channels
x 16 states is 4 channels x all 16 states per lane; with 64 channels it is 4 x 8, two lanes per
channel), so a step is one exp2 and a few FMAs per (channel, state), C . h needs no shuffle and no
lane repeats a channel's softplus and gate: close to the least work the recurrence allows.

Why a sequential walk is fast here: every step reads one position of u, delta, z (BLOCK_D values)
and of B, C (d_state values). When the tensors are stored time-major, (batch, length, dim) — what
a linear projection of (batch, length, d_model) activations produces — those are contiguous rows
and the loads coalesce; strides are taken as given, never copied. Channel-major storage also works
(each step then touches one cache line per channel, which later steps hit in L1).

Why segments. At long lengths and small batch there are too few (batch x channel-block) programs
to fill the GPU, so the sequence is cut into ``S`` segments scanned in parallel:

1. ``STATE_ONLY`` pass: each segment is scanned from a zero state; it writes only its final state
   and the sum of dt over it (the segment's decay is ``exp(A * sum dt)``);
2. scan_segments.py chains those few states;
3. the output pass scans each segment again from its true entering state and writes ``y``.

With ``S == 1`` passes 1 and 2 are skipped. The output pass also stores the state entering every
block of ``CKPT_EVERY`` positions (``SAVE_CKPT``); the backward pass recomputes states from these
checkpoints instead of saving ``O(length x d_state)`` activations.

Bytes per pass: u, delta, z read once, y written once, B and C read once per channel block.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .fast_math import sigmoid
from .scan_steps import _block_coords, _in_block, _state_tile_ptrs, _walk_step


@triton.jit
def _selective_scan_fwd_kernel(
    u_ptr, dt_ptr, AT_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    h_in_ptr, y_ptr, h_out_ptr, dtsum_ptr, ckpt_ptr,
    length, dim, d_state, seg_len, dim_per_group,
    stride_ub, stride_ud, stride_ul, stride_dtb, stride_dtd, stride_dtl,
    stride_zb, stride_zd, stride_zl, stride_yb, stride_yd, stride_yl,
    stride_bb, stride_bg, stride_bn, stride_bl, stride_cb, stride_cg, stride_cn, stride_cl,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CKPT_EVERY: tl.constexpr, UNROLL: tl.constexpr,
    REVERSE: tl.constexpr, STATE_ONLY: tl.constexpr, HAS_Z: tl.constexpr, HAS_D: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H_IN: tl.constexpr, SAVE_CKPT: tl.constexpr,
    ADD_TO_Y: tl.constexpr, STAGES: tl.constexpr, EVEN_D: tl.constexpr, EVEN_N: tl.constexpr,
    FAST_MATH: tl.constexpr,
):
    seg, b, n_seg = tl.program_id(1), tl.program_id(2).to(tl.int64), tl.num_programs(1)
    d, n, d_mask, n_mask, dn_mask, g = _block_coords(tl.program_id(0), dim, d_state, dim_per_group, BLOCK_D,
                                                      BLOCK_N)
    # A arrives transposed, (d_state, dim): loads contiguous along channels put the channels across
    # threads and a channel's states within one or two of them (see the module docstring).
    # It is pre-scaled by log2(e) so that exp(dt A) is a single exp2.
    A2 = tl.load(AT_ptr + n[None, :] * dim + d[:, None], mask=dn_mask, other=0.0).to(tl.float32)
    A2 = A2 * 1.4426950408889634
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    else:
        bias = tl.zeros((BLOCK_D,), dtype=tl.float32)

    if HAS_H_IN:
        h = tl.load(_state_tile_ptrs(h_in_ptr, b * n_seg + seg, d, n, dim, d_state), mask=dn_mask, other=0.0)
    else:
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dt_total = tl.zeros((BLOCK_D,), dtype=tl.float32)

    seg_start = seg * seg_len
    seg_end = tl.minimum(seg_start + seg_len, length)
    n_blocks = tl.cdiv(seg_end - seg_start, CKPT_EVERY)
    n_blocks_total = tl.cdiv(length, CKPT_EVERY)
    # Scan order: blocks left to right, or right to left for REVERSE (no flipped copy). The row
    # pointers (scalars; channels and states are added where they are read) start at the first
    # block, in 64 bits (see scan_steps.py), and move one block per iteration.
    if REVERSE:
        t0 = seg_start + (n_blocks - 1) * CKPT_EVERY
        block_step = -CKPT_EVERY
    else:
        t0 = seg_start
        block_step = CKPT_EVERY
    first = t0.to(tl.int64)
    u_row = u_ptr + b * stride_ub + first * stride_ul
    dt_row = dt_ptr + b * stride_dtb + first * stride_dtl
    z_row = z_ptr + b * stride_zb + first * stride_zl
    y_row = y_ptr + b * stride_yb + first * stride_yl
    B_col = B_ptr + b * stride_bb + g * stride_bg + first * stride_bl
    C_col = C_ptr + b * stride_cb + g * stride_cg + first * stride_cl
    for _block in range(0, n_blocks):
        if SAVE_CKPT:
            tl.store(_state_tile_ptrs(ckpt_ptr, b * n_blocks_total + t0 // CKPT_EVERY, d, n, dim, d_state), h,
                     mask=dn_mask)
        # Unrolled by UNROLL (independent loads of the next steps can issue early) inside a plain
        # loop, which keeps compile time low; the state update itself is a dependent chain.
        # STAGES > 1 also has Triton prefetch later iterations' loads (see LaunchPlan.stages).
        for j in tl.range(0, CKPT_EVERY // UNROLL, num_stages=STAGES):
            for k in tl.static_range(UNROLL):
                r = _in_block(j * UNROLL + k, CKPT_EVERY, REVERSE)
                t = t0 + r
                h, u, dt, m, nm = _walk_step(
                    h, A2, bias, t, r, seg_end, d, n, dim, d_state, u_row, dt_row, B_col, stride_ud,
                    stride_dtd, stride_bn, stride_ul, stride_dtl, stride_bl, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N,
                    HAS_BIAS, SOFTPLUS, FAST_MATH,
                )
                if STATE_ONLY:
                    dt_total += dt
                else:
                    Ct = tl.load(C_col + n * stride_cn + r * stride_cl, mask=nm, other=0.0).to(tl.float32)
                    y = tl.sum(h * Ct[None, :], axis=1)
                    if HAS_D:
                        y += Dv * u
                    if ADD_TO_Y:
                        # Bidirectional: y already holds the other direction's ungated output.
                        y += tl.load(y_row + d * stride_yd + r * stride_yl, mask=m, other=0.0).to(tl.float32)
                    if HAS_Z:
                        zt = tl.load(z_row + d * stride_zd + r * stride_zl, mask=m, other=0.0).to(tl.float32)
                        y *= zt * sigmoid(zt, FAST_MATH)
                    tl.store(y_row + d * stride_yd + r * stride_yl, y.to(y_ptr.dtype.element_ty), mask=m)
        t0 += block_step
        u_row += block_step * stride_ul
        dt_row += block_step * stride_dtl
        z_row += block_step * stride_zl
        y_row += block_step * stride_yl
        B_col += block_step * stride_bl
        C_col += block_step * stride_cl
    tl.store(_state_tile_ptrs(h_out_ptr, b * n_seg + seg, d, n, dim, d_state), h, mask=dn_mask)
    if STATE_ONLY:
        tl.store(dtsum_ptr + (b * dim + d) * n_seg + seg, dt_total, mask=d_mask)
