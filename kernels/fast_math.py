"""Transcendental functions for the scan and conv kernels: one PTX instruction each on NVIDIA GPUs.

Why not Triton's own. For sm_90 (Triton 3.6), ``tl.exp2`` of fp32 compiles to ``MUFU.EX2``
wrapped in a compare and two predicated multiplies that keep subnormal inputs and results exact;
the scan calls it once per (channel, state, position), so those three instructions would be about a
quarter of the forward's loop. ``tl.log`` compiles to a libdevice polynomial of about twenty
instructions, and ``tl.sigmoid``'s ``1 / (1 + exp(-x))`` to an IEEE division with a Newton step and
a slow-path branch. The ``.approx.ftz`` PTX instructions used here are one ``MUFU`` op each.

What changes numerically: subnormal inputs and results flush to zero (a decay factor below
2^-126 becomes 0, which the fp32 state could not tell apart anyway); ``ex2.approx`` has the same
relative error as Triton's path (about 2^-22), ``rcp.approx`` is within one ulp, and ``lg2.approx``
has an absolute error of about 2^-22, the size of the rounding of ``1 + exp(x)`` inside softplus.

``FAST=False`` gives Triton's portable functions: for the interpreter (``TRITON_INTERPRET=1``),
which cannot run inline PTX, and for GPUs that are not NVIDIA's. The launchers choose
(selective_scan_triton.fast_math).
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _ptx_unary(x, INSTRUCTION: tl.constexpr):
    return tl.inline_asm_elementwise(INSTRUCTION + " $0, $1;", "=f,f", [x], dtype=tl.float32, is_pure=True,
                                     pack=1)


@triton.jit
def exp2(x, FAST: tl.constexpr):
    """2^x of fp32 ``x``."""
    if FAST:
        return _ptx_unary(x, "ex2.approx.ftz.f32")
    else:
        return tl.exp2(x)


@triton.jit
def log2(x, FAST: tl.constexpr):
    """log2(x) of fp32 ``x > 0``."""
    if FAST:
        return _ptx_unary(x, "lg2.approx.ftz.f32")
    else:
        return tl.log2(x)


@triton.jit
def reciprocal(x, FAST: tl.constexpr):
    """1 / x of fp32 ``x``."""
    if FAST:
        return _ptx_unary(x, "rcp.approx.ftz.f32")
    else:
        return 1.0 / x


@triton.jit
def sigmoid(x, FAST: tl.constexpr):
    """1 / (1 + exp(-x)); exp2 overflows to inf for very negative x, whose reciprocal is 0."""
    return reciprocal(1.0 + exp2(-x * LOG2E, FAST), FAST)


@triton.jit
def softplus(x, FAST: tl.constexpr):
    """log(1 + exp(x)) without overflow; matches torch.nn.functional.softplus (threshold 20)."""
    return tl.where(x > 20.0, x, log2(1.0 + exp2(tl.minimum(x, 20.0) * LOG2E, FAST), FAST) * LN2)
