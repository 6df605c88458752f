"""Import mamba_ssm 2.3.2.post1's ``Mamba`` module from its sdist, without installing mamba_ssm.

Used by caduceus_peer.py (see its docstring for why and how). The sdist is unpacked into
``BUILD_DIR/src`` (where mamba_ssm_peer.load_peer also looks), ``mamba_ssm`` is registered as a
bare package pointing there so its ``__init__`` (Mamba2, Mamba3, the LM model, more Triton code)
never runs, and ``selective_scan_cuda`` -- imported at module level by
``mamba_ssm.ops.selective_scan_interface`` -- is put into ``sys.modules`` first: the module
mamba_ssm_peer.load_peer compiles, or on CPU :func:`cpu_scan_module`'s stand-in. The path
``mamba_ssm.modules.mamba_simple`` imports, besides torch and triton: ``einops`` and ``packaging``
(taken from wheels in ``.whl/`` when not installed).
"""

from __future__ import annotations

import importlib
import sys
import tarfile
import types
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO_ROOT = Path(__file__).resolve().parents[1]


def _add_wheels(wheel_dir: str | Path | None) -> list[str]:
    """Put ``einops`` / ``packaging`` wheels on sys.path when those modules do not import."""
    added = []
    if not wheel_dir:
        return added
    for module, pattern in (("einops", "einops-*.whl"), ("packaging", "packaging-*.whl")):
        try:
            __import__(module)
            continue
        except ImportError:
            pass
        wheels = sorted(Path(wheel_dir).glob(pattern))
        if wheels:
            sys.path.append(str(wheels[-1]))
            added.append(str(wheels[-1]))
    return added


def source_root(sdist: str | Path, build_dir: str | Path) -> Path:
    """Unpack the sdist into ``build_dir/src`` (once; the layout mamba_ssm_peer.load_peer uses)."""
    src = Path(build_dir) / "src"
    if not src.exists():
        src.mkdir(parents=True)
        with tarfile.open(sdist) as tar:
            tar.extractall(src, filter="data")
    roots = sorted(p.parent for p in src.glob("*/mamba_ssm/modules/mamba_simple.py"))
    if not roots:
        raise FileNotFoundError(f"no mamba_ssm/modules/mamba_simple.py under {src}")
    return roots[-1].parent.parent


def cpu_scan_module() -> types.ModuleType:
    """A CPU stand-in for ``selective_scan_cuda``: same ``fwd``/``bwd`` calls, genomamba's reference scan.

    ``fwd(u, delta, A, B, C, D, z, delta_bias, softplus) -> (out, x[, out_z])`` where ``x`` (the
    CUDA kernel's per-chunk states) is a zero placeholder of the shape mamba_ssm slices;
    ``bwd(...)`` recomputes the forward under autograd and returns the input gradients in the
    kernel's order ``(du, ddelta, dA, dB, dC, dD, ddelta_bias[, dz])``.
    """
    from genomamba.ops import selective_scan_ref

    mod = types.ModuleType("selective_scan_cuda")

    def fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        with torch.no_grad():
            out = selective_scan_ref(u, delta, A, B, C, D, None, delta_bias, delta_softplus)
            x = torch.zeros(u.shape[0], u.shape[1], 1, 2 * A.shape[1], device=u.device)
            if z is None:
                return out, x
            return out, x, (out.float() * F.silu(z.float())).to(out.dtype)

    def bwd(u, delta, A, B, C, D, z, delta_bias, dout, x, out, dz, delta_softplus, recompute_out_z):
        inputs = [u, delta, A, B, C, D, z, delta_bias]
        with torch.enable_grad():
            leaves = [None if t is None else t.detach().requires_grad_() for t in inputs]
            y = selective_scan_ref(*leaves[:6], z=leaves[6], delta_bias=leaves[7],
                                   delta_softplus=delta_softplus)
            live = [t for t in leaves if t is not None]
            grads = iter(torch.autograd.grad(y, live, dout))
        g = [None if t is None else next(grads) for t in leaves]
        du, ddelta, dA, dB, dC, dD, dz_, ddelta_bias = g
        return (du, ddelta, dA, dB, dC, dD, ddelta_bias) + ((dz_,) if z is not None else ())

    mod.fwd, mod.bwd = fwd, bwd
    mod.genomamba_cpu_stand_in = True
    return mod


@dataclass
class MambaLib:
    """What the peer needs from mamba_ssm, and how it was obtained."""

    Mamba: type
    rms_norm_fn: object  # mamba_ssm.ops.triton.layer_norm.rms_norm_fn or None
    scan: str  # "cuda" (compiled) or "cpu-reference-stand-in"
    fused_path: bool  # Mamba's fused mamba_inner_fn path (needs causal_conv1d)
    source: str


def import_mamba(src_root: str | Path, scan_module) -> MambaLib:
    """Import ``mamba_ssm.modules.mamba_simple`` from an unpacked sdist with ``scan_module`` as the scan.

    Raises:
        ImportError: a module that path needs is missing (einops? see the module docstring).
    """
    pkg_dir = Path(src_root) / "mamba_ssm"
    existing = sys.modules.get("mamba_ssm")
    if existing is None or list(getattr(existing, "__path__", [])) != [str(pkg_dir)]:
        pkg = types.ModuleType("mamba_ssm")
        pkg.__path__ = [str(pkg_dir)]  # a bare package: its __init__ (Mamba2, models, ...) never runs
        sys.modules["mamba_ssm"] = pkg
    sys.modules["selective_scan_cuda"] = scan_module
    simple = importlib.import_module("mamba_ssm.modules.mamba_simple")
    return MambaLib(
        Mamba=simple.Mamba,
        rms_norm_fn=simple.rms_norm_fn,
        scan="cpu-reference-stand-in" if getattr(scan_module, "genomamba_cpu_stand_in", False) else "cuda",
        fused_path=simple.causal_conv1d_fn is not None,
        source=str(src_root),
    )


def load_mamba(sdist, build_dir, device: torch.device, wheels: str | Path | None = REPO_ROOT / ".whl",
               conv_sdist=None):
    """mamba_ssm's Mamba for ``device`` (compiling the CUDA scan there), or None with the reason on stderr.

    With ``conv_sdist`` (causal-conv1d's sdist) on CUDA, causal_conv1d is compiled too, and Mamba
    takes its fused path (mamba_ssm_peer.load_causal_conv1d); ``MambaLib.fused_path`` says which.
    """
    if not sdist or not Path(sdist).exists():
        print(f"peer: mamba_ssm sdist not found ({sdist}); running without the peer", file=sys.stderr)
        return None
    _add_wheels(wheels)
    root = source_root(sdist, build_dir)
    if device.type == "cuda":
        from mamba_ssm_peer import load_causal_conv1d, load_peer

        scan = load_peer(sdist, build_dir)
        if scan is None:
            return None
        if conv_sdist:
            load_causal_conv1d(conv_sdist, build_dir)
    else:
        scan = cpu_scan_module()
    try:
        return import_mamba(root, scan)
    except Exception as exc:  # noqa: BLE001 - ImportError (einops?) or a Triton incompatibility
        print(f"peer: cannot import mamba_ssm's Mamba ({type(exc).__name__}: {exc}); "
              "running without the peer", file=sys.stderr)
        return None
