"""The installation commands as functions: ``doctor`` (what this installation has) and
``workflow init`` (a runnable copy of the Snakemake workflow it ships)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from genomamba import __version__

#: The packages whose versions ``doctor`` reports.
PACKAGES = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyfaidx",
    "biopython",
    "click",
    "tqdm",
    "safetensors",
    "scikit-learn",
    "snakemake",
)


def doctor() -> dict:
    """What this installation has, as a JSON-ready dict: genomamba, Python and platform; torch
    and whether CUDA works (``gpus``: their names); Triton (``triton_installed`` False when it is
    simply not installed, an optional extra); the versions of :data:`PACKAGES`; which scan backend
    would run on CPU and on CUDA (``scan_backends``); ``GENOMAMBA_SCAN_TUNING``; the models genomamba
    registers and whether each is shipped intact (``models``: :func:`genomamba.pretrained.registry_status`).
    A part that cannot be found out says why (``torch_error``, ``triton_error``,
    ``scan_backends_error``, ``models_error``). Never raises.
    """
    info: dict = {
        "genomamba": __version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda_build"] = torch.version.cuda
        info["cuda_available"] = bool(torch.cuda.is_available())
        info["gpus"] = (
            [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if info["cuda_available"]
            else []
        )
    except Exception as exc:  # a broken torch install is exactly what doctor must report
        info.update(torch=None, torch_error=f"{type(exc).__name__}: {exc}", cuda_available=False, gpus=[])
    try:
        import triton

        info["triton"] = getattr(triton, "__version__", "unknown")
    except Exception as exc:
        info["triton"] = None
        info["triton_error"] = f"{type(exc).__name__}: {exc}"
        # Not installed (an optional dependency: the [gpu] extra), as opposed to installed but broken.
        info["triton_installed"] = not (isinstance(exc, ModuleNotFoundError) and exc.name == "triton")
    info["packages"] = {name: _version(name) for name in PACKAGES}
    try:
        from genomamba.ops.dispatch import backend_report

        info["scan_backends"] = backend_report()
    except Exception as exc:
        info["scan_backends"] = None
        info["scan_backends_error"] = f"{type(exc).__name__}: {exc}"
    info["scan_tuning"] = os.environ.get("GENOMAMBA_SCAN_TUNING", "").strip() or None
    from genomamba.pretrained import ShippedModelError, registry_status

    try:
        info["models"] = registry_status()
    except ShippedModelError as exc:  # an unreadable manifest: a damaged installation, reported
        info["models"] = []
        info["models_error"] = str(exc)
    return info


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def workflow_init(directory: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write a runnable copy of the workflow (Snakefile, pipelines/, config/, data_manifests/,
    profiles/ and the demo genomes) into ``directory``; see :func:`genomamba.workflow.init_workflow`.
    ``force``: write into a non-empty folder, replacing the workflow's files and keeping the rest.

    Returns:
        The files written, relative to ``directory``.

    Raises:
        FileExistsError: ``directory`` is a file, or a non-empty folder without ``force``.
        OSError: copying failed (``directory`` is then left as it was).
    """
    from genomamba.workflow import init_workflow

    return init_workflow(directory, force=force)
