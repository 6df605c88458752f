"""Build and call mamba_ssm's CUDA selective scan, the speed reference, without installing mamba_ssm.

The peer's source is the mamba-ssm sdist from PyPI (never committed here). Fetch it on a machine
with internet access::

    MAMBA_SKIP_CUDA_BUILD=TRUE pip download --no-deps --no-binary :all: --no-build-isolation \
        -d .carry mamba-ssm==2.3.2.post1

and pass the .tar.gz to :func:`load_peer`, which compiles ``csrc/selective_scan`` for the local
GPU's architecture only with ``torch.utils.cpp_extension.load`` (about 3 minutes with 16 jobs).
The peer is optional: every caller must cope with ``load_peer`` returning None.
"""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path


def load_peer(sdist: str | os.PathLike | None, build_dir: str | os.PathLike):
    """Return the compiled ``selective_scan_cuda`` module, or None (with the reason on stderr)."""
    if not sdist or not Path(sdist).exists():
        print(f"peer: mamba_ssm sdist not found ({sdist}); running without the peer", file=sys.stderr)
        return None
    import torch
    from torch.utils.cpp_extension import load

    build_dir = Path(build_dir)
    src_root = build_dir / "src"
    if not src_root.exists():
        src_root.mkdir(parents=True)
        with tarfile.open(sdist) as tar:
            tar.extractall(src_root, filter="data")
    csrc = next(src_root.glob("*/csrc/selective_scan"))
    sources = [str(csrc / "selective_scan.cpp")] + sorted(str(p) for p in csrc.glob("selective_scan_*.cu"))
    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}{minor}"
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 8))
    flags = [
        "-O3", "-std=c++17", "--use_fast_math", "--expt-relaxed-constexpr", "--expt-extended-lambda",
        "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
        "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
        f"-gencode=arch=compute_{arch},code=sm_{arch}",
    ]
    try:
        return load(
            name="selective_scan_cuda", sources=sources, extra_cflags=["-O3", "-std=c++17"],
            extra_cuda_cflags=flags, build_directory=str(build_dir), verbose=False,
        )
    except Exception as exc:  # the benchmark still runs, and says why the peer is missing
        print(f"peer: failed to build mamba_ssm's selective scan: {exc}", file=sys.stderr)
        return None


def peer_forward(mod, u, delta, A, B, C, D, z, delta_bias, delta_softplus=True):
    """Peer forward; returns (out_z, saved) where saved feeds :func:`peer_backward`."""
    B, C = _four_dims(B), _four_dims(C)
    out, x, *rest = mod.fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    out_z = rest[0] if z is not None else out
    return out_z, (out, x)


def peer_backward(mod, u, delta, A, B, C, D, z, delta_bias, dout, saved, delta_softplus=True):
    out, x = saved
    B, C = _four_dims(B), _four_dims(C)
    return mod.bwd(u, delta, A, B, C, D, z, delta_bias, dout, x, out, None, delta_softplus, False)


def _four_dims(x):
    # The CUDA entry points take variable B/C as (batch, groups, d_state, length) only.
    return x.unsqueeze(1) if x.dim() == 3 else x
