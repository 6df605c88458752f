"""Random selective-scan cases and the measured-tolerance rule (DESIGN.md §3), shared by all backends' tests.

Usage from any backend's test (CPU or GPU)::

    from tests.ops.scan_cases import make_case, run_case
    run_case(my_backend_fn, make_case(length=63, groups=2, dtype=torch.bfloat16), device="cuda")

Tolerance rule: for every output and every input gradient, with an fp64 sequential oracle ``O``, the backend's
value ``X`` and the fp32-computing sequential reference ``R`` fed the *same-precision* inputs::

    max|X - O|  <=  2 * max|R - O|  +  floor,     floor = FLOOR[dtype] * max(1, max|O|)

so a backend may be at most about twice as wrong as an honest same-precision implementation; the floor keeps
cases where the reference happens to be almost exact (e.g. a sum reordered) from failing on rounding noise.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import zlib
from collections.abc import Callable

import torch

from genomamba.ops.selective_scan_ref import bidirectional_selective_scan_ref, selective_scan_ref

# Every case gets the next seed of its test's own sequence (reseed_for_test, called before each test by
# tests/conftest.py), so a test sees the same inputs whichever tests ran before it in the process (a
# subset with -k, another xdist worker, a test added elsewhere); GENOMAMBA_TEST_SEED moves every sequence
# (to sweep more random inputs).
_BASE_SEED = int(os.environ.get("GENOMAMBA_TEST_SEED", "20240611"))
_seeds = itertools.count(_BASE_SEED)


def reseed_for_test(nodeid: str) -> None:
    """Start the case seeds of the test ``nodeid`` at a value that depends on that test alone."""
    global _seeds
    _seeds = itertools.count(_BASE_SEED + 1000 * (zlib.crc32(nodeid.encode()) % 1_000_000))

# Floor per input dtype, relative to max(1, max|oracle|): about 8 ulps for fp32, a quarter ulp for 16-bit
# inputs (whose error is dominated by the rounding of inputs and outputs, which the reference shares).
FLOOR = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 2.5e-4, torch.bfloat16: 2e-3}

GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")
REV_NAMES = ("u_rev", "delta_rev", "A_rev", "B_rev", "C_rev", "D_rev", "delta_bias_rev")
# The contract's positional arguments before delta_softplus, and those of them with a length (last) axis.
ARG_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
LENGTH_NAMES = ("u", "delta", "B", "C", "z")


@dataclasses.dataclass(frozen=True)
class ScanCase:
    """One random scan problem. ``groups=0`` means 3-D B/C ``(batch, d_state, length)``."""

    batch: int = 2
    dim: int = 4
    length: int = 7
    d_state: int = 4
    groups: int = 0
    dtype: torch.dtype = torch.float32
    has_D: bool = True
    has_z: bool = True
    has_delta_bias: bool = True
    delta_softplus: bool = True
    has_initial_state: bool = False
    return_final_state: bool = False
    reverse: bool = False
    distinct_rev: bool = False  # bidirectional: give the reverse direction its own parameters
    decay: str = "full"  # "ladder": A[:, n] = A[:, 0] * (n + 1); "scalar": A[:, n] = A[:, 0] (mixer.decay)
    seed: int = 0

    def __str__(self) -> str:
        flags = "".join(
            c
            for c, on in (
                ("D", self.has_D),
                ("z", self.has_z),
                ("b", self.has_delta_bias),
                ("s", self.delta_softplus),
                ("i", self.has_initial_state),
                ("f", self.return_final_state),
                ("r", self.reverse),
                ("L", self.decay == "ladder"),
                ("S", self.decay == "scalar"),
            )
            if on
        )
        dt = str(self.dtype).replace("torch.", "")
        return (
            f"b{self.batch}d{self.dim}l{self.length}n{self.d_state}g{self.groups}-{dt}-{flags}"
            f"-seed{self.seed}"
        )


def gpu_floor_scale(dtype: torch.dtype) -> float:
    """Scale of the fp32 error floor for a backend running on the GPU.

    The GPU's exp is not correctly rounded (Triton's exp2 is the MUFU approximation, relative error
    up to about 2^-22; CUDA's expf is within 2 ulp, against libm's half ulp on CPU), and dA sums
    length x channels products of such factors. Measured on an H100 at length 63 in fp32 (seed
    20240615): the Triton kernel's dA off by 1.6e-6 x max|dA|, against 2.3e-7 for the sequential
    fp32 reference; the chunked PyTorch scan on CUDA once reached 1.4x the unscaled bound (length
    1000, seed 20240628) on a machine where it had passed before. So fp32 gets four times the 1e-6
    floor on the GPU; the 16-bit floors are far above this and stay as they are.
    """
    return 4.0 if dtype == torch.float32 else 1.0


def make_case(**overrides) -> ScanCase:
    """A :class:`ScanCase` with the next seed of the running test's sequence (see reseed_for_test)."""
    return ScanCase(**{**overrides, "seed": next(_seeds)})


def _structured_A(rate: torch.Tensor, d_state: int, decay: str) -> torch.Tensor:
    """(dim, d_state) A from a (dim, 1) rate: a ladder's rate x (1..d_state), or the rate in every state."""
    if decay == "ladder":
        return rate * torch.arange(1, d_state + 1)
    return rate.expand(-1, d_state).clone()


def make_inputs(
    case: ScanCase, device: str | torch.device = "cpu", *, rev: bool = False
) -> dict[str, torch.Tensor]:
    """Random, never-zero leaf tensors for ``case`` (requires_grad on every float input).

    u, delta, z, B, C are in ``case.dtype``; A, D, delta_bias, initial_state are fp32 (the contract).
    A = -exp(N(0,1)) (negative, spread over two orders of magnitude; with a structured ``case.decay``
    one such rate per channel, times 1..d_state for a ladder, in every state for a scalar); delta
    small and positive (or pre-softplus around -1 so that softplus(delta + bias) is about 0.3).
    With ``rev=True`` also adds independent ``*_rev`` tensors (for bidirectional cases).
    """
    g = torch.Generator().manual_seed(case.seed)
    b, d, l, n = case.batch, case.dim, case.length, case.d_state

    def rnd(*shape, scale=1.0, shift=0.0):
        return torch.randn(*shape, generator=g) * scale + shift

    def pos(*shape, lo, hi):
        return torch.rand(*shape, generator=g) * (hi - lo) + lo

    bc_shape = (b, n, l) if case.groups == 0 else (b, case.groups, n, l)

    def one_direction() -> dict[str, torch.Tensor | None]:
        return {
            "u": rnd(b, d, l).to(case.dtype),
            "delta": (
                rnd(b, d, l, scale=0.5, shift=-1.0) if case.delta_softplus else pos(b, d, l, lo=0.01, hi=0.2)
            ).to(case.dtype),
            "A": _structured_A(-torch.exp(rnd(d, 1)), n, case.decay) if case.decay != "full"
            else -torch.exp(rnd(d, n)),
            "B": rnd(*bc_shape).to(case.dtype),
            "C": rnd(*bc_shape).to(case.dtype),
            "D": rnd(d) if case.has_D else None,
            # without softplus keep Δ + bias positive: a negative Δ makes the scan grow exponentially
            "delta_bias": (None if not case.has_delta_bias
                           else rnd(d, scale=0.1) if case.delta_softplus else pos(d, lo=0.0, hi=0.05)),
        }

    t = one_direction()
    t["z"] = rnd(b, d, l).to(case.dtype) if case.has_z else None
    t["initial_state"] = rnd(b, d, n) if case.has_initial_state else None
    if rev:
        t.update({f"{k}_rev": v for k, v in one_direction().items()})
    out = {}
    for k, v in t.items():
        if v is not None:
            v = v.to(device).requires_grad_(True)
        out[k] = v
    return out


def scan_args(
    inputs: dict[str, torch.Tensor | None],
    delta_softplus: bool,
    *,
    suffix: str = "",
    along_length: Callable[[torch.Tensor], torch.Tensor] | None = None,
    **override: torch.Tensor | None,
) -> tuple:
    """The contract's positional arguments ``(u, delta, A, B, C, D, z, delta_bias, delta_softplus)``.

    Each tensor is ``inputs[name + suffix]`` (``suffix="_rev"``: the reverse direction of a bidirectional
    case, which has no ``z_rev``: pass ``z=...``) unless ``override`` gives it by name; ``along_length``
    (e.g. a flip or a slice of the last axis) is applied to the non-None tensors named in ``LENGTH_NAMES``.

    Raises:
        TypeError: ``override`` names something that is not a positional argument.
        KeyError: ``inputs`` lacks a tensor that ``override`` does not give.
    """
    unknown = sorted(set(override) - set(ARG_NAMES))
    if unknown:
        raise TypeError(f"not positional scan arguments: {unknown}")
    args = []
    for name in ARG_NAMES:
        t = override[name] if name in override else inputs[name + suffix]
        if along_length is not None and t is not None and name in LENGTH_NAMES:
            t = along_length(t)
        args.append(t)
    return (*args, delta_softplus)


def _call(fn: Callable, inputs: dict[str, torch.Tensor], case: ScanCase, bidirectional: bool, **kw):
    args = scan_args(inputs, case.delta_softplus)
    if bidirectional:
        return fn(*args, **{k: inputs.get(k) for k in REV_NAMES}, **kw)
    return fn(
        *args,
        initial_state=inputs["initial_state"],
        return_final_state=case.return_final_state,
        reverse=case.reverse,
        **kw,
    )


def _forward_backward(fn, inputs, case, bidirectional, upstream, check_grads, **kw):
    """Outputs and gradients of ``fn`` as fp64 tensors keyed by name."""
    out = _call(fn, inputs, case, bidirectional, **kw)
    outs = list(out) if isinstance(out, tuple) else [out]
    names = ["y", "h_last"][: len(outs)]
    res = {name: o.detach().double() for name, o in zip(names, outs, strict=False)}
    if check_grads:
        leaves = {k: v for k, v in inputs.items() if v is not None}
        loss = sum((o.double() * up.to(o.device)).sum() for o, up in zip(outs, upstream, strict=True))
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        for k, gr in zip(leaves, grads, strict=True):
            res[f"d{k}"] = (torch.zeros_like(leaves[k]) if gr is None else gr).detach().double()
    return res


def _detached_copy(
    inputs: dict, dtype: torch.dtype | None = None, device: str | torch.device | None = None
) -> dict:
    """Fresh leaves (requires_grad) with the values of ``inputs``, optionally cast and/or moved."""

    def leaf(v: torch.Tensor) -> torch.Tensor:
        to_device = v.device if device is None else device
        return v.detach().to(device=to_device, dtype=dtype or v.dtype).requires_grad_(True)

    return {k: None if v is None else leaf(v) for k, v in inputs.items()}


def run_case(
    backend_fn: Callable,
    case: ScanCase,
    *,
    check_grads: bool = True,
    bidirectional: bool = False,
    device: str | torch.device = "cpu",
    floor_scale: float = 1.0,
    **backend_kwargs,
) -> dict[str, tuple[float, float, float]]:
    """Run ``backend_fn`` on a random case and assert the tolerance rule on y, h_last and all input gradients.

    ``backend_fn`` has the contract signature (``selective_scan`` or, with ``bidirectional=True``,
    ``bidirectional_selective_scan``); ``backend_kwargs`` are passed through (e.g. ``chunk_size=16``).
    The oracle and the same-precision reference run on CPU.

    Returns:
        ``{name: (err_backend, err_reference, floor)}`` for every compared quantity.

    Raises:
        AssertionError: listing every quantity that breaks the rule.
    """
    cpu_inputs = make_inputs(case, "cpu", rev=bidirectional)
    ref_fn = bidirectional_selective_scan_ref if bidirectional else selective_scan_ref
    g = torch.Generator().manual_seed(case.seed + 7)
    shape_y = (case.batch, case.dim, case.length)
    upstream = [torch.randn(*shape_y, generator=g).to(case.dtype).double()]
    if case.return_final_state and not bidirectional:
        upstream.append(torch.randn(case.batch, case.dim, case.d_state, generator=g).double())

    oracle = _forward_backward(
        ref_fn,
        _detached_copy(cpu_inputs, torch.float64),
        case,
        bidirectional,
        upstream,
        check_grads,
        compute_dtype=torch.float64,
    )
    ref = _forward_backward(ref_fn, _detached_copy(cpu_inputs), case, bidirectional, upstream, check_grads)
    dev_inputs = _detached_copy(cpu_inputs, device=device)
    got = _forward_backward(
        backend_fn, dev_inputs, case, bidirectional, upstream, check_grads, **backend_kwargs
    )

    report, failures = {}, []
    for name, o in oracle.items():
        x = got[name].cpu()
        if x.shape != o.shape:
            failures.append(f"{name}: shape {tuple(x.shape)} != {tuple(o.shape)}")
            continue
        if not torch.isfinite(x).all():
            failures.append(f"{name}: non-finite values")
            continue
        err = (x - o).abs().max().item() if o.numel() else 0.0
        err_ref = (ref[name] - o).abs().max().item() if o.numel() else 0.0
        floor = floor_scale * FLOOR[case.dtype] * max(1.0, o.abs().max().item() if o.numel() else 0.0)
        report[name] = (err, err_ref, floor)
        if not err <= 2 * err_ref + floor:
            failures.append(f"{name}: err {err:.3g} > 2 * ref_err {err_ref:.3g} + floor {floor:.3g}")
    if failures:
        raise AssertionError(
            f"case {case}{' (bidirectional)' if bidirectional else ''}:\n  " + "\n  ".join(failures)
        )
    return report
