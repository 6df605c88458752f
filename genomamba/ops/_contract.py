"""What every PyTorch selective-scan backend shares: input validation and the bidirectional composition.

The signature and the meaning of each argument are documented once, in
:func:`genomamba.ops.selective_scan_ref.selective_scan_ref` (glossary and equations in its module); the
reference and the chunked backend both validate through :func:`check_scan_inputs` and build their
bidirectional scan with :func:`bidirectional_scan`, so the two cannot drift apart. Imports only torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["ScanShapes", "check_scan_inputs", "expect_shape", "gate", "bidirectional_scan"]

# One direction's tensors, in this order: (u, delta, A, B, C, D, delta_bias); D and delta_bias may be None.
Direction = tuple[torch.Tensor | None, ...]


class ScanShapes(NamedTuple):
    """Sizes of a validated selective-scan call (see :func:`check_scan_inputs`)."""

    batch: int
    dim: int
    length: int
    d_state: int
    groups: int  # 0 when B/C are 3-D (shared by all channels), else the size of their group axis


def expect_shape(name: str, t: torch.Tensor | None, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``t`` is None or has exactly ``shape``."""
    if t is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"selective_scan: {name} must have shape {tuple(shape)}, got {tuple(t.shape)}")


def check_scan_inputs(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> ScanShapes:
    """Validate the shapes of a selective-scan call (shared by every PyTorch backend).

    Returns:
        :class:`ScanShapes` ``(batch, dim, length, d_state, groups)``; ``groups`` is 0 when B/C are 3-D
        (one B/C shared by all channels), otherwise the size of their group axis.

    Raises:
        ValueError: naming the argument, the expected shape and the actual one; also for non-float inputs,
            a complex ``A``, or ``dim`` not divisible by ``groups``.
    """
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must be 3-D (batch, dim, length), got shape {tuple(u.shape)}")
    if not u.is_floating_point():
        raise ValueError(f"selective_scan: u must be a floating-point tensor, got {u.dtype}")
    batch, dim, length = u.shape
    expect_shape("delta", delta, (batch, dim, length))
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must have shape ({dim}, d_state), got {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported (A must be real and negative)")
    d_state = A.shape[1]
    if B.dim() == 3:
        groups = 0
        expect_shape("B", B, (batch, d_state, length))
        expect_shape("C", C, (batch, d_state, length))
    elif B.dim() == 4:
        groups = B.shape[1]
        expect_shape("B", B, (batch, groups, d_state, length))
        expect_shape("C", C, (batch, groups, d_state, length))
        if groups == 0 or dim % groups != 0:
            raise ValueError(f"selective_scan: dim={dim} must be divisible by groups={groups} (B.shape[1])")
    else:
        raise ValueError(
            "selective_scan: B must have shape (batch, d_state, length) or (batch, groups, d_state, length), "
            f"got {tuple(B.shape)}"
        )
    expect_shape("D", D, (dim,))
    expect_shape("z", z, (batch, dim, length))
    expect_shape("delta_bias", delta_bias, (dim,))
    expect_shape("initial_state", initial_state, (batch, dim, d_state))
    named = {"delta": delta, "A": A, "B": B, "C": C, "D": D, "z": z, "delta_bias": delta_bias,
             "initial_state": initial_state}
    for name, t in named.items():
        if t is not None and not t.is_floating_point():
            raise ValueError(f"selective_scan: {name} must be a floating-point tensor, got {t.dtype}")
    return ScanShapes(batch, dim, length, d_state, groups)


def gate(y: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
    """``y · silu(z)`` in ``y``'s dtype (``y`` itself when ``z`` is None)."""
    return y if z is None else y * F.silu(z.to(y.dtype))


def bidirectional_scan(
    scan: Callable[..., torch.Tensor], fwd: Direction, z: torch.Tensor | None, rev_given: Direction
) -> torch.Tensor:
    """``(scan(*fwd, reverse=False) + scan(*rev, reverse=True)) · silu(z)``, cast to ``u.dtype``.

    Args:
        scan: one ungated direction, ``scan(u, delta, A, B, C, D, delta_bias, reverse=...)`` → ``y``
            ``(batch, dim, length)`` in the backend's compute dtype (the sum and the gate are formed in it).
        fwd: the forward direction's ``(u, delta, A, B, C, D, delta_bias)``.
        z: the gate ``(batch, dim, length)`` or None (applied once, to the sum).
        rev_given: ``(u_rev, delta_rev, A_rev, B_rev, C_rev, D_rev, delta_bias_rev)`` as the caller gave them;
            each None reuses the forward tensor (so with none given, ``D · u`` counts once per direction).

    Raises:
        ValueError: ``z`` or ``u_rev`` not shaped like ``u`` (checked before any scan runs), or whatever
            ``scan`` raises for either direction.
    """
    u = fwd[0]
    expect_shape("z", z, tuple(u.shape))
    rev = tuple(f if r is None else r for f, r in zip(fwd, rev_given, strict=True))
    expect_shape("u_rev", rev[0], tuple(u.shape))
    y = scan(*fwd, reverse=False) + scan(*rev, reverse=True)
    return gate(y, z).to(u.dtype)
