"""The sequential reference against hand-computed numbers and its own algebraic identities."""

from __future__ import annotations

import math

import pytest
import torch

from genomamba.ops.selective_scan_ref import bidirectional_selective_scan_ref, selective_scan_ref
from tests.ops.scan_cases import REV_NAMES, make_case, make_inputs, scan_args


def test_tiny_case_matches_hand_loop():
    # batch 1, dim 1, d_state 1, length 3: every step written out by hand.
    u = torch.tensor([[[1.0, 2.0, -1.0]]])
    delta = torch.tensor([[[0.5, 0.1, 0.2]]])
    A = torch.tensor([[-2.0]])
    B = torch.tensor([[[1.0, 0.5, 2.0]]])
    C = torch.tensor([[[3.0, -1.0, 0.5]]])
    D = torch.tensor([0.25])
    z = torch.tensor([[[0.0, 1.0, -2.0]]])
    h, ys = 0.0, []
    for t in range(3):
        dt, ut = delta[0, 0, t].item(), u[0, 0, t].item()
        h = math.exp(dt * -2.0) * h + dt * B[0, 0, t].item() * ut
        y = C[0, 0, t].item() * h + 0.25 * ut
        zt = z[0, 0, t].item()
        ys.append(y * zt / (1 + math.exp(-zt)))
    # known numbers for the first step: h0 = 0.5*1*1 = 0.5, y0 = 3*0.5 + 0.25 = 1.75, silu(0) = 0
    assert ys[0] == 0.0
    y, h_last = selective_scan_ref(
        u, delta, A, B, C, D, z, return_final_state=True, compute_dtype=torch.float64
    )
    torch.testing.assert_close(y[0, 0].double(), torch.tensor(ys, dtype=torch.float64), rtol=1e-6, atol=1e-7)
    assert h_last.shape == (1, 1, 1) and h_last.dtype == torch.float64
    assert h_last.item() == pytest.approx(h, rel=1e-12)
    # ungated output at t=0 is exactly C*dt*B*u + D*u
    y_nogate = selective_scan_ref(u, delta, A, B, C, D)
    assert y_nogate[0, 0, 0].item() == pytest.approx(1.75, rel=1e-6)


def test_softplus_and_bias_are_applied_before_discretisation():
    case = make_case(has_z=False, has_D=False, delta_softplus=True)
    i = make_inputs(case)
    dt = torch.nn.functional.softplus(i["delta"] + i["delta_bias"][:, None])
    y1 = selective_scan_ref(
        i["u"], i["delta"], i["A"], i["B"], i["C"], delta_bias=i["delta_bias"], delta_softplus=True
    )
    y2 = selective_scan_ref(i["u"], dt, i["A"], i["B"], i["C"])
    torch.testing.assert_close(y1, y2)


@pytest.mark.parametrize("groups", [0, 2])
def test_reverse_equals_flip_forward_flip(groups):
    case = make_case(dim=4, length=9, groups=groups, has_initial_state=True)
    i = make_inputs(case)
    kw = dict(initial_state=i["initial_state"], return_final_state=True, compute_dtype=torch.float64)
    y, h = selective_scan_ref(*scan_args(i, True), reverse=True, **kw)
    yf, hf = selective_scan_ref(*scan_args(i, True, along_length=lambda t: t.flip(-1)), **kw)
    torch.testing.assert_close(y, yf.flip(-1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(h, hf, rtol=1e-12, atol=1e-12)


def test_bidirectional_is_sum_of_two_directions():
    case = make_case(dim=6, length=11, groups=3)
    i = make_inputs(case, rev=True)
    common = dict(compute_dtype=torch.float64)
    y = bidirectional_selective_scan_ref(*scan_args(i, True), **{k: i[k] for k in REV_NAMES}, **common)
    # each direction ungated: the bidirectional scan gates their sum once
    yf = selective_scan_ref(*scan_args(i, True, z=None), **common)
    yr = selective_scan_ref(*scan_args(i, True, suffix="_rev", z=None), reverse=True, **common)
    torch.testing.assert_close(y, (yf + yr) * torch.nn.functional.silu(i["z"]), rtol=1e-6, atol=1e-6)
    # *_rev left out means "same tensors as the forward direction"
    y_same = bidirectional_selective_scan_ref(*scan_args(i, True), **common)
    yr_same = selective_scan_ref(*scan_args(i, True, z=None), reverse=True, **common)
    torch.testing.assert_close(
        y_same, (yf + yr_same) * torch.nn.functional.silu(i["z"]), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("reverse", [False, True])
def test_state_chaining_equals_one_scan(reverse):
    case = make_case(dim=4, length=13, groups=2, has_initial_state=True)
    i = make_inputs(case)
    k = 5

    def args(sl):
        return scan_args(i, True, along_length=lambda t: t[..., sl])

    kw = dict(return_final_state=True, reverse=reverse, compute_dtype=torch.float64)
    y, h = selective_scan_ref(*args(slice(None)), initial_state=i["initial_state"], **kw)
    first, second = (slice(k, None), slice(0, k)) if reverse else (slice(0, k), slice(k, None))
    y1, h1 = selective_scan_ref(*args(first), initial_state=i["initial_state"], **kw)
    y2, h2 = selective_scan_ref(*args(second), initial_state=h1, **kw)
    parts = (y2, y1) if reverse else (y1, y2)
    torch.testing.assert_close(torch.cat(parts, -1), y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(h2, h, rtol=1e-12, atol=1e-12)


def test_output_dtype_and_state_dtype():
    case = make_case(dtype=torch.bfloat16, return_final_state=True)
    i = make_inputs(case)
    y, h = selective_scan_ref(i["u"], i["delta"], i["A"], i["B"], i["C"], return_final_state=True)
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32


def test_gradients_flow_to_every_input():
    case = make_case(has_initial_state=True, groups=2)
    i = make_inputs(case)
    y, h = selective_scan_ref(*scan_args(i, True), initial_state=i["initial_state"], return_final_state=True)
    (y.sum() + h.sum()).backward()
    for name, t in i.items():
        if t is not None:
            assert t.grad is not None and t.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(delta=torch.zeros(2, 4, 6)), r"delta must have shape \(2, 4, 7\), got \(2, 4, 6\)"),
        (dict(A=torch.zeros(5, 3)), r"A must have shape \(4, d_state\)"),
        (dict(B=torch.zeros(2, 3, 7)), r"B must have shape \(2, 4, 7\)"),
        (dict(C=torch.zeros(2, 4, 8)), r"C must have shape \(2, 4, 7\)"),
        (dict(B=torch.zeros(2, 3, 4, 7), C=torch.zeros(2, 3, 4, 7)), "divisible by groups=3"),
        (dict(D=torch.zeros(5)), r"D must have shape \(4,\)"),
        (dict(z=torch.zeros(2, 4)), r"z must have shape \(2, 4, 7\)"),
        (dict(delta_bias=torch.zeros(4, 1)), r"delta_bias must have shape \(4,\)"),
        (dict(initial_state=torch.zeros(2, 4, 5)), r"initial_state must have shape \(2, 4, 4\)"),
        (dict(u=torch.zeros(2, 4, 7, dtype=torch.int64)), "floating-point"),
    ],
)
def test_shape_errors_name_the_argument(bad, message):
    i = {k: (v.detach() if v is not None else None) for k, v in make_inputs(make_case()).items()}
    i.update(bad)
    with pytest.raises(ValueError, match=message):
        # False is the signature's default for delta_softplus
        selective_scan_ref(*scan_args(i, False), initial_state=i["initial_state"])
