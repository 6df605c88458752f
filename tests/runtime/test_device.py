"""genomamba.runtime.device and .precision: the device a process runs on, and the autocast on it."""

from __future__ import annotations

import pytest
import torch

from genomamba.errors import UnavailableError
from genomamba.runtime.device import World, resolve_device
from genomamba.runtime.precision import autocast_for


def test_cpu_is_cpu_and_auto_takes_cuda_only_when_there_is_one():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cpu", World(1, 2, 1)) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_unavailable():
    with pytest.raises(UnavailableError, match="no CUDA device"):
        resolve_device("cuda")


def test_cpu_passes_run_in_fp32():
    x = torch.ones(2, 2)
    with autocast_for(torch.device("cpu")):
        assert (x @ x).dtype == torch.float32
