"""The end of a training step: clip the gradient norm, then step the optimiser unless it is not finite.

A non-finite gradient norm (an inf or NaN anywhere in the gradients: a diverging loss, or a scan
state beyond what the backward's fp16 scratch holds, see kernels/selective_scan_triton._kept_dtype)
would turn every weight into NaN at the optimiser step and ruin the run from then on. Such a step
is skipped instead, as torch.amp's GradScaler skips a step with overflowing gradients: the weights
and the optimiser's moments stay as they were, and the caller records the skip.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def clip_and_step(parameters: Iterable[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                  grad_clip: float) -> tuple[float | None, bool]:
    """Clip the global gradient norm to ``grad_clip`` and take the optimiser step.

    Returns (the norm before clipping, whether the step was taken). With ``grad_clip <= 0``
    (clipping off) no norm is computed and the step is always taken: (None, True).
    """
    if grad_clip <= 0:
        optimizer.step()
        return None, True
    norm = float(torch.nn.utils.clip_grad_norm_(list(parameters), grad_clip))
    if not math.isfinite(norm):
        return norm, False
    optimizer.step()
    return norm, True
