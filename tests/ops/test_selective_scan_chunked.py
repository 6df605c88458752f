"""Chunked PyTorch scan against the sequential oracle: outputs and all input gradients (DESIGN.md §3)."""

from __future__ import annotations

import functools
import importlib

import pytest
import torch

from genomamba.ops.selective_scan_chunked import bidirectional_selective_scan_chunked, selective_scan_chunked
from genomamba.ops.selective_scan_ref import selective_scan_ref
from tests.ops.scan_cases import gpu_floor_scale, make_case, make_inputs, run_case

BF16 = torch.bfloat16

# (case overrides, chunk_size, block_chunks); None = the defaults. Small dims keep the oracle fast.
GRID = [
    (dict(length=1), None, None),
    (dict(length=1, reverse=True, has_initial_state=True, return_final_state=True), 4, 2),
    (dict(length=7), None, None),
    (dict(length=7, d_state=1, dim=2, groups=1), 3, 2),
    (dict(length=7, dtype=BF16, reverse=True, return_final_state=True), 2, 2),
    (dict(length=63, d_state=16, groups=2, has_initial_state=True, return_final_state=True), 8, 3),
    (dict(length=63, d_state=64, dim=2, reverse=True, has_initial_state=True, return_final_state=True), 5, 4),
    (dict(length=63, has_D=False, has_z=False, has_delta_bias=False, delta_softplus=False), 16, 1),
    (dict(length=63, dtype=torch.float16, dim=6, groups=3), 7, 3),
    (dict(length=1000, d_state=16, return_final_state=True, has_initial_state=True), None, None),
    (dict(length=1000, dtype=BF16, groups=2, reverse=True, has_initial_state=True), 24, 5),
    (dict(length=1000, delta_softplus=False, reverse=True, return_final_state=True), 1, 8),
    (dict(length=4097, dim=2, d_state=4, return_final_state=True, has_initial_state=True), 16, 16),
    (dict(length=4097, dim=2, d_state=4, groups=2, reverse=True, return_final_state=True), 13, 7),
]

# the module itself (genomamba.ops re-exports functions whose names equal their modules')
chunked_mod = importlib.import_module("genomamba.ops.selective_scan_chunked")
blocks_mod = importlib.import_module("genomamba.ops._chunked_blocks")


@pytest.mark.parametrize("overrides, chunk_size, block_chunks", GRID)
def test_chunked_matches_reference(overrides, chunk_size, block_chunks):
    fn = functools.partial(selective_scan_chunked, chunk_size=chunk_size, block_chunks=block_chunks)
    report = run_case(fn, make_case(**overrides))
    assert {"y", "du", "ddelta", "dA", "dB", "dC"} <= set(report)


@pytest.mark.parametrize("overrides", [dict(length=63, groups=2, distinct_rev=True),
                                       dict(length=200, dtype=BF16, d_state=16),
                                       dict(length=5, has_z=False, has_D=False)])
def test_bidirectional_matches_reference(overrides):
    fn = functools.partial(bidirectional_selective_scan_chunked, chunk_size=6, block_chunks=3)
    run_case(fn, make_case(**overrides), bidirectional=True)


def test_fp64_inputs_are_scanned_in_fp64():
    case = make_case(length=300, d_state=8, dtype=torch.float64, has_initial_state=True)
    i = {k: (v.detach() if v is not None else None) for k, v in make_inputs(case).items()}
    args = (i["u"], i["delta"], i["A"], i["B"], i["C"], i["D"], i["z"], i["delta_bias"], True)
    y, h = selective_scan_chunked(*args, initial_state=i["initial_state"], return_final_state=True,
                                  chunk_size=7, block_chunks=3)
    y0, h0 = selective_scan_ref(*args, initial_state=i["initial_state"], return_final_state=True,
                                compute_dtype=torch.float64)
    assert y.dtype == h.dtype == torch.float64
    torch.testing.assert_close(y, y0, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(h, h0, rtol=1e-11, atol=1e-11)


def test_extreme_decays_stay_finite_and_exact():
    # Δ·A down to about -1e4 per step (exp underflows to 0) and slightly positive Δ·A (growth): a
    # log-space cumulative-sum formulation would overflow here; products of per-step decays cannot.
    case = make_case(length=257, d_state=8, has_initial_state=True)
    i = {k: (v.detach() if v is not None else None) for k, v in make_inputs(case).items()}
    A = i["A"] * torch.logspace(-2, 3, 8)  # spread |A| from ~1e-3 to ~1e4
    A[0, 0] = 0.5  # one growing lane (positive A) with small Δ
    delta = torch.rand(i["delta"].shape, generator=torch.Generator().manual_seed(case.seed)) * 0.3 + 0.01
    args = (i["u"], delta, A, i["B"], i["C"], i["D"], i["z"])
    y, h = selective_scan_chunked(*args, initial_state=i["initial_state"], return_final_state=True,
                                  chunk_size=32, block_chunks=4)
    y0, h0 = selective_scan_ref(*args, initial_state=i["initial_state"], return_final_state=True,
                                compute_dtype=torch.float64)
    assert torch.isfinite(y).all() and torch.isfinite(h).all()
    scale = y0.abs().max()
    assert (y.double() - y0).abs().max() <= 1e-5 * scale
    assert (h.double() - h0).abs().max() <= 1e-5 * h0.abs().max()


@pytest.mark.parametrize("overrides, chunk_size, block_chunks", [
    (dict(length=203, has_initial_state=True, return_final_state=True), 4, 3),
    (dict(length=203, groups=2, reverse=True, has_initial_state=True, return_final_state=True), 4, 3),
    (dict(length=97, dtype=BF16, reverse=True, has_z=False), 5, 2),
])
def test_several_spans(monkeypatch, overrides, chunk_size, block_chunks):
    # The channel-major work goes span by span (several blocks each); shrink spans to 1-3 blocks so that a
    # short sequence crosses span borders, ends with a partial span and a partial chunk, in both directions.
    monkeypatch.setattr(blocks_mod, "_SPAN_ELEMENTS", 2 * 4 * 30)
    plan = blocks_mod._Plan(2, 1, 4, 4, overrides["length"], chunk_size, block_chunks)
    assert plan.nspan >= 3 and 1 < plan.m < plan.nblk
    fn = functools.partial(selective_scan_chunked, chunk_size=chunk_size, block_chunks=block_chunks)
    run_case(fn, make_case(**overrides))


def test_work_memory_is_bounded_by_the_block(monkeypatch):
    # Work arrays hold one block (T*K positions), never the whole sequence, and the autograd graph saves
    # only O(inputs): no (batch, dim, length, d_state) tensor anywhere.
    shapes = []
    real_work = chunked_mod._Work

    def spy(plan, dtype, device, n_big):
        w = real_work(plan, dtype, device, n_big)
        shapes.extend(tuple(t.shape) for t in w.big)
        return w

    monkeypatch.setattr(chunked_mod, "_Work", spy)
    b, d, n, L = 1, 16, 8, 5000
    case = make_case(batch=b, dim=d, d_state=n, length=L)
    i = make_inputs(case)
    y = selective_scan_chunked(i["u"], i["delta"], i["A"], i["B"], i["C"], i["D"], i["z"], i["delta_bias"],
                               True, chunk_size=16, block_chunks=4)
    inputs_numel = sum(t.numel() for t in i.values() if t is not None)
    node = y.grad_fn
    saved = []
    stack, seen = [node], set()
    while stack:
        nd = stack.pop()
        if nd is None or id(nd) in seen:
            continue
        seen.add(id(nd))
        for t in getattr(nd, "saved_tensors", ()) or ():
            if isinstance(t, torch.Tensor):
                saved.append(t.numel())
        stack.extend(f for f, _ in nd.next_functions)
    assert saved and max(saved) < b * d * L * n / 4
    assert sum(saved) < 4 * inputs_numel
    y.sum().backward()
    assert i["A"].grad is not None
    assert shapes and all(s[0] == 64 for s in shapes)  # 16 * 4 positions per block
    assert max(torch.Size(s).numel() for s in shapes) == 64 * b * d * n


def test_tolerance_rule_rejects_a_slightly_wrong_backend():
    def off_by_3e_4(*args, **kwargs):
        return selective_scan_chunked(*args, **kwargs) * (1 + 3e-4)

    with pytest.raises(AssertionError, match="y: err"):
        run_case(off_by_3e_4, make_case(length=40), check_grads=False)


def test_bad_chunk_size_is_a_value_error():
    i = make_inputs(make_case())
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan_chunked(i["u"], i["delta"], i["A"], i["B"], i["C"], chunk_size=0)


def test_non_contiguous_inputs_and_gradients():
    # Model code hands over transposed views ((b, L, d) activations) and sum() yields expanded gradients.
    case = make_case(batch=2, dim=6, d_state=4, length=37, groups=2, has_initial_state=True)
    i = {k: (v.detach() if v is not None else None) for k, v in make_inputs(case).items()}
    nc = {k: (v.transpose(-1, -2).contiguous().transpose(-1, -2) if v is not None and v.dim() >= 2 else v)
          for k, v in i.items()}
    assert not nc["u"].is_contiguous() and not nc["initial_state"].is_contiguous()
    for t in nc.values():
        if t is not None:
            t.requires_grad_(True)
    args = lambda t: (t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], t["z"], t["delta_bias"], True)  # noqa: E731
    y, h = selective_scan_chunked(*args(nc), initial_state=nc["initial_state"], return_final_state=True,
                                  chunk_size=4, block_chunks=3)
    (y.sum() + h.sum()).backward()
    ref = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in i.items()}
    y0, h0 = selective_scan_ref(*args(ref), initial_state=ref["initial_state"], return_final_state=True)
    (y0.sum() + h0.sum()).backward()
    torch.testing.assert_close(y, y0, rtol=1e-4, atol=1e-5)
    for k in ("u", "delta", "A", "B", "C", "initial_state"):
        torch.testing.assert_close(nc[k].grad, ref[k].grad, rtol=1e-4, atol=1e-4, msg=k)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "overrides",
    [
        dict(length=1000, d_state=16, groups=2, has_initial_state=True, return_final_state=True),
        dict(length=257, dtype=BF16, reverse=True, return_final_state=True),
    ],
)
def test_chunked_runs_on_cuda(overrides):
    # The chunked path is plain torch, so it is also the (slow) CUDA fallback of the dispatcher.
    case = make_case(**overrides)
    run_case(functools.partial(selective_scan_chunked, chunk_size=8, block_chunks=4), case, device="cuda",
             floor_scale=gpu_floor_scale(case.dtype))
