"""Sequential selective scan: the slow, readable oracle every other backend is tested against.

Glossary (code name → symbol in Gu & Dao 2023, "Mamba", §3; shapes use b=batch, d=dim, n=d_state, l=length,
g=groups):

============  ===========  ==================================================================================
code          paper        meaning / shape
============  ===========  ==================================================================================
``u``         x            input sequence, ``(b, d, l)``
``delta``     Δ            per-channel, per-position step size, ``(b, d, l)``; ``delta_bias`` ``(d,)`` is
                           added and softplus applied when ``delta_softplus`` (Δ = softplus(Linear(x) + bias))
``A``         A            diagonal continuous-time state matrix, real and negative, ``(d, n)``
``B``         B            input → state projection, selective (depends on position), ``(b, n, l)`` or
                           ``(b, g, n, l)``; channel ``c`` uses group ``c // (d // g)``
``C``         C            state → output projection, same shapes as ``B``
``D``         D            skip connection ``(d,)``: ``y += D · u``
``z``         z            gate branch ``(b, d, l)``: ``y ← y · silu(z)``
``h``         h            hidden state ``(b, d, n)``, always kept in fp32 (or fp64 for the oracle)
============  ===========  ==================================================================================

Discretisation and recurrence (for each position t, left to right; right to left when ``reverse=True``)::

    Δ_t   = softplus(delta_t + delta_bias)      (or delta_t (+ delta_bias) without softplus)
    Ā_t   = exp(Δ_t · A)                        zero-order hold of A
    B̄_t u_t = Δ_t · B_t · u_t                   Euler (first-order) discretisation of B
    h_t   = Ā_t ⊙ h_{t-1} + B̄_t u_t             h_{-1} = initial_state (zeros by default)
    y_t   = Σ_n C_t[n] · h_t[n] + D · u_t
    y_t   ← y_t · silu(z_t)                      when z is given

With ``reverse=True`` "previous" means position t+1 and the state returned is the one after position 0.
The bidirectional scan is the sum of a forward scan and a reverse scan (each with its own parameters, by
default the same ones), gated once: ``(y_fwd + y_rev) · silu(z)``.

This module imports only torch (and the torch-only :mod:`genomamba.ops._contract`) and is differentiable
by autograd (the loop is plain tensor ops).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genomamba.ops._contract import ScanShapes, bidirectional_scan, check_scan_inputs, expect_shape, gate

# check_scan_inputs and ScanShapes live in genomamba.ops._contract (shared with the chunked backend); they
# stay importable from here.
__all__ = [
    "selective_scan_ref",
    "bidirectional_selective_scan_ref",
    "check_scan_inputs",
    "ScanShapes",
]


def _group_view(X: torch.Tensor, shapes: ScanShapes, dtype: torch.dtype) -> torch.Tensor:
    """B or C as ``(batch, g, 1, n, l)`` (g=1 for ungrouped) so it broadcasts against h ``(b, g, d/g, n)``."""
    if shapes.groups == 0:
        X = X.unsqueeze(1)
    return X.to(dtype).unsqueeze(2)


def _scan_core_ref(u, delta, A, B, C, D, delta_bias, delta_softplus, initial_state, reverse, dtype):
    """Ungated scan in ``dtype``: returns ``(y (b, d, l) in dtype, h_last (b, d, n) in dtype)``."""
    shapes = check_scan_inputs(u, delta, A, B, C, D, None, delta_bias, initial_state)
    batch, dim, length, d_state, groups = shapes
    g = max(groups, 1)
    uc = u.to(dtype)
    dt = delta.to(dtype)
    if delta_bias is not None:
        dt = dt + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    Ac = A.to(dtype).reshape(g, dim // g, d_state)
    Bg = _group_view(B, shapes, dtype)  # (b, g, 1, n, l)
    Cg = _group_view(C, shapes, dtype)
    dt_g = dt.reshape(batch, g, dim // g, length)
    dtu_g = (dt * uc).reshape(batch, g, dim // g, length)
    if initial_state is None:
        h = torch.zeros(batch, g, dim // g, d_state, dtype=dtype, device=u.device)
    else:
        h = initial_state.to(dtype).reshape(batch, g, dim // g, d_state)
    ys = [None] * length
    steps = range(length - 1, -1, -1) if reverse else range(length)
    # Per-position views through unbind: the backward of one unbind stacks all positions' gradients
    # once, where indexing x[..., t] would allocate and fill a full-length gradient per position
    # (quadratic in length).
    dt_t, dtu_t, B_t, C_t = (x.unbind(-1) for x in (dt_g, dtu_g, Bg, Cg))
    for t in steps:
        dA = torch.exp(dt_t[t][..., None] * Ac)  # zero-order hold: exp(Δ_t A), (b, g, d/g, n)
        h = dA * h + dtu_t[t][..., None] * B_t[t]  # Euler: Δ_t B_t u_t
        ys[t] = (h * C_t[t]).sum(-1)  # (b, g, d/g)
    if length:
        y = torch.stack(ys, dim=-1).reshape(batch, dim, length)
    else:
        y = uc.new_zeros(batch, dim, 0)
    if D is not None:
        y = y + D.to(dtype)[:, None] * uc
    return y, h.reshape(batch, dim, d_state)


def selective_scan_ref(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False, *, initial_state: torch.Tensor | None = None,
    return_final_state: bool = False, reverse: bool = False, compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sequential selective scan (see the module docstring for symbols and equations).

    This docstring is the one description of the arguments that every backend and the dispatcher share.

    Args:
        u, delta, z: ``(batch, dim, length)``, any float dtype.
        A: ``(dim, d_state)``, real (negative for a stable scan).
        B, C: ``(batch, d_state, length)`` or ``(batch, groups, d_state, length)``.
        D, delta_bias: ``(dim,)``.
        delta_softplus: apply softplus to ``delta + delta_bias``.
        initial_state: ``(batch, dim, d_state)``, the state before the first scanned position.
        return_final_state: also return the state after the last scanned position (position 0 when reversed).
        reverse: scan right to left.
        compute_dtype: precision of every internal step (fp32 by default; the tests' oracle uses fp64).

    Returns:
        ``y`` ``(batch, dim, length)`` in ``u.dtype``, or ``(y, h_last)`` with ``h_last``
        ``(batch, dim, d_state)`` in ``compute_dtype``.

    Raises:
        ValueError: on inconsistent shapes (see :func:`check_scan_inputs`).
    """
    expect_shape("z", z, tuple(u.shape))
    y, h = _scan_core_ref(
        u, delta, A, B, C, D, delta_bias, delta_softplus, initial_state, reverse, compute_dtype
    )
    y = gate(y, z).to(u.dtype)
    return (y, h) if return_final_state else y


def bidirectional_selective_scan_ref(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False, *, u_rev: torch.Tensor | None = None, delta_rev: torch.Tensor | None = None,
    A_rev: torch.Tensor | None = None, B_rev: torch.Tensor | None = None, C_rev: torch.Tensor | None = None,
    D_rev: torch.Tensor | None = None, delta_bias_rev: torch.Tensor | None = None,
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Forward scan of ``(u, delta, A, B, C, D, delta_bias)`` plus reverse scan of the ``*_rev`` tensors.

    Each ``*_rev`` argument left as None means "the same tensor as the forward direction" (so with no
    ``*_rev`` at all, ``D · u`` is counted once per direction). Both directions share ``delta_softplus``
    and the gate: ``y = (y_fwd + y_rev) · silu(z)``, returned in ``u.dtype`` (the sum is formed in
    ``compute_dtype``). Composition: :func:`genomamba.ops._contract.bidirectional_scan`.

    Raises:
        ValueError: on inconsistent shapes in either direction.
    """

    def scan(u, delta, A, B, C, D, delta_bias, reverse):
        y, _ = _scan_core_ref(u, delta, A, B, C, D, delta_bias, delta_softplus, None, reverse, compute_dtype)
        return y

    rev = (u_rev, delta_rev, A_rev, B_rev, C_rev, D_rev, delta_bias_rev)
    return bidirectional_scan(scan, (u, delta, A, B, C, D, delta_bias), z, rev)
