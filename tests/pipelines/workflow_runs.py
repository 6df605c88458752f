"""Running Snakemake on a temporary copy of the workflow, for the tests of tests/pipelines/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from genomamba.workflow import copy_workflow

REPO_ROOT = Path(__file__).resolve().parents[2]


def copy_workflow_into(dest: Path) -> Path:
    """The files `genomamba workflow init` writes, and the cluster profiles, copied into ``dest``."""
    copy_workflow(REPO_ROOT, dest)
    if not (dest / "profiles").exists():
        shutil.copytree(REPO_ROOT / "profiles", dest / "profiles")
    return dest


def run_snakemake(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m snakemake ARGS`` in ``workdir``, with this interpreter's `genomamba` first on PATH
    (the rules call it)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
