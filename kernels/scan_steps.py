"""Pieces of one scan step shared by the forward and backward kernels.

Both kernels give a program a (BLOCK_D, BLOCK_N) tile of states, channels across lanes and each
lane holding a run of channels and some of their states, and walk the sequence one position at a
time. These helpers are that walk's common parts: which channels and states a program owns, the
masks of one position, dt as the recurrence sees it, and the state update itself.

Addresses: row pointers point at the first position of the current checkpoint block, computed in
64 bits (a (batch, length, dim) tensor passes 2^31 elements at length 2^22 x dim 512, and lengths
to 2^24 are supported); within a block a position is a small 32-bit offset, which keeps the
per-step address arithmetic 32-bit (64-bit positions in every step nearly doubled the compiled
forward's integer instructions).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .fast_math import exp2, sigmoid, softplus


@triton.jit
def _block_coords(pid_d, dim, d_state, dim_per_group, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """Channels, states, their masks and the B/C group of channel block ``pid_d``.

    A channel block never straddles two groups (plan_launch keeps BLOCK_D a divisor of the group).
    """
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    d_mask = d < dim
    n_mask = n < d_state
    dn_mask = d_mask[:, None] & n_mask[None, :]
    group = (pid_d * BLOCK_D) // dim_per_group
    return d, n, d_mask, n_mask, dn_mask, group


#: How A is structured (the DECAY constexpr of the kernels; selective_scan_triton.DECAYS names them).
#: FULL: A[d, n] as given. LADDER: A[d, n] = A[d, 0] (n + 1). SCALAR: A[d, n] = A[d, 0] for every n.
FULL = tl.constexpr(0)
LADDER = tl.constexpr(1)
SCALAR = tl.constexpr(2)


@triton.jit
def _direction_params(AT_ptr, D_ptr, bias_ptr, d, n, dim, d_mask, dn_mask, BLOCK_D: tl.constexpr,
                      HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, DECAY: tl.constexpr):
    """(A log2(e), D, delta_bias) of a program's channels, fp32; D and delta_bias are 0 when absent.

    A arrives transposed, (d_state, dim): loads contiguous along channels put the channels across
    threads and a channel's states within one or two of them (see scan_forward.py). It is
    pre-scaled by log2(e) so that exp(dt A) is a single exp2 (the backward's d dt uses A2 ln 2).
    For a structured A (``DECAY`` LADDER or SCALAR) only the rate A[:, 0] is loaded: a (BLOCK_D,)
    vector instead of the (BLOCK_D, BLOCK_N) tile, which :func:`_decay` and :func:`_rate_dot` use.
    """
    if DECAY == FULL:
        A2 = tl.load(AT_ptr + n[None, :] * dim + d[:, None], mask=dn_mask, other=0.0).to(tl.float32)
    else:
        A2 = tl.load(AT_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    A2 = A2 * 1.4426950408889634
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    else:
        Dv = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    else:
        bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    return A2, Dv, bias


@triton.jit
def _decay(dt, A2, like, DECAY: tl.constexpr, FAST: tl.constexpr):
    """exp(dt A) as a (channels x states) tile shaped like ``like``, from _direction_params' ``A2``.

    Mamba's A needs one exponential per (channel, state). A structured one needs one per channel,
    q = exp(dt a): a scalar decay is q in every state; a ladder's exp(dt a (n + 1)) = q^(n + 1) is a
    running product along the states, a multiply per element on the FMA pipe instead of a
    quarter-rate MUFU exponential. The product rounds once per state (relative error up to about
    (n + 1) 2^-24, against 2^-22 for ex2.approx). A masked position has dt = 0, so q = 1 and the
    tile is exactly 1: padding stays the identity.
    """
    if DECAY == FULL:
        return exp2(dt[:, None] * A2, FAST)
    else:
        q = tl.zeros_like(like) + exp2(dt * A2, FAST)[:, None]
        if DECAY == LADDER:
            q = tl.cumprod(q, axis=1)
        return q


@triton.jit
def _rate_dot(x, A2, n, DECAY: tl.constexpr):
    """sum over states of x * A log2(e), per channel, for a (channels x states) tile ``x``: with a
    structured A the rate factors out of the sum."""
    if DECAY == FULL:
        return tl.sum(x * A2, axis=1)
    elif DECAY == LADDER:
        return A2 * tl.sum(x * (n + 1).to(tl.float32)[None, :], axis=1)
    else:
        return A2 * tl.sum(x, axis=1)


@triton.jit
def _position_rows(first, b, g, u_ptr, dt_ptr, z_ptr, y_ptr, B_ptr, C_ptr, stride_ub, stride_ul, stride_dtb,
                   stride_dtl, stride_zb, stride_zl, stride_yb, stride_yl, stride_bb, stride_bg, stride_bl,
                   stride_cb, stride_cg, stride_cl):
    """Pointers to position ``first`` (64-bit) of batch row ``b`` in u, delta, z, y and in B, C of
    group ``g``: the row pointers a walk keeps and moves one checkpoint block at a time."""
    return (u_ptr + b * stride_ub + first * stride_ul, dt_ptr + b * stride_dtb + first * stride_dtl,
            z_ptr + b * stride_zb + first * stride_zl, y_ptr + b * stride_yb + first * stride_yl,
            B_ptr + b * stride_bb + g * stride_bg + first * stride_bl,
            C_ptr + b * stride_cb + g * stride_cg + first * stride_cl)


@triton.jit
def _shift_rows(u_row, dt_row, z_row, y_row, B_col, C_col, step, stride_ul, stride_dtl, stride_zl, stride_yl,
                stride_bl, stride_cl):
    """The row pointers of _position_rows moved by ``step`` positions."""
    return (u_row + step * stride_ul, dt_row + step * stride_dtl, z_row + step * stride_zl,
            y_row + step * stride_yl, B_col + step * stride_bl, C_col + step * stride_cl)


@triton.jit
def _output_of(h, u, Dv, C_col, n, r, stride_cn, stride_cl, nm, HAS_D: tl.constexpr):
    """y = C . h + D u of the position at offset ``r``, fp32, before any gate."""
    Ct = tl.load(C_col + n * stride_cn + r * stride_cl, mask=nm, other=0.0).to(tl.float32)
    y = tl.sum(h * Ct[None, :], axis=1)
    if HAS_D:
        y += Dv * u
    return y


@triton.jit
def _emit_output(y, y_row, z_row, d, r, stride_yd, stride_yl, stride_zd, stride_zl, m,
                 ADD_PARTIAL: tl.constexpr, GATE: tl.constexpr, FAST: tl.constexpr):
    """Store y at offset ``r``: first adding what y already holds there (``ADD_PARTIAL``: the other
    direction's ungated part of a bidirectional scan), then gating by silu(z) (``GATE``)."""
    if ADD_PARTIAL:
        y += tl.load(y_row + d * stride_yd + r * stride_yl, mask=m, other=0.0).to(tl.float32)
    if GATE:
        zt = tl.load(z_row + d * stride_zd + r * stride_zl, mask=m, other=0.0).to(tl.float32)
        y *= zt * sigmoid(zt, FAST)
    tl.store(y_row + d * stride_yd + r * stride_yl, y.to(y_row.dtype.element_ty), mask=m)


@triton.jit
def _state_tile_ptrs(base_ptr, row, d, n, dim, d_state):
    """Pointers to a program's (channels x states) tile in row ``row`` of a (rows, d_state, dim) tensor.

    Every per-program state tensor (per-segment states, checkpoints) is stored channel-fastest like
    A, so its tile loads and stores in the layout Triton picks for the state tile itself (4 channels
    x 8 states per lane at 64 channels, 4 x 16 at 128); a state tensor with states fastest made
    Triton pick that layout for h and convert between the two through shared memory at every step
    (docs/benchmarks-history.md). The row part is a 64-bit scalar (tensors may pass 2^31 elements) and only
    the tile part a 32-bit tensor, so the per-element address arithmetic stays 32-bit.
    """
    return base_ptr + row * (d_state * dim) + (n[None, :] * dim + d[:, None])


@triton.jit
def _step_masks(t, seg_end, d, n, dim, d_state, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
                EVEN_D: tl.constexpr, EVEN_N: tl.constexpr):
    """(channel mask, state mask) of position ``t``; both are all-false past the segment's end.

    With whole channel blocks (EVEN_D) and d_state a power of two (EVEN_N) the masks are constant
    along the vector, which lets Triton load each lane's run of channels and the B and C rows in
    wide vectors instead of one 16-bit load per element. One vector compare per mask (a scalar &
    vector mix also trips Triton's interpreter).
    """
    live = t < seg_end
    if EVEN_D:
        m = (t + tl.zeros((BLOCK_D,), dtype=tl.int32)) < seg_end
    else:
        m = d < tl.where(live, dim, 0)
    if EVEN_N:
        nm = (t + tl.zeros((BLOCK_N,), dtype=tl.int32)) < seg_end
    else:
        nm = n < tl.where(live, d_state, 0)
    return m, nm


@triton.jit
def _dt_of(raw, bias, m, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, FAST: tl.constexpr):
    """(dt, its pre-softplus value) in fp32 from delta as loaded; dt is 0 where masked.

    A masked position is the identity map (exp(0 A) = 1, 0 B u = 0) whatever the bias says.
    """
    raw = raw.to(tl.float32)
    if HAS_BIAS:
        raw += bias
    dt = raw
    if SOFTPLUS:
        dt = softplus(raw, FAST)
    return tl.where(m, dt, 0.0), raw


@triton.jit
def _load_walk_inputs(u_row, dt_row, B_col, d, n, r, stride_ud, stride_dtd, stride_bn, stride_ul, stride_dtl,
                      stride_bl, m, nm):
    """(u, delta, B) of the position at offset ``r``, as stored: what one state update reads.

    Loaded apart from the update so that a walk can issue the next position's loads before it
    computes the current one (their latency then overlaps the current step's arithmetic).
    """
    u = tl.load(u_row + d * stride_ud + r * stride_ul, mask=m, other=0.0)
    dt_raw = tl.load(dt_row + d * stride_dtd + r * stride_dtl, mask=m, other=0.0)
    Bt = tl.load(B_col + n * stride_bn + r * stride_bl, mask=nm, other=0.0)
    return u, dt_raw, Bt


@triton.jit
def _advance_keeping(h, A2, u, dt_raw, Bt, bias, m, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                     FAST: tl.constexpr, DECAY: tl.constexpr):
    """h = exp(dt A) h + dt u B from loaded inputs (``A2`` from _direction_params), with what the
    backward keeps of the step: returns (h, a_t h_{t-1}, u, dt, dt before softplus), fp32."""
    u = u.to(tl.float32)
    dt, raw = _dt_of(dt_raw, bias, m, HAS_BIAS, SOFTPLUS, FAST)
    decayed = _decay(dt, A2, h, DECAY, FAST) * h
    h = decayed + (dt * u)[:, None] * Bt.to(tl.float32)[None, :]
    return h, decayed, u, dt, raw


@triton.jit
def _advance(h, A2, u, dt_raw, Bt, bias, m, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
             FAST: tl.constexpr, DECAY: tl.constexpr):
    """_advance_keeping without the kept values: returns (h, u, dt). (Triton inlines both, so the
    unused values cost nothing and the multiply-add still fuses.)"""
    h, _, u, dt, _ = _advance_keeping(h, A2, u, dt_raw, Bt, bias, m, HAS_BIAS, SOFTPLUS, FAST, DECAY)
    return h, u, dt


@triton.jit
def _walk_step(h, A2, bias, t, r, seg_end, d, n, dim, d_state, u_row, dt_row, B_col, stride_ud, stride_dtd,
               stride_bn, stride_ul, stride_dtl, stride_bl, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
               EVEN_D: tl.constexpr, EVEN_N: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
               FAST: tl.constexpr, DECAY: tl.constexpr):
    """Advance the state over position ``t``: load its inputs, then _advance.

    ``t`` (absolute) decides the masks; the inputs are read at offset ``r`` from the row pointers,
    which point at the current checkpoint block. Returns (h, u, dt, channel
    mask, state mask) for the caller's use of the same position.
    """
    m, nm = _step_masks(t, seg_end, d, n, dim, d_state, BLOCK_D, BLOCK_N, EVEN_D, EVEN_N)
    u, dt_raw, Bt = _load_walk_inputs(u_row, dt_row, B_col, d, n, r, stride_ud, stride_dtd, stride_bn,
                                      stride_ul, stride_dtl, stride_bl, m, nm)
    h, u, dt = _advance(h, A2, u, dt_raw, Bt, bias, m, HAS_BIAS, SOFTPLUS, FAST, DECAY)
    return h, u, dt, m, nm


@triton.jit
def _in_block(k, CKPT_EVERY: tl.constexpr, REVERSE: tl.constexpr):
    """Offset from its block's first position of the ``k``-th position of a block in scan order."""
    if REVERSE:
        return CKPT_EVERY - 1 - k
    else:
        return k
