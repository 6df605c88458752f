"""Chaining per-segment results: the small sequential step between the two parallel passes.

Each segment ``s`` was scanned from a zero state and left ``local[s]`` (batch, S, d_state, dim) and
``dtsum[s]`` (batch, dim, S), so the map from the state entering it to the state leaving it is
``h -> exp(A * dtsum[s]) h + local[s]``. This kernel walks the S segments in order (S is at most a
few dozen) and writes the state entering every segment plus the state leaving the last one. The
backward pass uses it unchanged for the adjoint carries, walking the segments the other way.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .fast_math import exp2
from .scan_steps import _state_tile_ptrs


@triton.jit
def _chain_segments_kernel(
    local_ptr, dtsum_ptr, A_ptr, init_ptr, entering_ptr, final_ptr,
    dim, d_state, n_seg,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, REVERSE: tl.constexpr, HAS_INIT: tl.constexpr,
    FAST_MATH: tl.constexpr, STAGES: tl.constexpr,
):
    pid_d = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    d_mask = d < dim
    dn_mask = d_mask[:, None] & (n < d_state)[None, :]
    A2 = tl.load(A_ptr + d[:, None] * d_state + n[None, :], mask=dn_mask, other=0.0).to(tl.float32)
    A2 = A2 * 1.4426950408889634
    # init and final are (batch, dim, d_state), as the caller passes and receives them.
    state_off = (b * dim + d[:, None]) * d_state + n[None, :]
    if HAS_INIT:
        state = tl.load(init_ptr + state_off, mask=dn_mask, other=0.0)
    else:
        state = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    # The loads do not depend on the state: STAGES > 1 has Triton issue them STAGES - 1 segments
    # ahead, so the walk does not wait on memory at every segment (the chain itself is one
    # dependent multiply-add per segment); without prefetching a call takes several times as long
    # (docs/benchmarks-history.md).
    for i in tl.range(0, n_seg, num_stages=STAGES):
        if REVERSE:
            s = n_seg - 1 - i
        else:
            s = i
        tl.store(_state_tile_ptrs(entering_ptr, b * n_seg + s, d, n, dim, d_state), state, mask=dn_mask)
        dtsum = tl.load(dtsum_ptr + (b * dim + d) * n_seg + s, mask=d_mask, other=0.0)
        local = tl.load(_state_tile_ptrs(local_ptr, b * n_seg + s, d, n, dim, d_state), mask=dn_mask,
                        other=0.0)
        state = exp2(dtsum[:, None] * A2, FAST_MATH) * state + local
    tl.store(final_ptr + state_off, state, mask=dn_mask)
