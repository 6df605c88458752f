"""Starting genomamba commands under torchrun from the data-parallel benchmarks (bench_ddp.py,
bench_ddp_apply.py): the launcher script, the child environment, and a run that can be stopped.

Standard library only: the benchmarks' parent process never needs torch for this part.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the ``genomamba`` console script's body, written beside the runs: torchrun starts a script file
LAUNCHER = "from genomamba.cli import main\n\nmain()\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_command(processes: int, launcher: Path) -> list[str]:
    """``python -m torch.distributed.run`` with ``processes`` workers on this machine running
    ``launcher``; the genomamba command and its options follow."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
            "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(launcher)]


def child_env(processes: int = 1, device: str | None = None) -> dict:
    """The environment of a run: the repository importable, the CPU threads shared out between the
    processes, and for CPU runs (``device="cpu"``) gloo talking over loopback only."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    if device == "cpu" and Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo on one machine: loopback only
    return env


def run_stoppable(command: list[str], timeout: float, log_path: Path, processes: int = 1,
                  device: str | None = None) -> tuple[int | None, float]:
    """Run ``command`` in its own process group with stdout/stderr to ``log_path``; returns (exit code
    or None when it had to be stopped, wall seconds). A run over ``timeout`` gets SIGTERM (torchrun
    forwards it to the workers; pretraining checkpoints and stops), then SIGKILL 60 s later."""
    tic = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                env=child_env(processes, device), start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            code = None
    return code, time.perf_counter() - tic
