"""Chunked selective scan (interim: delegates to the reference; the parallel path follows).

Same signature and contract as :mod:`genomamba.ops.selective_scan_ref`.
"""

from __future__ import annotations

import torch

from genomamba.ops.selective_scan_ref import bidirectional_selective_scan_ref, selective_scan_ref


def selective_scan_chunked(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    *,
    initial_state=None,
    return_final_state=False,
    reverse=False,
):
    """Interim: delegates to the reference (correct, slow)."""
    return selective_scan_ref(
        u,
        delta,
        A,
        B,
        C,
        D,
        z,
        delta_bias,
        delta_softplus,
        initial_state=initial_state,
        return_final_state=return_final_state,
        reverse=reverse,
    )


def bidirectional_selective_scan_chunked(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, **rev: torch.Tensor | None
):
    """Interim: delegates to the reference (correct, slow)."""
    return bidirectional_selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, **rev)
