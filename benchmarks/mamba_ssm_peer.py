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


def _unpack(sdist: str | os.PathLike, into: Path) -> Path:
    """Unpack ``sdist`` into ``into`` once; returns ``into``."""
    if not into.exists():
        into.mkdir(parents=True)
        with tarfile.open(sdist) as tar:
            tar.extractall(into, filter="data")
    return into


def _compile(name: str, sources: list[str], build_dir: Path, include_dirs: list[str] = ()):
    """Compile a CUDA extension for the local GPU's architecture only (cached in ``build_dir``)."""
    import torch
    from torch.utils.cpp_extension import load

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
    build_dir.mkdir(parents=True, exist_ok=True)
    return load(
        name=name, sources=sources, extra_cflags=["-O3", "-std=c++17"], extra_cuda_cflags=flags,
        extra_include_paths=list(include_dirs), build_directory=str(build_dir), verbose=False,
    )


def load_peer(sdist: str | os.PathLike | None, build_dir: str | os.PathLike):
    """Return the compiled ``selective_scan_cuda`` module, or None (with the reason on stderr)."""
    if not sdist or not Path(sdist).exists():
        print(f"peer: mamba_ssm sdist not found ({sdist}); running without the peer", file=sys.stderr)
        return None
    build_dir = Path(build_dir)
    csrc = next(_unpack(sdist, build_dir / "src").glob("*/csrc/selective_scan"))
    sources = [str(csrc / "selective_scan.cpp")] + sorted(str(p) for p in csrc.glob("selective_scan_*.cu"))
    try:
        return _compile("selective_scan_cuda", sources, build_dir)
    except Exception as exc:  # the benchmark still runs, and says why the peer is missing
        print(f"peer: failed to build mamba_ssm's selective scan: {exc}", file=sys.stderr)
        return None


def load_causal_conv1d(sdist: str | os.PathLike | None, build_dir: str | os.PathLike) -> bool:
    """Make ``import causal_conv1d`` work from its sdist, so that mamba_ssm's Mamba takes its fused path.

    mamba_ssm's ``Mamba`` runs ``mamba_inner_fn`` (the conv, x_proj, dt_proj, scan and out_proj
    fused into one autograd function that recomputes instead of saving) only when the
    ``causal_conv1d`` package imports; that is how Caduceus trains. The sdist (causal-conv1d
    1.5.2, fetched like mamba_ssm's with ``CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE``) is unpacked
    into ``build_dir/conv_src``, its ``csrc`` compiled as ``causal_conv1d_cuda`` (about a minute
    with 16 jobs) and its Python package put on ``sys.path``. Returns False (reason on stderr)
    when there is no sdist or the build fails; the peer then runs its non-fused path.
    """
    if not sdist or not Path(sdist).exists():
        print(f"peer: causal_conv1d sdist not found ({sdist}); the peer runs mamba_ssm's non-fused path",
              file=sys.stderr)
        return False
    build_dir = Path(build_dir)
    root = next(_unpack(sdist, build_dir / "conv_src").glob("causal_conv1d-*"))
    csrc = root / "csrc"
    sources = [str(csrc / "causal_conv1d.cpp")] + sorted(str(p) for p in csrc.glob("causal_conv1d_*.cu"))
    try:
        sys.modules["causal_conv1d_cuda"] = _compile("causal_conv1d_cuda", sources, build_dir / "conv",
                                                     [str(csrc)])
    except Exception as exc:  # noqa: BLE001 - the benchmark still runs, and says why
        print(f"peer: failed to build causal_conv1d: {exc}; the peer runs mamba_ssm's non-fused path",
              file=sys.stderr)
        return False
    sys.path.insert(0, str(root))
    return True


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
