"""What governs a training run from outside its loop: stop signals and deterministic algorithms.

:class:`StopFlag` turns SIGTERM/SIGINT into a flag the loop reads after each step, so a run that a
scheduler stops (a job's time limit, a pre-empted node) finishes the step, writes a checkpoint and
exits with the signal's code. :func:`deterministic_mode` is ``--deterministic``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable

import torch

__all__ = ["StopFlag", "deterministic_mode"]


class StopFlag:
    """SIGTERM/SIGINT set a flag that the loop checks after each step (never mid-step)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deterministic_mode(enabled: bool, device: torch.device, log: Callable[[str], None]):
    """Deterministic algorithms for the block (``--deterministic``); everything is restored after.

    * ``torch.use_deterministic_algorithms(True)``: an op without a deterministic implementation
      raises instead of running; cuDNN autotuning off and deterministic cuDNN kernels only. Its
      companion ``fill_uninitialized_memory`` (NaN-filling every ``torch.empty``) is turned off:
      it made CPU training up to 3.7x slower, and no op of the model reads memory it did not
      write (such a read would show up as a difference between two runs in the regression tests);
    * ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (unless set), which cuBLAS needs for reproducible
      results on CUDA >= 10.2 (it must be in place before the first cuBLAS call of the process);
    * on CUDA, the chunked PyTorch scan instead of the Triton kernels unless
      ``GENOMAMBA_SCAN_BACKEND`` says otherwise: the Triton backward sums some gradients with
      floating-point atomics, whose order (and so the last bits) varies from run to run.

    Seeds are fixed by the run's ``seed`` in any mode. Gloo's CPU all-reduce has a fixed order;
    NCCL's is reproducible for a fixed world size and topology but not guaranteed across versions.
    """
    from genomamba.ops.dispatch import ENV_VAR as SCAN_ENV_VAR

    saved_env = {k: os.environ.get(k) for k in ("CUBLAS_WORKSPACE_CONFIG", SCAN_ENV_VAR)}
    import torch.utils.deterministic

    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        if device.type == "cuda" and not os.environ.get(SCAN_ENV_VAR):
            os.environ[SCAN_ENV_VAR] = "chunked"
            log(f"--deterministic on CUDA: chunked PyTorch scan instead of Triton ({SCAN_ENV_VAR}=chunked)")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[1:3]
        torch.utils.deterministic.fill_uninitialized_memory = previous[3]
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
