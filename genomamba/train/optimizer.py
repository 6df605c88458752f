"""AdamW parameter groups, the same for pretraining and fine-tuning: weight decay on weight
matrices only."""

from __future__ import annotations

import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on matrices only; none on biases, norms, embeddings' 1-D params and the
    parameters the model marks ``_no_weight_decay`` (A_log, D, dt bias)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or getattr(param, "_no_weight_decay", False):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
