"""Backend choice for the selective scan: Triton on CUDA, chunked PyTorch on CPU, never a silent fallback.

Backends (same signature, see :mod:`genomamba.ops.selective_scan_ref` for the glossary and equations):

* ``"reference"`` — :func:`~genomamba.ops.selective_scan_ref.selective_scan_ref`, sequential, the oracle;
* ``"chunked"``   — :func:`~genomamba.ops.selective_scan_chunked.selective_scan_chunked`, pure PyTorch,
  any device;
* ``"triton"``    — ``genomamba.kernels.selective_scan_triton``, fused kernels, CUDA only, imported lazily;
* ``"auto"``      — triton for CUDA tensors when the kernel module imports, chunked otherwise.

The environment variable ``GENOMAMBA_SCAN_BACKEND`` (one of the names above) replaces ``"auto"``; an explicit
``backend=`` argument wins over it. A request that the machine cannot honour (``triton`` on CPU tensors or
without an importable kernel) raises :class:`genomamba.errors.UnavailableError` (exit code 69); ``auto``
settling on something slower than expected (chunked on CUDA) emits a ``RuntimeWarning`` on every call and a
logging warning once per reason.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from genomamba.errors import UnavailableError

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "selective_scan",
    "bidirectional_selective_scan",
    "resolve_backend",
    "backend_report",
]

ENV_VAR = "GENOMAMBA_SCAN_BACKEND"
BACKENDS = ("auto", "reference", "chunked", "triton")
#: where the Triton kernels live (imported in _load_triton); named in messages and in backend_report
_KERNEL_MODULE = "genomamba.kernels.selective_scan_triton"


class TritonKernels(NamedTuple):
    """The Triton entry points, or why they are not usable here (``error`` None when they are)."""

    scan: Callable | None
    bidirectional_scan: Callable | None
    error: str | None


log = logging.getLogger(__name__)
_logged_reasons: set[str] = set()
_triton_cache: dict[str, TritonKernels] = {}


def _load_triton() -> TritonKernels:
    """Import the Triton kernels once (lazily: triton is optional and slow to import)."""
    if "result" not in _triton_cache:
        try:
            from genomamba.kernels import selective_scan_triton as kernels

            _triton_cache["result"] = TritonKernels(
                kernels.selective_scan_triton, kernels.bidirectional_selective_scan_triton, None
            )
        except Exception as exc:  # any failure (ImportError, missing symbol, CUDA init) means "not usable"
            _triton_cache["result"] = TritonKernels(None, None, f"{type(exc).__name__}: {exc}")
    return _triton_cache["result"]


def _reset_cache() -> None:
    """Forget the cached kernel import and the logged reasons (tests use this after monkeypatching)."""
    _triton_cache.clear()
    _logged_reasons.clear()


def _requested(backend: str) -> tuple[str, str]:
    """``(name, source)``: the requested backend after the environment override, and who requested it."""
    if backend not in BACKENDS:
        raise ValueError(f"selective_scan: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env:
            if env not in BACKENDS:
                raise ValueError(f"{ENV_VAR}={env!r} is not one of {BACKENDS}")
            return env, f"{ENV_VAR}={env}"
        return "auto", "auto"
    return backend, f"backend={backend!r}"


def _announce_fallback(reason: str) -> None:
    msg = f"selective_scan: {reason}"
    warnings.warn(msg, RuntimeWarning, stacklevel=4)
    if reason not in _logged_reasons:
        _logged_reasons.add(reason)
        log.warning(msg)


def resolve_backend(
    backend: str = "auto", device: torch.device | str = "cpu", *, announce: bool = True
) -> str:
    """Name of the backend that will run a scan on ``device`` for the request ``backend``.

    Returns:
        ``"reference"``, ``"chunked"`` or ``"triton"``.

    Raises:
        ValueError: unknown backend name (argument or environment variable).
        UnavailableError: triton asked for (argument or environment) but the tensors are not on CUDA or the
            kernel module does not import.
    """
    name, source = _requested(backend)
    on_cuda = torch.device(device).type == "cuda"
    if name in ("reference", "chunked"):
        return name
    if name == "triton":
        if not on_cuda:
            raise UnavailableError(f"selective_scan: {source} needs CUDA tensors, got device {device}")
        err = _load_triton().error
        if err is not None:
            raise UnavailableError(f"selective_scan: {source} but {_KERNEL_MODULE} does not import ({err})")
        return "triton"
    if not on_cuda:
        return "chunked"
    err = _load_triton().error
    if err is None:
        return "triton"
    if announce:
        _announce_fallback(
            f"Triton kernel unavailable ({err}); falling back to the chunked PyTorch scan on CUDA, "
            f"which is much slower. Set {ENV_VAR}=chunked to silence this."
        )
    return "chunked"


def _impl(name: str, bidirectional: bool) -> Callable:
    """The function that runs backend ``name`` (as :func:`resolve_backend` names it); each backend module
    is imported here, on first use, by its name."""
    if name == "reference":
        from genomamba.ops.selective_scan_ref import bidirectional_selective_scan_ref, selective_scan_ref

        return bidirectional_selective_scan_ref if bidirectional else selective_scan_ref
    if name == "chunked":
        from genomamba.ops.selective_scan_chunked import (
            bidirectional_selective_scan_chunked,
            selective_scan_chunked,
        )

        return bidirectional_selective_scan_chunked if bidirectional else selective_scan_chunked
    kernels = _load_triton()  # resolve_backend returned "triton" only if this import succeeded
    return kernels.bidirectional_scan if bidirectional else kernels.scan


#: How A may be structured (``decay=``): as given, a ladder A[:, n] = A[:, 0]·(n + 1), or scalar
#: A[:, n] = A[:, 0]
DECAYS = ("full", "ladder", "scalar")


def _decay_option(name: str, decay: str) -> dict[str, str]:
    """The keyword that tells the Triton kernels how A is structured; the PyTorch backends compute
    exp(Δ·A) from A as given, which is the same arithmetic (within rounding) and needs no such hint."""
    if decay not in DECAYS:
        raise ValueError(f"selective_scan: decay must be one of {DECAYS}, got {decay!r}")
    return {"decay": decay} if decay != "full" and name == "triton" else {}


def selective_scan(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False, *, initial_state: torch.Tensor | None = None,
    return_final_state: bool = False, reverse: bool = False, decay: str = "full",
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective scan on the best available backend (contract: DESIGN.md §2).

    Arguments, shapes and results as :func:`~genomamba.ops.selective_scan_ref.selective_scan_ref` (state in
    fp32, ``y`` in ``u.dtype``); ``backend`` is ``"auto"``, ``"reference"``, ``"chunked"`` or ``"triton"``.
    ``decay`` is the caller's promise about A's structure (a model's ``mixer.decay``): ``"ladder"``,
    ``A[:, n] == A[:, 0] * (n + 1)`` for every state n, or ``"scalar"``, ``A[:, n] == A[:, 0]``. The
    Triton kernels then read only ``A[:, 0]`` and compute ``exp(Δ·A)`` with one exponential per
    position and channel (a ladder's powers 1..n by a running product); an A without that
    structure gives wrong results there, so nothing but such a model should pass it.

    Raises:
        ValueError: bad shapes or backend name. UnavailableError: triton requested but unusable here.
    """
    name = resolve_backend(backend, u.device)
    scan = _impl(name, bidirectional=False)
    return scan(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
                initial_state=initial_state, return_final_state=return_final_state, reverse=reverse,
                **_decay_option(name, decay))


def bidirectional_selective_scan(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False, *, u_rev: torch.Tensor | None = None, delta_rev: torch.Tensor | None = None,
    A_rev: torch.Tensor | None = None, B_rev: torch.Tensor | None = None, C_rev: torch.Tensor | None = None,
    D_rev: torch.Tensor | None = None, delta_bias_rev: torch.Tensor | None = None,
    decay: str = "full", backend: str = "auto",
) -> torch.Tensor:
    """``(scan(u, ...) + reverse_scan(u_rev, ...)) · silu(z)``; each ``*_rev`` None reuses the forward tensor.

    As :func:`~genomamba.ops.selective_scan_ref.bidirectional_selective_scan_ref`, on the backend that
    :func:`selective_scan` would pick (``decay``: as there, for both directions' A).
    Returns ``y`` ``(batch, dim, length)`` in ``u.dtype``.

    Raises:
        ValueError: bad shapes or backend name. UnavailableError: triton requested but unusable here.
    """
    name = resolve_backend(backend, u.device)
    scan = _impl(name, bidirectional=True)
    return scan(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
                u_rev=u_rev, delta_rev=delta_rev, A_rev=A_rev, B_rev=B_rev, C_rev=C_rev, D_rev=D_rev,
                delta_bias_rev=delta_bias_rev, **_decay_option(name, decay))


def backend_report() -> dict[str, Any]:
    """What ``auto`` would pick here, for ``genomamba doctor``. Never raises and never warns.

    Returns:
        A JSON-serialisable dict: ``cpu`` and ``cuda`` (each ``{"backend": name or None, "reason": str or
        None}``), ``cuda_available``, ``triton_version`` (None when the triton package does not import),
        ``kernel_importable``, ``kernel_error``, ``env_override`` (``GENOMAMBA_SCAN_BACKEND`` or None).
    """
    try:
        import triton

        triton_version: str | None = getattr(triton, "__version__", "unknown")
    except Exception:
        triton_version = None
    err = _load_triton().error
    report: dict[str, Any] = {
        "cuda_available": torch.cuda.is_available(),
        "triton_version": triton_version,
        "kernel_module": _KERNEL_MODULE,
        "kernel_importable": err is None,
        "kernel_error": err,
        "env_override": os.environ.get(ENV_VAR) or None,
    }
    for device in ("cpu", "cuda"):
        entry: dict[str, Any] = {"backend": None, "reason": None}
        try:
            entry["backend"] = resolve_backend("auto", device, announce=False)
            if device == "cuda" and entry["backend"] == "chunked" and report["env_override"] is None:
                entry["reason"] = f"Triton kernel unavailable ({err}); would fall back with a warning"
            elif report["env_override"]:
                entry["reason"] = f"{ENV_VAR}={report['env_override']}"
        except (UnavailableError, ValueError) as exc:
            entry["reason"] = str(exc)
        report[device] = entry
    return report
