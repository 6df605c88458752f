"""Triton selective scan against the sequential oracle: outputs and every input gradient.

On a machine without CUDA the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set by
tests/conftest.py) at small sizes; the full grid and the long-sequence checks are marked ``gpu``.
The tolerance rule is DESIGN.md §3's, implemented once in tests/ops/scan_cases.py.
"""

from __future__ import annotations

import functools

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[dev]' adds it); "
                    "the Triton kernel tests need it, on CPU too (in its interpreter)")
from genomamba.kernels import selective_scan_triton as sst  # noqa: E402
from genomamba.kernels.selective_scan_triton import (  # noqa: E402
    bidirectional_selective_scan_triton,
    plan_launch,
    selective_scan_triton,
)

from tests.ops.scan_cases import gpu_floor_scale, make_case, make_inputs, run_case, scan_args  # noqa: E402

BF16, FP16 = torch.bfloat16, torch.float16
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Small enough for the interpreter (a few seconds each); segments=3 forces the two-pass path. The
# fast suite runs the first case; the others take 10-25 s each in the interpreter and run with the
# slow tests (CI runs both).
SLOW = pytest.mark.slow
INTERPRETER_GRID = [
    (dict(length=1), None),
    pytest.param(dict(length=7, groups=2, has_initial_state=True, return_final_state=True), None, marks=SLOW),
    pytest.param(dict(length=70, d_state=5, reverse=True, has_initial_state=True, return_final_state=True), 3,
                 marks=SLOW),
    pytest.param(dict(length=70, dtype=BF16, has_D=False, has_z=False, has_delta_bias=False,
                      delta_softplus=False), 2, marks=SLOW),
]


def _interpreter_floor_scale(dtype: torch.dtype) -> float:
    """Triton's interpreter casts fp32 to bf16 by truncation (round toward zero; checked with Triton
    3.9, also with ``fp_downcast_rounding="rtne"``), so a stored bf16 value can be one unit in the last
    place off where the GPU's round-to-nearest is half a unit. Allow that one extra unit on CPU only."""
    return 2.0 if DEVICE == "cpu" and dtype == BF16 else 1.0


@pytest.fixture(params=[16, 64])
def backward_tile(request, monkeypatch):
    """Run a test with backward sub-blocks narrower than the checkpoint spacing (64), which re-walk
    the block from its checkpoint, and equal to it."""
    monkeypatch.setitem(sst.TUNING, "bwd_block_t", request.param)
    return request.param


@pytest.mark.parametrize("overrides, segments", INTERPRETER_GRID)
def test_triton_matches_reference_small(overrides, segments, backward_tile):
    fn = functools.partial(selective_scan_triton, segments=segments)
    case = make_case(**overrides)
    report = run_case(fn, case, device=DEVICE, floor_scale=_interpreter_floor_scale(case.dtype))
    assert {"y", "du", "ddelta", "dA", "dB", "dC"} <= set(report)


@pytest.mark.parametrize("distinct_rev", [False, pytest.param(True, marks=SLOW)])
@pytest.mark.parametrize("segments", [None, pytest.param(2, marks=SLOW)])
def test_bidirectional_matches_reference_small(distinct_rev, segments, monkeypatch):
    # Checkpoints 8 apart: 40 positions are 5 blocks, or segments of 3 and 2 blocks.
    monkeypatch.setitem(sst.TUNING, "block_t", 8)
    case = make_case(length=40, dim=4, d_state=3, distinct_rev=distinct_rev)
    fn = functools.partial(bidirectional_selective_scan_triton, segments=segments)
    run_case(fn, case, bidirectional=True, device=DEVICE)


def test_plan_keeps_channel_blocks_inside_one_group():
    plan = plan_launch(1, 48, 1000, 16, 6, torch.device("cpu"))
    assert 6 % plan.block_d == 0
    assert plan.segments * plan.seg_len >= 1000 and plan.seg_len % plan.block_t == 0


def test_backward_grid_is_persistent():
    """The backward runs a fixed number of programs that share out the (channel block, segment,
    batch row) items; on CPU fewer programs than items, so the tests above walk that loop."""
    plan = plan_launch(4, 64, 1000, 16, 64, torch.device("cpu"), backward=True)
    assert 0 < plan.programs < plan.items(4, 64)


def test_backward_tile_must_divide_the_checkpoint_spacing(monkeypatch):
    monkeypatch.setitem(sst.TUNING, "bwd_block_t", 24)
    with pytest.raises(ValueError, match="must divide the checkpoint spacing"):
        plan_launch(1, 64, 1000, 16, 64, torch.device("cpu"), backward=True)
    monkeypatch.setitem(sst.TUNING, "bwd_block_t", 16)
    plan = plan_launch(1, 64, 1000, 16, 64, torch.device("cpu"), backward=True)
    assert (plan.block_t, plan.tile_t) == (64, 16)


def test_forward_unroll_never_exceeds_the_checkpoint_spacing(monkeypatch):
    monkeypatch.setitem(sst.TUNING, "block_t", 4)
    plan = plan_launch(1, 8, 1000, 16, 8, torch.device("cpu"))
    assert plan.unroll <= plan.block_t and plan.block_t % plan.unroll == 0


@SLOW
def test_state_pass_may_use_its_own_tile(monkeypatch):
    """The segmented forward's state-only pass can run other tiles than the output pass (tune_scan.py
    sweeps them): per-segment states are stored per channel, so the scan computes the same function."""
    plan = plan_launch(1, 8, 1000, 16, 8, torch.device("cpu"))
    assert sst._state_pass_plan(plan, 8) == plan
    monkeypatch.setitem(sst.TUNING, "state_block_d", 3)
    with pytest.raises(ValueError, match="state_block_d=3"):
        sst._state_pass_plan(plan, 8)
    monkeypatch.setitem(sst.TUNING, "state_block_d", 2)
    monkeypatch.setitem(sst.TUNING, "state_unroll", 2)
    state_plan = sst._state_pass_plan(plan, 8)
    assert (state_plan.block_d, state_plan.unroll) == (2, 2)
    assert (state_plan.segments, state_plan.seg_len) == (plan.segments, plan.seg_len)
    case = make_case(length=70, dim=8, has_initial_state=True, return_final_state=True)
    fn = functools.partial(selective_scan_triton, segments=3)
    run_case(fn, case, device=DEVICE, floor_scale=_interpreter_floor_scale(case.dtype))


def test_backward_keeps_16_bit_state_tiles_only_for_bf16_inputs(monkeypatch):
    """The backward's kept tiles are fp16 for bf16 inputs (half the scratch traffic) and fp32
    otherwise: fp16 inputs' tighter tolerance, and fp32's, leave no room for 16-bit rounding."""
    assert sst._kept_dtype(BF16) == torch.float16
    assert sst._kept_dtype(FP16) == torch.float32
    assert sst._kept_dtype(torch.float32) == torch.float32
    monkeypatch.setitem(sst.TUNING, "bwd_kept_fp32", 1)
    assert sst._kept_dtype(BF16) == torch.float32


@SLOW
@pytest.mark.parametrize("kept_fp32", [0, 1])
def test_bf16_backward_meets_the_tolerance_with_either_kept_tile(kept_fp32, monkeypatch):
    """bf16 inputs with the default fp16 tiles and with fp32 ones (TUNING bwd_kept_fp32), through
    segments, the gate and reverse: both within DESIGN.md §3's bound of the oracle."""
    monkeypatch.setitem(sst.TUNING, "bwd_kept_fp32", kept_fp32)
    case = make_case(length=70, dtype=BF16, reverse=True, has_initial_state=True, return_final_state=True)
    fn = functools.partial(selective_scan_triton, segments=2)
    run_case(fn, case, device=DEVICE, floor_scale=_interpreter_floor_scale(case.dtype))


def test_read_only_inputs_keep_their_row_stride():
    """z and the output gradient are read with their own strides: a time-major slice of a wider
    projection (channel stride 1, row stride larger than dim) passes without a copy, while u and
    delta, whose strides the gradient buffers copy, are made dense."""
    xz = torch.randn(2, 10, 16)  # (batch, length, 2 * dim) as an in_proj writes it
    z = xz[..., 8:].transpose(1, 2)  # (batch, dim=8, length), time-major, row stride 16
    assert sst._dense(z, read_only=True).data_ptr() == z.data_ptr()
    dense = sst._dense(z)
    assert dense.transpose(1, 2).is_contiguous() and torch.equal(dense, z)


def test_rejects_oversized_state():
    with pytest.raises(ValueError, match="d_state"):
        plan_launch(1, 4, 10, 1024, 4, torch.device("cpu"))


# A structured decay: a ladder (A[:, n] = A[:, 0] (n + 1)) or a scalar (A[:, n] = A[:, 0]), one
# exponential per channel and position (a ladder's powers by a running product along the states,
# scan_steps._decay), forward and backward, with and without segments; a d_state of 5 also leaves
# masked states in the tile.
STRUCTURED_GRID = [
    (dict(length=9, d_state=4, decay="ladder", has_initial_state=True, return_final_state=True), None),
    (dict(length=9, d_state=4, decay="scalar", has_initial_state=True, return_final_state=True), None),
    pytest.param(dict(length=70, d_state=5, decay="ladder", reverse=True, has_initial_state=True,
                      return_final_state=True), 3, marks=SLOW),
    pytest.param(dict(length=70, d_state=5, decay="scalar", reverse=True, groups=2, dim=4), 3, marks=SLOW),
]


@pytest.mark.parametrize("overrides, segments", STRUCTURED_GRID)
def test_structured_decay_matches_reference_small(overrides, segments):
    fn = functools.partial(selective_scan_triton, segments=segments, decay=overrides["decay"])
    run_case(fn, make_case(**overrides), device=DEVICE)


@pytest.mark.parametrize("decay", ["ladder", "scalar"])
def test_structured_decay_reads_only_the_rate(decay):
    """The kernels take the promise at its word: with an unstructured A they compute the structure
    of A[:, 0], which is how the test above knows that the one-exponential path ran."""
    case = make_case(length=5, d_state=4)
    x = {k: (v.detach() if v is not None else None) for k, v in make_inputs(case, DEVICE).items()}
    args = scan_args(x, case.delta_softplus)
    rate = x["A"][:, :1]
    structured = rate * torch.arange(1, case.d_state + 1, device=DEVICE) if decay == "ladder" else \
        rate.expand(-1, case.d_state).contiguous()
    as_given = selective_scan_triton(*args, decay=decay)
    of_the_rate = selective_scan_triton(*scan_args(x, case.delta_softplus, A=structured))
    torch.testing.assert_close(as_given, of_the_rate, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(as_given, selective_scan_triton(*args), rtol=1e-3, atol=1e-4)


def test_unknown_decay_is_refused():
    case = make_case(length=3)
    x = make_inputs(case, DEVICE)
    with pytest.raises(ValueError, match="decay"):
        selective_scan_triton(*scan_args(x, case.delta_softplus), decay="diagonal")


@pytest.mark.slow
@pytest.mark.parametrize("decay", ["ladder", "scalar"])
def test_bidirectional_structured_decay_matches_reference_small(decay, monkeypatch):
    monkeypatch.setitem(sst.TUNING, "block_t", 8)
    case = make_case(length=40, dim=4, d_state=3, distinct_rev=True, decay=decay)
    fn = functools.partial(bidirectional_selective_scan_triton, segments=2, decay=decay)
    run_case(fn, case, bidirectional=True, device=DEVICE)


# ---------------------------------------------------------------- GPU: the full grid
GPU_GRID = [
    (dict(length=length, dtype=dtype, d_state=d_state, groups=groups, reverse=reverse, dim=dim,
          has_initial_state=reverse, return_final_state=True), segments)
    for length in (1, 7, 63)
    for dtype in (torch.float32, BF16, FP16)
    for (d_state, groups, dim) in ((1, 0, 4), (16, 2, 8), (64, 0, 4))
    for reverse in (False, True)
    for segments in ((None, 2) if length == 63 else (None,))
] + [
    (dict(length=length, dtype=dtype, d_state=16, groups=groups, reverse=reverse, dim=4,
          has_initial_state=True, return_final_state=True), segments)
    for length in (1000, 4097)
    for dtype in (torch.float32, BF16)
    for groups in (0, 2)
    for reverse in (False, True)
    for segments in ((None,) if length == 1000 else (7,))
]


@pytest.mark.gpu
@pytest.mark.parametrize("overrides, segments", GPU_GRID, ids=str)
def test_triton_matches_reference_gpu(overrides, segments):
    fn = functools.partial(selective_scan_triton, segments=segments)
    case = make_case(**overrides)
    run_case(fn, case, device="cuda", floor_scale=gpu_floor_scale(case.dtype))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, BF16])
@pytest.mark.parametrize("length, segments", [(63, None), (63, 2), (4097, 7)])
@pytest.mark.parametrize("d_state", [16, 64])
@pytest.mark.parametrize("decay", ["ladder", "scalar"])
def test_structured_decay_matches_reference_gpu(dtype, length, segments, d_state, decay):
    case = make_case(length=length, dim=8, d_state=d_state, dtype=dtype, decay=decay, reverse=length == 63,
                     has_initial_state=True, return_final_state=True)
    fn = functools.partial(selective_scan_triton, segments=segments, decay=decay)
    run_case(fn, case, device="cuda", floor_scale=gpu_floor_scale(dtype))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, BF16])
@pytest.mark.parametrize("distinct_rev", [False, True])
@pytest.mark.parametrize("length", [63, 1000, 4097])
def test_bidirectional_matches_reference_gpu(dtype, distinct_rev, length):
    case = make_case(length=length, dim=8, d_state=16, dtype=dtype, distinct_rev=distinct_rev)
    run_case(bidirectional_selective_scan_triton, case, bidirectional=True, device="cuda",
             floor_scale=gpu_floor_scale(dtype))


@pytest.mark.gpu
@pytest.mark.parametrize("reverse", [False, True])
def test_long_sequence_equals_piecewise_scan_with_state_passing(reverse):
    """At 2^20 positions the one-call scan equals four calls chained through their states."""
    torch.manual_seed(1234 + reverse)
    b, d, n, L = 1, 32, 16, 2**20
    u = torch.randn(b, d, L, device="cuda")
    delta = 0.5 * torch.randn(b, d, L, device="cuda") - 1
    A = -torch.exp(torch.randn(d, n, device="cuda"))
    B, C = torch.randn(b, n, L, device="cuda"), torch.randn(b, n, L, device="cuda")
    D, z = torch.randn(d, device="cuda"), torch.randn(b, d, L, device="cuda")
    kw = dict(delta_softplus=True, reverse=reverse, return_final_state=True)
    y_full, h_full = selective_scan_triton(u, delta, A, B, C, D, z, **kw)
    pieces, state = [None] * 4, None
    bounds = [0, 1000, 2**19 + 17, 2**20 - 5, L]
    order = range(3, -1, -1) if reverse else range(4)
    for i in order:
        s, e = bounds[i], bounds[i + 1]
        pieces[i], state = selective_scan_triton(
            u[..., s:e], delta[..., s:e], A, B[..., s:e], C[..., s:e], D, z[..., s:e],
            initial_state=state, **kw,
        )
    y_pieces = torch.cat(pieces, dim=-1)
    assert torch.isfinite(y_full).all()
    assert (y_full - y_pieces).abs().max() <= 1e-4 * y_full.abs().max()
    assert (h_full - state).abs().max() <= 1e-4 * h_full.abs().max()


@pytest.mark.gpu
def test_addresses_past_two_to_the_31_elements():
    """Batch rows and positions are addressed in 64 bits: with u of 2^31 + elements (batch 1,
    length 2^23 + 37, dim 256, time-major bf16) the last positions' outputs and gradients equal a
    scan of those positions alone, started from the state the first part leaves."""
    torch.manual_seed(31)
    b, d, n, L, tail = 1, 256, 16, 2**23 + 37, 300
    assert b * d * L > 2**31

    def time_major(*shape, scale=1.0, shift=0.0):
        return (scale * torch.randn(b, L, *shape, device="cuda") + shift).to(BF16).transpose(1, 2)

    u, delta, z = time_major(d), time_major(d, scale=0.5, shift=-1.0), time_major(d)
    B, C = time_major(n), time_major(n)
    A = -torch.exp(torch.randn(d, n, device="cuda"))
    D, bias = torch.randn(d, device="cuda"), 0.1 * torch.randn(d, device="cuda")
    weights = torch.randn(b, d, tail, device="cuda")

    def tail_loss_and_grads(sl, initial_state=None):
        leaves = [x[..., sl].detach().requires_grad_() for x in (u, delta, B, C, z)]
        y = selective_scan_triton(*leaves[:2], A, *leaves[2:4], D, leaves[4], bias, True,
                                  initial_state=initial_state)
        y_tail = y[..., -tail:].float()
        grads = torch.autograd.grad((y_tail * weights).sum(), leaves)
        return y_tail, [g[..., -tail:].float() for g in grads]

    y_full, grads_full = tail_loss_and_grads(slice(None))
    with torch.no_grad():
        head = [x[..., :-tail] for x in (u, delta, B, C, z)]
        _, state = selective_scan_triton(*head[:2], A, *head[2:4], D, head[4], bias, True,
                                         return_final_state=True)
    y_part, grads_part = tail_loss_and_grads(slice(L - tail, None), initial_state=state)
    torch.testing.assert_close(y_full, y_part, rtol=2e-2, atol=2e-2)
    for name, g_full, g_part in zip(("u", "delta", "B", "C", "z"), grads_full, grads_part, strict=True):
        torch.testing.assert_close(g_full, g_part, rtol=2e-2, atol=2e-2 * g_part.abs().max().item(),
                                   msg=lambda m, name=name: f"d{name}: {m}")


def test_tuning_from_environment(monkeypatch):
    monkeypatch.setenv("GENOMAMBA_SCAN_TUNING", '{"bwd_block_d": 8, "bwd_block_t": 8}')
    assert sst._tuning_from_environment() == {"bwd_block_d": 8, "bwd_block_t": 8}
    monkeypatch.setenv("GENOMAMBA_SCAN_TUNING", "bwd_block_d=8")
    with pytest.raises(ValueError, match="not valid JSON"):
        sst._tuning_from_environment()
    monkeypatch.setenv("GENOMAMBA_SCAN_TUNING", "[8]")
    with pytest.raises(ValueError, match="JSON object"):
        sst._tuning_from_environment()
