"""``genomamba doctor``: what this installation has (Python, torch, CUDA/GPU, Triton, scan backend,
shipped models)."""

from __future__ import annotations

import json

import click

EPILOG = """\b
Examples:
  genomamba doctor
  genomamba doctor --format json

Reports the Python and platform, torch and whether CUDA works (with the GPU names), the
Triton version (optional: pip install 'genomamba[gpu]'; CPU runs do not need it), the versions
of the packages genomamba uses, and which selective-scan backend would run on CPU and on CUDA
(GENOMAMBA_SCAN_BACKEND overrides the automatic choice), and the models genomamba registers by
name: shipped (each file checked against its sha256 pin; the name loads wherever a model
directory is accepted), not shipped in this build, or damaged.
Always exits 0: it describes, it does not judge.
"""


def _triton_line(info: dict) -> str:
    """Triton's version, or why it is missing and what that means here."""
    if info["triton"]:
        return f"triton {info['triton']}"
    if info.get("triton_installed", True):
        return f"triton not importable ({info.get('triton_error', '')})"
    if info["cuda_available"]:
        effect = "GPU runs fall back to the much slower chunked PyTorch scan"
    else:
        effect = "not needed here: the CPU path (chunked PyTorch scan) is used"
    return f"triton not installed ({effect}); for the GPU kernels: pip install 'genomamba[gpu]'"


@click.command("doctor", epilog=EPILOG)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def doctor(fmt: str) -> None:
    """Report the installation: Python, torch, CUDA/GPU, Triton, packages, scan backend, models."""
    from genomamba import api

    info = api.doctor()
    if fmt == "json":
        click.echo(json.dumps(info, indent=1))
        return
    lines = [
        f"genomamba {info['genomamba']}",
        f"python {info['python']} ({info['executable']})",
        f"platform {info['platform']}",
        f"torch {info['torch'] or 'not importable (' + info.get('torch_error', '') + ')'}"
        + (f" (CUDA build {info['torch_cuda_build']})" if info.get("torch_cuda_build") else ""),
        f"cuda available: {'yes' if info['cuda_available'] else 'no'}",
    ]
    lines += [f"gpu {i}: {name}" for i, name in enumerate(info["gpus"])]
    lines.append(_triton_line(info))
    lines += [f"{name} {version or 'not installed'}" for name, version in info["packages"].items()]
    report = info["scan_backends"]
    if report is None:
        lines.append(f"scan backends: unavailable ({info['scan_backends_error']})")
    else:
        for device in ("cpu", "cuda"):
            entry = report.get(device) or {}
            backend = entry.get("backend") or "none"
            reason = f" ({entry['reason']})" if entry.get("reason") else ""
            lines.append(f"scan backend on {device}: {backend}{reason}")
        if report.get("env_override"):
            lines.append(f"GENOMAMBA_SCAN_BACKEND={report['env_override']}")
    if info["scan_tuning"]:
        lines.append(f"GENOMAMBA_SCAN_TUNING={info['scan_tuning']} (Triton scan launch-plan overrides)")
    lines += _model_lines(info)
    click.echo("\n".join(lines))


def _model_lines(info: dict) -> list[str]:
    """One line per registered model: shipped (and where), not shipped in this build, or damaged."""
    if info.get("models_error"):
        return [f"models: unavailable ({info['models_error']})"]
    lines = []
    for model in info["models"]:
        if model["state"] == "shipped":
            state = f"shipped, sha256 pins match ({model['path']})"
        elif model["state"] == "not shipped":
            state = "not shipped in this build (not trained yet; docs/pretraining.md, 'Shipped models')"
        else:
            state = f"DAMAGED: {model['detail']}"
        lines.append(f"model {model['name']}: {state}")
    return lines or ["models: none registered"]
