"""Learning-rate and sequence-length schedules (plain functions of the step: easy to test and to resume).

* :func:`lr_factor` -- linear warm-up from 0 to 1 over ``warmup_steps``, then a cosine decay to
  ``min_ratio`` at ``total_steps`` (and flat after). Used through ``torch.optim.lr_scheduler.LambdaLR``.
* :func:`seq_len_at` -- sequence-length warm-up as in HyenaDNA: crops start at ``start`` bases and
  double in equal stages until they reach ``final`` after ``warmup_steps``; the trainer keeps the
  tokens per step constant by taking more (shorter) crops per step.
"""

from __future__ import annotations

import math


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """Multiplier of the base learning rate for optimiser step ``step`` (0-based).

    ``step < warmup_steps``: ``(step + 1) / warmup_steps`` (never 0, so the first step learns);
    then ``min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2`` with ``p`` the fraction of the
    decay phase done; ``min_ratio`` from ``total_steps`` on.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def seq_len_stages(start: int, final: int) -> list[int]:
    """Crop lengths ``start, 2*start, 4*start, ... , final`` (the last one always ``final``)."""
    if start <= 0 or start >= final:
        return [final]
    lengths = []
    length = start
    while length < final:
        lengths.append(length)
        length *= 2
    return [*lengths, final]


def seq_len_at(step: int, final: int, start: int | None, warmup_steps: int) -> int:
    """Crop length at optimiser step ``step``: ``final`` without warm-up (``start`` None or
    ``warmup_steps`` 0), otherwise the stage of :func:`seq_len_stages` that ``step`` falls in, the
    warm-up steps divided equally among the stages before ``final``."""
    if not start or warmup_steps <= 0 or step >= warmup_steps:
        return final
    stages = seq_len_stages(start, final)
    if len(stages) == 1:
        return final
    per_stage = warmup_steps / (len(stages) - 1)
    return stages[min(int(step // per_stage), len(stages) - 2)]
