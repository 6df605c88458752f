"""Triton backward kernel of the selective scan: each lane walks its channels back through time.

Notation (scan order; for ``REVERSE`` the "next" position is the one to the left):
``h_t = a_t h_{t-1} + dt_t B_t u_t`` with ``a_t = exp(dt_t A)``, ``y_t = C_t . h_t + D u_t``,
``out_t = y_t silu(z_t)``. With ``g_t = dout_t silu(z_t)`` the state's adjoint obeys

    dh_t = C_t g_t + c_t,      c_t = a_{t+1} dh_{t+1}

a first-order recurrence running against the scan order; ``c`` is what the kernel carries from
one position to the next (and between segments: the gradient reaching the state before them).
Per position, with ``p_t = a_t h_{t-1}`` (the forward walk keeps it; no division):

    d dt_t = sum_n dh_t (A p_t + B_t u_t)                       dA  += dh_t dt_t p_t
    du_t   = sum_n dh_t dt_t B_t + D g_t                         dB_t = sum_d dh_t dt_t u_t
    dC_t   = sum_d g_t h_t                                       dD  += g_t u_t

Work decomposition: the forward kernel's, walked backwards. A program owns ``BLOCK_D`` channels of
one batch row and one segment; the channels lie across lanes and a channel's states within one
or two lanes (Triton's layout for 64 channels x 16 states is 4 channels x 8 states per lane), so
the sums over states are in-lane adds plus at most one shuffle, and the main cross-lane work is
dB_t and dC_t (sums over the program's channels, then one atomic add per state and position).
The states are needed in reverse order, and the forward pass kept only one every ``CKPT_EVERY``
positions. So each checkpoint block is cut into sub-blocks of ``SUB`` positions, visited against
scan order, each in two walks:

1. forward, from the state entering the sub-block: everything that needs only forward
   quantities (y for dz, dz, g, dC_t), and what the second walk needs is kept in a small
   per-program scratch (the programs are persistent and reuse theirs): the tile
   ``a_t h_{t-1}`` and dt, u, g and softplus'(raw) per channel;
2. backward, carrying the adjoint: dh_t, one exp per element for c, then dA, d dt, du, dD,
   d delta_bias and dB_t from the kept values.

The kept tiles are most of the kernel's memory traffic (a tile per position, written and read
back): with bf16 inputs they are stored in fp16, half of fp32's bytes (selective_scan_triton.
_kept_dtype says why that precision suffices). ``SUB == CKPT_EVERY`` (the default) walks each
position forward once, from the checkpoint; with smaller sub-blocks a first walk over the block
keeps only the state entering each sub-block, so every position is walked twice and the scratch
holds ``SUB`` positions instead of ``CKPT_EVERY``. Every walk loads each position's inputs one step
ahead of its use.

The grid is persistent: ``num_programs`` programs take the (channel block, segment, batch row)
items in turn, so the scratch is sized by the programs, not by the work.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .fast_math import sigmoid
from .scan_steps import (
    _advance,
    _advance_keeping,
    _block_coords,
    _decay,
    _direction_params,
    _dt_of,
    _in_block,
    _load_walk_inputs,
    _rate_dot,
    _state_tile_ptrs,
    _step_masks,
)


@triton.jit
def _gate_grad(dout, zt, HAS_Z: tl.constexpr, FAST: tl.constexpr):
    """(g, dout, z, sigmoid(z)) in fp32 from the loaded dout and z: g = dout silu(z) is the
    gradient reaching y; the others are what dz needs (z and sigmoid(z) are dout and 1 without a
    gate)."""
    dout = dout.to(tl.float32)
    if HAS_Z:
        zt = zt.to(tl.float32)
        sig_z = sigmoid(zt, FAST)
        return dout * zt * sig_z, dout, zt, sig_z
    else:
        return dout, dout, dout, tl.full(dout.shape, 1.0, tl.float32)


@triton.jit
def _load_output_grad(dout_row, z_row, d, r, stride_od, stride_zd, stride_ol, stride_zl, m,
                      HAS_Z: tl.constexpr):
    """(dout, z) at offset ``r`` as stored (z is dout when there is no gate, and is not read)."""
    dout = tl.load(dout_row + d * stride_od + r * stride_ol, mask=m, other=0.0)
    if HAS_Z:
        zt = tl.load(z_row + d * stride_zd + r * stride_zl, mask=m, other=0.0)
    else:
        zt = dout
    return dout, zt


@triton.jit
def _walk_block_positions(
    h, count, A2, bias, t0, seg_end, d, n, dim, d_state, u_row, dt_row, B_col, stride_ud, stride_dtd,
    stride_bn, stride_ul, stride_dtl, stride_bl, k_first, CKPT_EVERY: tl.constexpr, REVERSE: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, EVEN_D: tl.constexpr, EVEN_N: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, FAST: tl.constexpr, DECAY: tl.constexpr,
):
    """Advance ``h`` over ``count`` positions of the block at ``t0`` (scan order, from its
    ``k_first``-th position), keeping nothing: the first walk over a block cut into sub-blocks.

    Each position's inputs are loaded one step ahead (the last step reloads its own position,
    which is always addressable): waiting for loads issued at the top of the same step would
    otherwise be most of the backward's time (Nsight Compute, docs/benchmarks-history.md).
    """
    r = _in_block(k_first, CKPT_EVERY, REVERSE)
    m, nm = _step_masks(t0 + r, seg_end, d, n, dim, d_state, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N)
    u_nx, dt_nx, B_nx = _load_walk_inputs(u_row, dt_row, B_col, d, n, r, stride_ud, stride_dtd, stride_bn,
                                          stride_ul, stride_dtl, stride_bl, m, nm)
    for i in range(0, count):
        u, dt_raw, Bt, m_i = u_nx, dt_nx, B_nx, m
        r = _in_block(k_first + tl.minimum(i + 1, count - 1), CKPT_EVERY, REVERSE)
        m, nm = _step_masks(t0 + r, seg_end, d, n, dim, d_state, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N)
        u_nx, dt_nx, B_nx = _load_walk_inputs(u_row, dt_row, B_col, d, n, r, stride_ud, stride_dtd, stride_bn,
                                              stride_ul, stride_dtl, stride_bl, m, nm)
        h, _, _ = _advance(h, A2, u, dt_raw, Bt, bias, m_i, HAS_BIAS, SOFTPLUS, FAST, DECAY)
    return h


@triton.jit
def _walk_sub_block_keeping(
    h, k_first, A2, bias, Dv, t0, seg_end, d, n, dim, d_state, u_row, dt_row, B_col, C_col, dout_row, z_row,
    dz_row, dC_col, stride_ud, stride_dtd, stride_bn, stride_ul, stride_dtl, stride_bl, stride_cn, stride_cl,
    stride_od, stride_ol, stride_zd, stride_zl, stride_dcn, stride_dcl, tiles, tile_off, rows,
    SUB: tl.constexpr, CKPT_EVERY: tl.constexpr, REVERSE: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr, EVEN_D: tl.constexpr, EVEN_N: tl.constexpr, HAS_Z: tl.constexpr,
    HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, ACCUMULATE_DZ: tl.constexpr,
    FAST: tl.constexpr, DECAY: tl.constexpr,
):
    """Walk the ``SUB`` positions of a sub-block in scan order from its entering state ``h``, doing
    every part of the backward that needs only the forward's quantities, and keep what the reverse
    walk needs in the program's scratch.

    Done here, once per position: y (for dz), dz, g = dout silu(z) and dC_t = sum_d g_t h_t (one
    atomic add per state). Kept, at row i of the sub-block: the tile ``a_t h_{t-1}`` (what d dt and
    dA need; in ``tiles``' dtype) and dt, u, g and softplus'(raw) per channel in ``rows`` (fp32).
    The reverse step then computes one exponential per element (for the carry), no softplus or
    gate, and no sum over channels but dB's. On its own, with fp32 tiles, this split is no faster
    than keeping h_t and doing all of that in the reverse step; the speed comes from storing the
    tile in 16 bits (docs/benchmarks-history.md). Keeping ``a_t h_{t-1}`` itself, rather than
    recovering it as the difference ``h_t - dt_t B_t u_t``, avoids a cancellation that would
    amplify a 16-bit tile's rounding (reasoning; the old layout was not tried with 16-bit tiles).
    """
    r = _in_block(k_first, CKPT_EVERY, REVERSE)
    m, nm = _step_masks(t0 + r, seg_end, d, n, dim, d_state, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N)
    u_nx, dt_nx, B_nx = _load_walk_inputs(u_row, dt_row, B_col, d, n, r, stride_ud, stride_dtd, stride_bn,
                                          stride_ul, stride_dtl, stride_bl, m, nm)
    C_nx = tl.load(C_col + n * stride_cn + r * stride_cl, mask=nm, other=0.0)
    dout_nx, z_nx = _load_output_grad(dout_row, z_row, d, r, stride_od, stride_zd, stride_ol, stride_zl, m,
                                      HAS_Z)
    for i in range(0, SUB):
        u, dt_raw, Bt, Ct, dout, zt, m_i, nm_i, r_i = u_nx, dt_nx, B_nx, C_nx, dout_nx, z_nx, m, nm, r
        r = _in_block(k_first + tl.minimum(i + 1, SUB - 1), CKPT_EVERY, REVERSE)
        m, nm = _step_masks(t0 + r, seg_end, d, n, dim, d_state, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N)
        u_nx, dt_nx, B_nx = _load_walk_inputs(u_row, dt_row, B_col, d, n, r, stride_ud, stride_dtd, stride_bn,
                                              stride_ul, stride_dtl, stride_bl, m, nm)
        C_nx = tl.load(C_col + n * stride_cn + r * stride_cl, mask=nm, other=0.0)
        dout_nx, z_nx = _load_output_grad(dout_row, z_row, d, r, stride_od, stride_zd, stride_ol, stride_zl,
                                          m, HAS_Z)
        h, decayed, u, dt, raw = _advance_keeping(h, A2, u, dt_raw, Bt, bias, m_i, HAS_BIAS, SOFTPLUS, FAST,
                                                  DECAY)
        # .cg: the scratch streams through L2 only, leaving L1 to the inputs that the reverse walk
        # reads again.
        tl.store(tiles + i * (BLOCK_N * BLOCK_D) + tile_off, decayed.to(tiles.dtype.element_ty),
                 cache_modifier=".cg")
        g, dout, zt, sig_z = _gate_grad(dout, zt, HAS_Z, FAST)
        if HAS_Z:
            y = tl.sum(h * Ct.to(tl.float32)[None, :], axis=1)
            if HAS_D:
                y += Dv * u
            dz = dout * y * sig_z * (1.0 + zt * (1.0 - sig_z))
            at_u = d * stride_ud + r_i * stride_ul  # dz is allocated with u's strides
            if ACCUMULATE_DZ:
                dz += tl.load(dz_row + at_u, mask=m_i, other=0.0).to(tl.float32)
            tl.store(dz_row + at_u, dz.to(dz_row.dtype.element_ty), mask=m_i)
        dC_t = tl.sum(h * g[:, None], axis=0)  # over this program's channels
        tl.atomic_add(dC_col + n * stride_dcn + r_i * stride_dcl, dC_t, mask=nm_i, sem="relaxed")
        if SOFTPLUS:
            dsoftplus = sigmoid(raw, FAST)
        else:
            dsoftplus = tl.full((BLOCK_D,), 1.0, tl.float32)
        row = rows + i * (4 * BLOCK_D) + tl.arange(0, BLOCK_D)
        tl.store(row, dt, cache_modifier=".cg")
        tl.store(row + BLOCK_D, u, cache_modifier=".cg")
        tl.store(row + 2 * BLOCK_D, g, cache_modifier=".cg")
        tl.store(row + 3 * BLOCK_D, dsoftplus, cache_modifier=".cg")
    return h


@triton.jit
def _load_kept(tiles, tile_off, rows, j, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """What _walk_sub_block_keeping kept for row ``j``: (a_t h_{t-1}, dt, u, g, softplus'(raw))."""
    decayed = tl.load(tiles + j * (BLOCK_N * BLOCK_D) + tile_off, cache_modifier=".cg").to(tl.float32)
    row = rows + j * (4 * BLOCK_D) + tl.arange(0, BLOCK_D)
    dt = tl.load(row, cache_modifier=".cg")
    u = tl.load(row + BLOCK_D, cache_modifier=".cg")
    g = tl.load(row + 2 * BLOCK_D, cache_modifier=".cg")
    dsoftplus = tl.load(row + 3 * BLOCK_D, cache_modifier=".cg")
    return decayed, dt, u, g, dsoftplus


@triton.jit
def _selective_scan_bwd_kernel(
    u_ptr, dt_ptr, AT_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, ckpt_ptr, carry_in_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, carry_out_ptr, dtsum_ptr,
    kept_ptr, scratch_ptr,
    length, dim, d_state, seg_len, dim_per_group, n_seg, n_items,
    stride_ub, stride_ud, stride_ul, stride_dtb, stride_dtd, stride_dtl, stride_zb, stride_zd, stride_zl,
    stride_ob, stride_od, stride_ol,
    stride_bb, stride_bg, stride_bn, stride_bl, stride_cb, stride_cg, stride_cn, stride_cl,
    stride_dbb, stride_dbg, stride_dbn, stride_dbl, stride_dcb, stride_dcg, stride_dcn, stride_dcl,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, SUB: tl.constexpr, CKPT_EVERY: tl.constexpr,
    REVERSE: tl.constexpr, ADJOINT_ONLY: tl.constexpr, HAS_Z: tl.constexpr,
    HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_CARRY_IN: tl.constexpr,
    ACCUMULATE_DZ: tl.constexpr, ACCUMULATE_DU: tl.constexpr, EVEN_D: tl.constexpr, EVEN_N: tl.constexpr,
    FAST_MATH: tl.constexpr, DECAY: tl.constexpr,
):
    pid = tl.program_id(0)
    n_dblocks = tl.cdiv(dim, BLOCK_D)
    n_ckpts = tl.cdiv(length, CKPT_EVERY)
    # This program's scratch: the SUB tiles that _walk_sub_block_keeping keeps (in kept_ptr's
    # dtype), and in fp32 its SUB rows of per-channel values and the states entering each of the
    # block's sub-blocks. Tiles are stored (state, channel) so that a state's row across channels
    # is one coalesced access, as for the checkpoints.
    TILE: tl.constexpr = BLOCK_N * BLOCK_D
    N_SUB: tl.constexpr = CKPT_EVERY // SUB
    tiles = kept_ptr + pid * (SUB * TILE)
    entering = scratch_ptr + pid * (N_SUB * TILE + SUB * 4 * BLOCK_D)
    rows = entering + N_SUB * TILE
    tile_off = tl.arange(0, BLOCK_N)[None, :] * BLOCK_D + tl.arange(0, BLOCK_D)[:, None]
    for item in range(pid, n_items, tl.num_programs(0)):
        pid_d = item % n_dblocks
        seg = (item // n_dblocks) % n_seg
        b = (item // (n_dblocks * n_seg)).to(tl.int64)  # 64-bit rows and blocks: see scan_steps.py
        d, n, d_mask, n_mask, dn_mask, g_idx = _block_coords(pid_d, dim, d_state, dim_per_group, BLOCK_D,
                                                              BLOCK_N)
        # exp(dt A) as one exp2 (a structured A: one per channel, _decay); d dt uses A = A2 ln 2
        A2, Dv, bias = _direction_params(AT_ptr, D_ptr, bias_ptr, d, n, dim, d_mask, dn_mask, BLOCK_D, HAS_D,
                                         HAS_BIAS, DECAY)
        # Segment states are (batch, S, d_state, dim), like the checkpoints (see _state_tile_ptrs).
        if HAS_CARRY_IN:
            c = tl.load(_state_tile_ptrs(carry_in_ptr, b * n_seg + seg, d, n, dim, d_state), mask=dn_mask,
                        other=0.0)
        else:
            c = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        dA_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        dt_total = tl.zeros((BLOCK_D,), dtype=tl.float32)

        seg_start = seg * seg_len
        seg_end = tl.minimum(seg_start + seg_len, length)
        n_blocks = tl.cdiv(seg_end - seg_start, CKPT_EVERY)
        # Against scan order: for a forward scan the blocks are visited right to left. The row
        # pointers (scalars; channels and states are added where they are read) start at the first
        # block visited, in 64 bits (see scan_steps.py), and move one block per iteration.
        if REVERSE:
            t0 = seg_start
            block_step = CKPT_EVERY
        else:
            t0 = seg_start + (n_blocks - 1) * CKPT_EVERY
            block_step = -CKPT_EVERY
        first = t0.to(tl.int64)
        u_row = u_ptr + b * stride_ub + first * stride_ul
        dt_row = dt_ptr + b * stride_dtb + first * stride_dtl
        z_row = z_ptr + b * stride_zb + first * stride_zl
        dout_row = dout_ptr + b * stride_ob + first * stride_ol
        # du, d delta and dz are allocated with u's strides.
        du_row = du_ptr + b * stride_ub + first * stride_ul
        ddt_row = ddelta_ptr + b * stride_ub + first * stride_ul
        dz_row = dz_ptr + b * stride_ub + first * stride_ul
        B_col = B_ptr + b * stride_bb + g_idx * stride_bg + first * stride_bl
        C_col = C_ptr + b * stride_cb + g_idx * stride_cg + first * stride_cl
        dB_col = dB_ptr + b * stride_dbb + g_idx * stride_dbg + first * stride_dbl
        dC_col = dC_ptr + b * stride_dcb + g_idx * stride_dcg + first * stride_dcl
        for _block in range(0, n_blocks):
            if ADJOINT_ONLY:
                # First pass of a segmented backward: only the carry and the segment's sum of dt.
                # Inputs are loaded one position ahead, as in the walks.
                r = _in_block(CKPT_EVERY - 1, CKPT_EVERY, REVERSE)
                m, nm = _step_masks(t0 + r, seg_end, d, n, dim, d_state, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N)
                dt_nx = tl.load(dt_row + d * stride_dtd + r * stride_dtl, mask=m, other=0.0)
                C_nx = tl.load(C_col + n * stride_cn + r * stride_cl, mask=nm, other=0.0)
                dout_nx, z_nx = _load_output_grad(dout_row, z_row, d, r, stride_od, stride_zd, stride_ol,
                                                  stride_zl, m, HAS_Z)
                for i in range(0, CKPT_EVERY):
                    dt_raw, Ct, dout_i, z_i, m_i = dt_nx, C_nx, dout_nx, z_nx, m
                    r = _in_block(CKPT_EVERY - 1 - tl.minimum(i + 1, CKPT_EVERY - 1), CKPT_EVERY, REVERSE)
                    m, nm = _step_masks(t0 + r, seg_end, d, n, dim, d_state, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N)
                    dt_nx = tl.load(dt_row + d * stride_dtd + r * stride_dtl, mask=m, other=0.0)
                    C_nx = tl.load(C_col + n * stride_cn + r * stride_cl, mask=nm, other=0.0)
                    dout_nx, z_nx = _load_output_grad(dout_row, z_row, d, r, stride_od, stride_zd, stride_ol,
                                                      stride_zl, m, HAS_Z)
                    dt, _ = _dt_of(dt_raw, bias, m_i, HAS_BIAS, SOFTPLUS, FAST_MATH)
                    g, _, _, _ = _gate_grad(dout_i, z_i, HAS_Z, FAST_MATH)
                    c = _decay(dt, A2, c, DECAY, FAST_MATH) * (c + Ct.to(tl.float32)[None, :] * g[:, None])
                    dt_total += dt
            else:
                h = tl.load(_state_tile_ptrs(ckpt_ptr, b * n_ckpts + t0 // CKPT_EVERY, d, n, dim, d_state),
                            mask=dn_mask, other=0.0)
                if N_SUB > 1:
                    # Walk the block once, keeping only the state entering each sub-block.
                    for s in range(0, N_SUB - 1):
                        tl.store(entering + s * TILE + tile_off, h, cache_modifier=".cg")
                        h = _walk_block_positions(
                            h, SUB, A2, bias, t0, seg_end, d, n, dim, d_state, u_row, dt_row, B_col,
                            stride_ud, stride_dtd, stride_bn, stride_ul, stride_dtl, stride_bl, s * SUB,
                            CKPT_EVERY, REVERSE, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N, HAS_BIAS, SOFTPLUS,
                            FAST_MATH, DECAY,
                        )
                    tl.store(entering + (N_SUB - 1) * TILE + tile_off, h, cache_modifier=".cg")
                    tl.debug_barrier()
                for s in range(0, N_SUB):
                    k0 = CKPT_EVERY - SUB - s * SUB  # the sub-block's first position in scan order
                    if N_SUB > 1:
                        h = tl.load(entering + (N_SUB - 1 - s) * TILE + tile_off, cache_modifier=".cg")
                    _walk_sub_block_keeping(
                        h, k0, A2, bias, Dv, t0, seg_end, d, n, dim, d_state, u_row, dt_row, B_col, C_col,
                        dout_row, z_row, dz_row, dC_col, stride_ud, stride_dtd, stride_bn, stride_ul,
                        stride_dtl, stride_bl, stride_cn, stride_cl, stride_od, stride_ol, stride_zd,
                        stride_zl, stride_dcn, stride_dcl, tiles, tile_off, rows, SUB, CKPT_EVERY, REVERSE,
                        BLOCK_D, BLOCK_N, EVEN_D, EVEN_N, HAS_Z, HAS_D, HAS_BIAS, SOFTPLUS, ACCUMULATE_DZ,
                        FAST_MATH, DECAY,
                    )
                    # Every thread reads back what it wrote; the barrier also covers layouts that
                    # would hand a value to another thread of a multi-warp program.
                    tl.debug_barrier()
                    # The sub-block against scan order. Everything a step reads is loaded one step
                    # ahead: the kept tile and rows from scratch, B and C (which the walk has just
                    # read: L1 hits).
                    jj = SUB - 1
                    r = _in_block(k0 + jj, CKPT_EVERY, REVERSE)
                    m, nm = _step_masks(t0 + r, seg_end, d, n, dim, d_state, BLOCK_D, BLOCK_N, EVEN_D,
                                        EVEN_N)
                    kept_nx = _load_kept(tiles, tile_off, rows, jj, BLOCK_D, BLOCK_N)
                    B_nx = tl.load(B_col + n * stride_bn + r * stride_bl, mask=nm, other=0.0)
                    C_nx = tl.load(C_col + n * stride_cn + r * stride_cl, mask=nm, other=0.0)
                    for i in range(0, SUB):
                        decayed, dt, u, g, dsoftplus = kept_nx
                        Bt, Ct = B_nx, C_nx
                        m_i, nm_i, r_i = m, nm, r
                        jj = tl.maximum(SUB - 2 - i, 0)
                        r = _in_block(k0 + jj, CKPT_EVERY, REVERSE)
                        m, nm = _step_masks(t0 + r, seg_end, d, n, dim, d_state, BLOCK_D, BLOCK_N, EVEN_D,
                                            EVEN_N)
                        kept_nx = _load_kept(tiles, tile_off, rows, jj, BLOCK_D, BLOCK_N)
                        B_nx = tl.load(B_col + n * stride_bn + r * stride_bl, mask=nm, other=0.0)
                        C_nx = tl.load(C_col + n * stride_cn + r * stride_cl, mask=nm, other=0.0)
                        Bt = Bt.to(tl.float32)
                        dh = c + Ct.to(tl.float32)[None, :] * g[:, None]
                        c = _decay(dt, A2, dh, DECAY, FAST_MATH) * dh
                        dh_prev = dh * decayed  # dh_t a_t h_{t-1}
                        dA_acc += dh_prev * dt[:, None]
                        dhB = tl.sum(dh * Bt[None, :], axis=1)
                        ddt = _rate_dot(dh_prev, A2, n, DECAY) * 0.6931471805599453
                        ddt = (ddt + dhB * u) * dsoftplus
                        ddt = tl.where(m_i, ddt, 0.0)
                        du = dhB * dt
                        if HAS_D:
                            du += Dv * g
                            dD_acc += g * u
                        # Sums over this program's channels, one atomic add per state.
                        dB_t = tl.sum(dh * (dt * u)[:, None], axis=0)
                        tl.atomic_add(dB_col + n * stride_dbn + r_i * stride_dbl, dB_t, mask=nm_i,
                                      sem="relaxed")
                        dbias_acc += ddt
                        at_u = d * stride_ud + r_i * stride_ul  # du and d delta share u's strides
                        if ACCUMULATE_DU:
                            du += tl.load(du_row + at_u, mask=m_i, other=0.0).to(tl.float32)
                            ddt += tl.load(ddt_row + at_u, mask=m_i, other=0.0).to(tl.float32)
                        tl.store(du_row + at_u, du.to(du_ptr.dtype.element_ty), mask=m_i)
                        tl.store(ddt_row + at_u, ddt.to(ddelta_ptr.dtype.element_ty), mask=m_i)
                    tl.debug_barrier()  # the next sub-block overwrites the scratch
            t0 += block_step
            u_row += block_step * stride_ul
            dt_row += block_step * stride_dtl
            z_row += block_step * stride_zl
            dout_row += block_step * stride_ol
            du_row += block_step * stride_ul
            ddt_row += block_step * stride_ul
            dz_row += block_step * stride_ul
            B_col += block_step * stride_bl
            C_col += block_step * stride_cl
            dB_col += block_step * stride_dbl
            dC_col += block_step * stride_dcl
        tl.store(_state_tile_ptrs(carry_out_ptr, b * n_seg + seg, d, n, dim, d_state), c, mask=dn_mask)
        if ADJOINT_ONLY:
            tl.store(dtsum_ptr + (b * dim + d) * n_seg + seg, dt_total, mask=d_mask)
        else:
            tl.atomic_add(dA_ptr + d[:, None] * d_state + n[None, :], dA_acc, mask=dn_mask, sem="relaxed")
            if HAS_D:
                tl.atomic_add(dD_ptr + d, dD_acc, mask=d_mask, sem="relaxed")
            if HAS_BIAS:
                tl.atomic_add(dbias_ptr + d, dbias_acc, mask=d_mask, sem="relaxed")
