"""StopFlag turns SIGTERM/SIGINT into a flag and puts the previous handlers back; deterministic_mode
restores every setting it changes."""

from __future__ import annotations

import os
import signal

import torch

from genomamba.train.run_control import StopFlag, deterministic_mode


def test_a_signal_sets_the_flag_instead_of_stopping_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with StopFlag() as flag:
        assert flag.signal is None
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test process without the flag
        assert flag.signal == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_deterministic_mode_restores_what_it_changed():
    messages = []
    was = torch.are_deterministic_algorithms_enabled()
    with deterministic_mode(True, torch.device("cpu"), messages.append):
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert torch.are_deterministic_algorithms_enabled() == was
    assert messages == []  # the scan backend is switched on CUDA only
