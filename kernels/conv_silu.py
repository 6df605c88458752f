"""Triton depthwise conv along the sequence, fused with SiLU and the padding mask, time-major.

The mixer's short conv (width K = 4) on time-major rows: ``x`` is (batch, length, channels) with
unit stride along channels, e.g. a slice of in_proj's output, and ``u`` comes out in the same
layout, which is the layout the scan kernels read (DESIGN §2). PyTorch's depthwise conv wants
channel-major rows, so the unfused path costs a transposing copy in, one out (for the scan), a
separate SiLU and mask pass, and the same again in the backward: about a quarter of a base-131k
training step's GPU time (the unfused step profile in docs/benchmarks-history.md).

Causal: ``pre[t] = sum_k w[k] x[t + k - (K-1)]``; anti-causal: ``pre[t] = sum_k w[k] x[t + k]``
(positions outside [0, length) read 0). With a mask (True at real positions) x is zeroed at padded
positions before the conv and u after it, as the mixer's padding contract says:
``u[t] = silu(pre[t] + bias) * mask[t]``.

Backward, with ``g[t] = du[t] mask[t] silu'(pre[t] + bias)``: ``dx[s] = mask[s] sum_k w[k] g[t_k(s)]``
(the positions whose window holds s), ``dw[k] = sum_t g[t] x_masked[t + k - (K-1)]`` (causal),
``dbias = sum_t g[t]``. Two passes over tiles of positions x channels: the first computes g once
per position, writes it (in x's precision, as PyTorch's unfused backward rounds it) and sums
dw/dbias over several tiles before one atomic per channel and tap (elementwise over the tiles and
over positions once at the end: a cross-thread sum per tap and tile makes that pass 20-25%
slower); the second reads g at the K
shifts dx needs (from cache) and writes dx. A single pass recomputing g on the K shifted copies of
its tile does 4x the arithmetic and needs 255 registers, which spill: slower than the two passes
(docs/benchmarks-history.md).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _tap_position(t, k, K: tl.constexpr, ANTI_CAUSAL: tl.constexpr):
    """Position read by tap ``k`` of the window of output position ``t``."""
    if ANTI_CAUSAL:
        return t + k
    else:
        return t + k - (K - 1)


@triton.jit
def _masked_rows(x_row, mask_row, s, c_mask, length, stride_xl, HAS_MASK: tl.constexpr):
    """x at positions ``s`` (BLOCK_L,) of this tile's channels, fp32, zero outside [0, length) and
    at padded positions."""
    valid = (s >= 0) & (s < length)
    x = tl.load(x_row + s[:, None] * stride_xl, mask=valid[:, None] & c_mask[None, :], other=0.0)
    x = x.to(tl.float32)
    if HAS_MASK:
        x = x * tl.load(mask_row + s, mask=valid, other=0).to(tl.float32)[:, None]
    return x


@triton.jit
def _pre_activation(x_row, mask_row, w_ptr, bias, t, c, c_mask, length, stride_xl, K: tl.constexpr,
                    ANTI_CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_L: tl.constexpr,
                    BLOCK_C: tl.constexpr):
    """conv + bias at output positions ``t``: a (BLOCK_L, BLOCK_C) fp32 tile."""
    acc = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32) + bias[None, :]
    for k in tl.static_range(K):
        w = tl.load(w_ptr + c * K + k, mask=c_mask, other=0.0).to(tl.float32)
        s = _tap_position(t, k, K, ANTI_CAUSAL)
        acc += w[None, :] * _masked_rows(x_row, mask_row, s, c_mask, length, stride_xl, HAS_MASK)
    return acc


@triton.jit
def _tile(x_ptr, bias_ptr, mask_ptr, tile_l, channels, stride_xb, stride_mb, HAS_BIAS: tl.constexpr,
          BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr):
    """Positions ``tile_l`` x BLOCK_L.. of this program's batch row and channels (and their mask),
    the x and mask rows, and the bias.

    Positions are 64-bit: offsets reach length x row stride (2^24 x 1024 > 2^31).
    """
    b = tl.program_id(2).to(tl.int64)
    t = tile_l.to(tl.int64) * BLOCK_L + tl.arange(0, BLOCK_L)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < channels
    if HAS_BIAS:
        bias = tl.load(bias_ptr + c, mask=c_mask, other=0.0).to(tl.float32)
    else:
        bias = tl.zeros((BLOCK_C,), dtype=tl.float32)
    return b, t, c, c_mask, x_ptr + b * stride_xb + c[None, :], mask_ptr + b * stride_mb, bias


@triton.jit
def _conv_silu_fwd_kernel(
    x_ptr, w_ptr, bias_ptr, mask_ptr, u_ptr, length, channels,
    stride_xb, stride_xl, stride_ub, stride_ul, stride_mb,
    K: tl.constexpr, ANTI_CAUSAL: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_MASK: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr,
):
    b, t, c, c_mask, x_row, mask_row, bias = _tile(x_ptr, bias_ptr, mask_ptr, tl.program_id(0), channels,
                                                   stride_xb, stride_mb, HAS_BIAS, BLOCK_L, BLOCK_C)
    pre = _pre_activation(x_row, mask_row, w_ptr, bias, t, c, c_mask, length, stride_xl, K, ANTI_CAUSAL,
                          HAS_MASK, BLOCK_L, BLOCK_C)
    u = pre * tl.sigmoid(pre)
    t_mask = t < length
    if HAS_MASK:
        u = u * tl.load(mask_row + t, mask=t_mask, other=0).to(tl.float32)[:, None]
    tl.store(u_ptr + b * stride_ub + t[:, None] * stride_ul + c[None, :], u.to(u_ptr.dtype.element_ty),
             mask=t_mask[:, None] & c_mask[None, :])


@triton.jit
def _tap_product(g, k: tl.constexpr, x_row, mask_row, t, c_mask, length, stride_xl, K: tl.constexpr,
                 ANTI_CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr):
    """g times the x that tap ``k`` of each position's window reads (zeros for k >= K)."""
    if k < K:
        s = _tap_position(t, k, K, ANTI_CAUSAL)
        return g * _masked_rows(x_row, mask_row, s, c_mask, length, stride_xl, HAS_MASK)
    else:
        return tl.zeros_like(g)


@triton.jit
def _conv_silu_grad_kernel(
    x_ptr, w_ptr, bias_ptr, mask_ptr, du_ptr, g_ptr, dw_ptr, dbias_ptr, length, channels, tiles_per_program,
    stride_xb, stride_xl, stride_dub, stride_dul, stride_gb, stride_gl, stride_mb,
    K: tl.constexpr, K_POW2: tl.constexpr, ANTI_CAUSAL: tl.constexpr, HAS_BIAS: tl.constexpr,
    HAS_MASK: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr, DEFER_SUMS: tl.constexpr,
):
    """Backward, first pass: g at ``tiles_per_program`` consecutive tiles of positions, written out,
    and their dw / dbias sums, added once per program: every program adds into the same
    channels x K weights, and one atomic per tile makes them queue.

    ``DEFER_SUMS`` (K <= 4): the products g x_k are summed elementwise over the program's tiles and
    over positions only once at the end, instead of a cross-thread reduction per tap and tile."""
    taps = tl.arange(0, K_POW2)
    dw_acc = tl.zeros((BLOCK_C, K_POW2), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_C,), dtype=tl.float32)
    part0 = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32)
    part1 = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32)
    part2 = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32)
    part3 = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32)
    g_sum = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32)
    for i in range(0, tiles_per_program):
        b, t, c, c_mask, x_row, mask_row, bias = _tile(
            x_ptr, bias_ptr, mask_ptr, tl.program_id(0) * tiles_per_program + i, channels, stride_xb,
            stride_mb, HAS_BIAS, BLOCK_L, BLOCK_C,
        )
        t_mask = t < length
        pre = _pre_activation(x_row, mask_row, w_ptr, bias, t, c, c_mask, length, stride_xl, K, ANTI_CAUSAL,
                              HAS_MASK, BLOCK_L, BLOCK_C)
        sig = tl.sigmoid(pre)
        tile_mask = t_mask[:, None] & c_mask[None, :]
        g = tl.load(du_ptr + b * stride_dub + t[:, None] * stride_dul + c[None, :], mask=tile_mask, other=0.0)
        g = g.to(tl.float32) * sig * (1.0 + pre * (1.0 - sig))
        if HAS_MASK:
            g = g * tl.load(mask_row + t, mask=t_mask, other=0).to(tl.float32)[:, None]
        tl.store(g_ptr + b * stride_gb + t[:, None] * stride_gl + c[None, :], g.to(g_ptr.dtype.element_ty),
                 mask=tile_mask)
        if DEFER_SUMS:
            g_sum += g
            part0 += _tap_product(g, 0, x_row, mask_row, t, c_mask, length, stride_xl, K, ANTI_CAUSAL,
                                  HAS_MASK)
            part1 += _tap_product(g, 1, x_row, mask_row, t, c_mask, length, stride_xl, K, ANTI_CAUSAL,
                                  HAS_MASK)
            part2 += _tap_product(g, 2, x_row, mask_row, t, c_mask, length, stride_xl, K, ANTI_CAUSAL,
                                  HAS_MASK)
            part3 += _tap_product(g, 3, x_row, mask_row, t, c_mask, length, stride_xl, K, ANTI_CAUSAL,
                                  HAS_MASK)
        else:
            dbias_acc += tl.sum(g, axis=0)
            for k in tl.static_range(K):
                gx = _tap_product(g, k, x_row, mask_row, t, c_mask, length, stride_xl, K, ANTI_CAUSAL,
                                  HAS_MASK)
                dw_acc += tl.where(taps[None, :] == k, tl.sum(gx, axis=0)[:, None], 0.0)
    if DEFER_SUMS:
        dbias_acc = tl.sum(g_sum, axis=0)
        dw_acc = tl.where(taps[None, :] == 0, tl.sum(part0, axis=0)[:, None], 0.0)
        dw_acc += tl.where(taps[None, :] == 1, tl.sum(part1, axis=0)[:, None], 0.0)
        dw_acc += tl.where(taps[None, :] == 2, tl.sum(part2, axis=0)[:, None], 0.0)
        dw_acc += tl.where(taps[None, :] == 3, tl.sum(part3, axis=0)[:, None], 0.0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < channels
    if HAS_BIAS:
        tl.atomic_add(dbias_ptr + c, dbias_acc, mask=c_mask, sem="relaxed")
    tl.atomic_add(dw_ptr + c[:, None] * K + taps[None, :], dw_acc, mask=c_mask[:, None] & (taps < K)[None, :],
                  sem="relaxed")


@triton.jit
def _conv_dx_kernel(
    g_ptr, w_ptr, mask_ptr, dx_ptr, length, channels, stride_gb, stride_gl, stride_dxb, stride_dxl, stride_mb,
    K: tl.constexpr, ANTI_CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Backward, second pass: dx at this tile's positions from the g that the first pass wrote."""
    b, t, c, c_mask, g_row, mask_row, _ = _tile(g_ptr, w_ptr, mask_ptr, tl.program_id(0), channels, stride_gb,
                                                stride_mb, False, BLOCK_L, BLOCK_C)
    dx = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32)
    for j in tl.static_range(K):
        # The output positions whose tap k reads position t: t + (K-1-k) causal, t - k anti-causal.
        if ANTI_CAUSAL:
            ts = t - j
            k = j
        else:
            ts = t + j
            k = K - 1 - j
        valid = (ts >= 0) & (ts < length)
        g = tl.load(g_row + ts[:, None] * stride_gl, mask=valid[:, None] & c_mask[None, :], other=0.0)
        w = tl.load(w_ptr + c * K + k, mask=c_mask, other=0.0).to(tl.float32)
        dx += w[None, :] * g.to(tl.float32)
    t_mask = t < length
    if HAS_MASK:
        dx = dx * tl.load(mask_row + t, mask=t_mask, other=0).to(tl.float32)[:, None]
    tl.store(dx_ptr + b * stride_dxb + t[:, None] * stride_dxl + c[None, :], dx.to(dx_ptr.dtype.element_ty),
             mask=t_mask[:, None] & c_mask[None, :])


BLOCK_L, BLOCK_C = 64, 64
#: The backward's first pass: whether it defers the dw/dbias sums over positions to the end of a
#: program (kernel docstring; only for K <= 4), and its warps: deferred sums with 8 warps are the
#: fastest plan of benchmarks/bench_conv.py for both directions at a base-131k mixer's size
#: (docs/benchmarks.md, "Fused conv + SiLU").
GRAD_PLAN = {"defer_sums": True, "num_warps": 8}


def _grid(batch: int, length: int, channels: int) -> tuple[int, int, int]:
    return (triton.cdiv(length, BLOCK_L), triton.cdiv(channels, BLOCK_C), batch)


def _tiles_per_program(grid: tuple[int, int, int], device: torch.device) -> int:
    """Position tiles per program of the backward's first pass: as many as leave about 8 programs
    per SM (fewer atomic adds into the shared weight gradient), and 2 on CPU (tests the loop)."""
    if device.type != "cuda":
        return 2
    wanted = 8 * torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, grid[0] * grid[1] * grid[2] // wanted)


class _ConvSiluFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, mask, anti_causal):
        batch, length, channels = x.shape
        w = weight.reshape(channels, -1).contiguous()
        m = mask.to(torch.uint8).contiguous() if mask is not None else None
        u = torch.empty(batch, length, channels, device=x.device, dtype=x.dtype)
        _conv_silu_fwd_kernel[_grid(batch, length, channels)](
            x, w, bias if bias is not None else w, m if m is not None else w, u, length, channels,
            x.stride(0), x.stride(1), u.stride(0), u.stride(1), m.stride(0) if m is not None else 0,
            K=w.shape[1], ANTI_CAUSAL=anti_causal, HAS_BIAS=bias is not None, HAS_MASK=m is not None,
            BLOCK_L=BLOCK_L, BLOCK_C=BLOCK_C,
        )
        ctx.save_for_backward(x, w, bias, m)
        ctx.meta = (anti_causal, weight.shape, weight.dtype)
        return u

    @staticmethod
    def backward(ctx, du):
        x, w, bias, m = ctx.saved_tensors
        anti_causal, w_shape, w_dtype = ctx.meta
        batch, length, channels = x.shape
        if du.stride(2) != 1:
            du = du.contiguous()
        dx = torch.empty(batch, length, channels, device=x.device, dtype=x.dtype)
        g = torch.empty_like(dx)  # the gradient reaching the conv's output, in x's precision
        dw = torch.zeros(w.shape, device=x.device, dtype=torch.float32)
        dbias = torch.zeros(channels, device=x.device, dtype=torch.float32) if bias is not None else None
        grid = _grid(batch, length, channels)
        flags = dict(K=w.shape[1], ANTI_CAUSAL=anti_causal, HAS_MASK=m is not None, BLOCK_L=BLOCK_L,
                     BLOCK_C=BLOCK_C)
        m_arg, m_stride = (m, m.stride(0)) if m is not None else (w, 0)
        tiles = _tiles_per_program(grid, x.device)
        _conv_silu_grad_kernel[(triton.cdiv(grid[0], tiles), grid[1], grid[2])](
            x, w, bias if bias is not None else w, m_arg, du, g, dw, dbias if dbias is not None else dw,
            length, channels, tiles, x.stride(0), x.stride(1), du.stride(0), du.stride(1), g.stride(0),
            g.stride(1), m_stride, K_POW2=triton.next_power_of_2(w.shape[1]), HAS_BIAS=bias is not None,
            DEFER_SUMS=bool(GRAD_PLAN["defer_sums"]) and w.shape[1] <= 4, num_warps=GRAD_PLAN["num_warps"],
            **flags,
        )
        _conv_dx_kernel[grid](
            g, w, m_arg, dx, length, channels, g.stride(0), g.stride(1), dx.stride(0), dx.stride(1), m_stride,
            **flags,
        )
        return (dx, dw.reshape(w_shape).to(w_dtype),
                None if dbias is None else dbias.to(bias.dtype), None, None)


def conv_silu_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, anti_causal: bool,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """silu(depthwise conv(x) + bias), masked; x (batch, length, channels) with unit channel stride.

    ``weight`` (channels, 1, K) as nn.Conv1d stores it; ``mask`` (batch, length) bool or None.
    Returns u (batch, length, channels), contiguous, in x's dtype.
    """
    if x.dim() != 3 or x.stride(2) != 1:
        raise ValueError(f"x must be (batch, length, channels) with unit channel stride; got shape "
                         f"{tuple(x.shape)}, strides {x.stride()}")
    return _ConvSiluFn.apply(x, weight, bias, mask, bool(anti_causal))
