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

from .scan_steps import (
    _block_coords,
    _direction_params,
    _emit_output,
    _in_block,
    _output_of,
    _position_rows,
    _shift_rows,
    _state_tile_ptrs,
    _walk_step,
)


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
    FAST_MATH: tl.constexpr, DECAY: tl.constexpr,
):
    seg, b, n_seg = tl.program_id(1), tl.program_id(2).to(tl.int64), tl.num_programs(1)
    d, n, d_mask, n_mask, dn_mask, g = _block_coords(tl.program_id(0), dim, d_state, dim_per_group, BLOCK_D,
                                                      BLOCK_N)
    A2, Dv, bias = _direction_params(AT_ptr, D_ptr, bias_ptr, d, n, dim, d_mask, dn_mask, BLOCK_D, HAS_D,
                                     HAS_BIAS, DECAY)
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
    u_row, dt_row, z_row, y_row, B_col, C_col = _position_rows(
        t0.to(tl.int64), b, g, u_ptr, dt_ptr, z_ptr, y_ptr, B_ptr, C_ptr, stride_ub, stride_ul, stride_dtb,
        stride_dtl, stride_zb, stride_zl, stride_yb, stride_yl, stride_bb, stride_bg, stride_bl, stride_cb,
        stride_cg, stride_cl)
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
                    HAS_BIAS, SOFTPLUS, FAST_MATH, DECAY,
                )
                if STATE_ONLY:
                    dt_total += dt
                else:
                    y = _output_of(h, u, Dv, C_col, n, r, stride_cn, stride_cl, nm, HAS_D)
                    # Bidirectional (ADD_TO_Y): y already holds the other direction's ungated output.
                    _emit_output(y, y_row, z_row, d, r, stride_yd, stride_yl, stride_zd, stride_zl, m,
                                 ADD_TO_Y, HAS_Z, FAST_MATH)
        t0 += block_step
        u_row, dt_row, z_row, y_row, B_col, C_col = _shift_rows(
            u_row, dt_row, z_row, y_row, B_col, C_col, block_step, stride_ul, stride_dtl, stride_zl,
            stride_yl, stride_bl, stride_cl)
    tl.store(_state_tile_ptrs(h_out_ptr, b * n_seg + seg, d, n, dim, d_state), h, mask=dn_mask)
    if STATE_ONLY:
        tl.store(dtsum_ptr + (b * dim + d) * n_seg + seg, dt_total, mask=d_mask)
