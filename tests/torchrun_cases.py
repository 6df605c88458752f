"""Launching a test's processes with the real ``torchrun`` on the CPU (gloo over loopback), as the
data-parallel tests of pretraining, fine-tuning and inference do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(script: str | os.PathLike, *args: str | os.PathLike,
             nproc: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node NPROC SCRIPT ARGS`` from the repository root, one torch thread per
    process, the repository on PYTHONPATH; output captured, 300 s at most."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    if sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the tests talk to themselves: loopback only
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(script),
               *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)


def genomamba_script(tmp: Path) -> Path:
    """The installed ``genomamba`` console script (what users launch with torchrun), else an
    equivalent launcher written into ``tmp``."""
    installed = Path(sys.executable).with_name("genomamba")
    if installed.is_file():
        return installed
    launcher = tmp / "genomamba_cli.py"
    launcher.write_text("from genomamba.cli import main\n\nmain()\n")
    return launcher
