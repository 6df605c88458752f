"""Triton forward kernel of the bidirectional selective scan: both directions in one launch.

``y = (scan(u, ...) + reverse scan(u_r, ...)) * silu(z)``, each direction with its own inputs and
parameters (or the same tensors twice), as a BiMamba layer needs. One program owns ``BLOCK_D``
channels of one batch row and one segment and walks it in *both* directions at once: at step
``s`` the forward walk is at the segment's position ``s`` and the reverse walk at the mirrored
position, each carrying its own fp32 state tile (the per-step work of each is scan_forward.py's).

Why in tandem. One direction's walk is a chain of dependent state updates, and with one warp per
program the forward kernel is bound by that chain's latency more than by the exponential unit
(docs/benchmarks.md). Two independent chains in one program give the scheduler a second update
to issue while the first waits, and the launch reads z and writes y once for both directions;
two launches, one after the other, each wait on their own chain.

Who writes y. Each position is visited twice. The walk that reaches it first stores its ungated
part there; the walk that reaches it second adds the stored part, gates, and stores the result.
In the first half of the steps both walks are first visitors, in the second half both are second
visitors (the walks cross at the middle of the segment's blocks), so the program walks half
blocks, each all of one kind, with no test per position. Where the halves meet, a barrier: the
second half reads what the other direction (possibly another lane of the warp) stored, and
Triton's prefetching of loads (``STAGES``) must not hoist those reads above the stores.

Segments (long rows, small batch) work as in scan_forward.py: a ``STATE_ONLY`` pass (both
directions' per-segment states and dt sums, one walk), two chains (scan_segments.py, one per
direction), then the output pass from the entering states. Checkpoints for the backward are each
direction's own, as its unidirectional forward would store them, so the backward is unchanged.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .scan_steps import (
    _block_coords,
    _direction_params,
    _emit_output,
    _output_of,
    _position_rows,
    _shift_rows,
    _state_tile_ptrs,
    _walk_step,
)


@triton.jit
def _tandem_steps(
    hf, hr, dtf_sum, dtr_sum, A2f, A2r, Df, Dr, biasf, biasr, tf0, tr0, seg_end, d, n, dim, d_state,
    uf_row, dtf_row, zf_row, yf_row, Bf_col, Cf_col, ur_row, dtr_row, zr_row, yr_row, Br_col, Cr_col,
    stride_ud, stride_dtd, stride_zd, stride_yd, stride_bn, stride_cn,
    stride_ul, stride_dtl, stride_zl, stride_yl, stride_bl, stride_cl,
    lo, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    CKPT_EVERY: tl.constexpr, UNROLL: tl.constexpr, STAGES: tl.constexpr, STATE_ONLY: tl.constexpr,
    SECOND: tl.constexpr, HAS_Z: tl.constexpr, HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr, EVEN_D: tl.constexpr, EVEN_N: tl.constexpr, FAST: tl.constexpr,
):
    """Steps lo .. lo + CKPT_EVERY / 2 of one pair of blocks (a half block): the forward walk at
    offset s of its block, the reverse walk at offset CKPT_EVERY - 1 - s of its own. ``SECOND``:
    both are second visitors."""
    for j in tl.range(lo // UNROLL, (lo + CKPT_EVERY // 2) // UNROLL, num_stages=STAGES):
        for k in tl.static_range(UNROLL):
            rf = j * UNROLL + k
            rr = CKPT_EVERY - 1 - rf
            hf, uf, dtf, mf, nmf = _walk_step(
                hf, A2f, biasf, tf0 + rf, rf, seg_end, d, n, dim, d_state, uf_row, dtf_row, Bf_col, stride_ud,
                stride_dtd, stride_bn, stride_ul, stride_dtl, stride_bl, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N,
                HAS_BIAS, SOFTPLUS, FAST,
            )
            hr, ur, dtr, mr, nmr = _walk_step(
                hr, A2r, biasr, tr0 + rr, rr, seg_end, d, n, dim, d_state, ur_row, dtr_row, Br_col, stride_ud,
                stride_dtd, stride_bn, stride_ul, stride_dtl, stride_bl, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N,
                HAS_BIAS, SOFTPLUS, FAST,
            )
            if STATE_ONLY:
                dtf_sum += dtf
                dtr_sum += dtr
            else:
                yf = _output_of(hf, uf, Df, Cf_col, n, rf, stride_cn, stride_cl, nmf, HAS_D)
                yr = _output_of(hr, ur, Dr, Cr_col, n, rr, stride_cn, stride_cl, nmr, HAS_D)
                if SECOND:  # add the other direction's part, gate, store the result
                    _emit_output(yf, yf_row, zf_row, d, rf, stride_yd, stride_yl, stride_zd, stride_zl, mf,
                                 True, HAS_Z, FAST)
                    _emit_output(yr, yr_row, zr_row, d, rr, stride_yd, stride_yl, stride_zd, stride_zl, mr,
                                 True, HAS_Z, FAST)
                else:  # store this direction's ungated part
                    _emit_output(yf, yf_row, zf_row, d, rf, stride_yd, stride_yl, stride_zd, stride_zl, mf,
                                 False, False, FAST)
                    _emit_output(yr, yr_row, zr_row, d, rr, stride_yd, stride_yl, stride_zd, stride_zl, mr,
                                 False, False, FAST)
    return hf, hr, dtf_sum, dtr_sum


@triton.jit
def _bidirectional_fwd_kernel(
    u_ptr, dt_ptr, AT_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, h_in_ptr, h_out_ptr, dtsum_ptr, ckpt_ptr,
    ur_ptr, dtr_ptr, ATr_ptr, Br_ptr, Cr_ptr, Dr_ptr, biasr_ptr, hr_in_ptr, hr_out_ptr, dtsumr_ptr, ckptr_ptr,
    z_ptr, y_ptr,
    length, dim, d_state, seg_len, dim_per_group,
    stride_ub, stride_ud, stride_ul, stride_dtb, stride_dtd, stride_dtl,
    stride_zb, stride_zd, stride_zl, stride_yb, stride_yd, stride_yl,
    stride_bb, stride_bg, stride_bn, stride_bl, stride_cb, stride_cg, stride_cn, stride_cl,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CKPT_EVERY: tl.constexpr, UNROLL: tl.constexpr,
    STATE_ONLY: tl.constexpr, HAS_Z: tl.constexpr, HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr, HAS_H_IN: tl.constexpr, SAVE_CKPT: tl.constexpr, STAGES: tl.constexpr,
    EVEN_D: tl.constexpr, EVEN_N: tl.constexpr, FAST_MATH: tl.constexpr,
):
    # The reverse direction's tensors have the forward's strides (the launcher checks), so one set
    # of strides serves both; z and y are shared.
    seg, b, n_seg = tl.program_id(1), tl.program_id(2).to(tl.int64), tl.num_programs(1)
    d, n, d_mask, n_mask, dn_mask, g = _block_coords(tl.program_id(0), dim, d_state, dim_per_group, BLOCK_D,
                                                      BLOCK_N)
    A2f, Df, biasf = _direction_params(AT_ptr, D_ptr, bias_ptr, d, n, dim, d_mask, dn_mask, BLOCK_D, HAS_D,
                                       HAS_BIAS)
    A2r, Dr, biasr = _direction_params(ATr_ptr, Dr_ptr, biasr_ptr, d, n, dim, d_mask, dn_mask, BLOCK_D, HAS_D,
                                       HAS_BIAS)
    seg_row = b * n_seg + seg
    if HAS_H_IN:
        hf = tl.load(_state_tile_ptrs(h_in_ptr, seg_row, d, n, dim, d_state), mask=dn_mask, other=0.0)
        hr = tl.load(_state_tile_ptrs(hr_in_ptr, seg_row, d, n, dim, d_state), mask=dn_mask, other=0.0)
    else:
        hf = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        hr = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dtf_sum = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dtr_sum = tl.zeros((BLOCK_D,), dtype=tl.float32)

    seg_start = seg * seg_len
    seg_end = tl.minimum(seg_start + seg_len, length)
    n_blocks = tl.cdiv(seg_end - seg_start, CKPT_EVERY)
    n_blocks_total = tl.cdiv(length, CKPT_EVERY)
    # The forward walk's blocks go left to right from the segment's first, the reverse walk's right
    # to left from its last; positions past seg_end are masked (identity steps, no stores).
    tf0 = seg_start
    tr0 = seg_start + (n_blocks - 1) * CKPT_EVERY
    uf_row, dtf_row, zf_row, yf_row, Bf_col, Cf_col = _position_rows(
        tf0.to(tl.int64), b, g, u_ptr, dt_ptr, z_ptr, y_ptr, B_ptr, C_ptr, stride_ub, stride_ul, stride_dtb,
        stride_dtl, stride_zb, stride_zl, stride_yb, stride_yl, stride_bb, stride_bg, stride_bl, stride_cb,
        stride_cg, stride_cl)
    ur_row, dtr_row, zr_row, yr_row, Br_col, Cr_col = _position_rows(
        tr0.to(tl.int64), b, g, ur_ptr, dtr_ptr, z_ptr, y_ptr, Br_ptr, Cr_ptr, stride_ub, stride_ul,
        stride_dtb, stride_dtl, stride_zb, stride_zl, stride_yb, stride_yl, stride_bb, stride_bg, stride_bl,
        stride_cb, stride_cg, stride_cl)
    # Half blocks: the walks cross at half block n_blocks (the middle block's second half when the
    # count is odd), so every half block is all first visits or all second visits.
    for hb in range(0, 2 * n_blocks):
        half = hb % 2
        if SAVE_CKPT:
            if half == 0:
                ckpt_f = b * n_blocks_total + tf0 // CKPT_EVERY
                ckpt_r = b * n_blocks_total + tr0 // CKPT_EVERY
                tl.store(_state_tile_ptrs(ckpt_ptr, ckpt_f, d, n, dim, d_state), hf, mask=dn_mask)
                tl.store(_state_tile_ptrs(ckptr_ptr, ckpt_r, d, n, dim, d_state), hr, mask=dn_mask)
        lo = half * (CKPT_EVERY // 2)
        if STATE_ONLY:
            hf, hr, dtf_sum, dtr_sum = _tandem_steps(
                hf, hr, dtf_sum, dtr_sum, A2f, A2r, Df, Dr, biasf, biasr, tf0, tr0, seg_end, d, n, dim,
                d_state, uf_row, dtf_row, zf_row, yf_row, Bf_col, Cf_col, ur_row, dtr_row, zr_row, yr_row,
                Br_col, Cr_col,
                stride_ud, stride_dtd, stride_zd, stride_yd, stride_bn, stride_cn,
                stride_ul, stride_dtl, stride_zl, stride_yl, stride_bl, stride_cl,
                lo, BLOCK_D, BLOCK_N, CKPT_EVERY, UNROLL, STAGES, True, False, HAS_Z, HAS_D, HAS_BIAS,
                SOFTPLUS, EVEN_D, EVEN_N, FAST_MATH,
            )
        elif hb < n_blocks:
            hf, hr, dtf_sum, dtr_sum = _tandem_steps(
                hf, hr, dtf_sum, dtr_sum, A2f, A2r, Df, Dr, biasf, biasr, tf0, tr0, seg_end, d, n, dim,
                d_state, uf_row, dtf_row, zf_row, yf_row, Bf_col, Cf_col, ur_row, dtr_row, zr_row, yr_row,
                Br_col, Cr_col,
                stride_ud, stride_dtd, stride_zd, stride_yd, stride_bn, stride_cn,
                stride_ul, stride_dtl, stride_zl, stride_yl, stride_bl, stride_cl,
                lo, BLOCK_D, BLOCK_N, CKPT_EVERY, UNROLL, STAGES, False, False, HAS_Z, HAS_D, HAS_BIAS,
                SOFTPLUS, EVEN_D, EVEN_N, FAST_MATH,
            )
        else:
            if hb == n_blocks:
                tl.debug_barrier()  # the other walk's stores before the reads (module docstring)
            hf, hr, dtf_sum, dtr_sum = _tandem_steps(
                hf, hr, dtf_sum, dtr_sum, A2f, A2r, Df, Dr, biasf, biasr, tf0, tr0, seg_end, d, n, dim,
                d_state, uf_row, dtf_row, zf_row, yf_row, Bf_col, Cf_col, ur_row, dtr_row, zr_row, yr_row,
                Br_col, Cr_col,
                stride_ud, stride_dtd, stride_zd, stride_yd, stride_bn, stride_cn,
                stride_ul, stride_dtl, stride_zl, stride_yl, stride_bl, stride_cl,
                lo, BLOCK_D, BLOCK_N, CKPT_EVERY, UNROLL, STAGES, False, True, HAS_Z, HAS_D, HAS_BIAS,
                SOFTPLUS, EVEN_D, EVEN_N, FAST_MATH,
            )
        if half == 1:
            tf0 += CKPT_EVERY
            tr0 -= CKPT_EVERY
            uf_row, dtf_row, zf_row, yf_row, Bf_col, Cf_col = _shift_rows(
                uf_row, dtf_row, zf_row, yf_row, Bf_col, Cf_col, CKPT_EVERY, stride_ul, stride_dtl, stride_zl,
                stride_yl, stride_bl, stride_cl)
            ur_row, dtr_row, zr_row, yr_row, Br_col, Cr_col = _shift_rows(
                ur_row, dtr_row, zr_row, yr_row, Br_col, Cr_col, -CKPT_EVERY, stride_ul, stride_dtl,
                stride_zl, stride_yl, stride_bl, stride_cl)
    if STATE_ONLY:
        # The forward walk leaves the segment at its right end, the reverse walk at its left end.
        tl.store(_state_tile_ptrs(h_out_ptr, seg_row, d, n, dim, d_state), hf, mask=dn_mask)
        tl.store(_state_tile_ptrs(hr_out_ptr, seg_row, d, n, dim, d_state), hr, mask=dn_mask)
        tl.store(dtsum_ptr + (b * dim + d) * n_seg + seg, dtf_sum, mask=d_mask)
        tl.store(dtsumr_ptr + (b * dim + d) * n_seg + seg, dtr_sum, mask=d_mask)
