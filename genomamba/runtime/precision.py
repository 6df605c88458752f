"""The numeric precision of forward passes: one autocast for training, evaluation and inference.

bf16 on CUDA, fp32 on CPU. Every loop enters it through :func:`autocast_for`, so a model is
evaluated and run in the precision it was trained in.
"""

from __future__ import annotations

import contextlib

import torch


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA (as pretraining), nothing on CPU (fp32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
