"""Shared inputs of the resume-state tests: a real training state, and equality down to the bit."""

from __future__ import annotations

import numpy as np
import torch

from genomamba.model import build_model
from genomamba.train.optimizer import param_groups
from genomamba.train.state import rng_states, seed_everything


def trained_state(steps: int = 3) -> dict:
    """What pretraining saves, for the tiny preset after ``steps`` AdamW steps (random gradients)
    under a warm-up schedule: model and optimiser (two parameter groups, integer state keys,
    moments and a step tensor per parameter), scheduler, RNG states, data position."""
    seed_everything(7)
    model = build_model("tiny")
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 10))
    for _ in range(steps):
        for parameter in model.parameters():
            parameter.grad = torch.randn_like(parameter)
        optimizer.step()
        scheduler.step()
    return {
        "step": steps,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": {"micro_batches": 2 * steps},
        "rng": rng_states(),
        "world_size": 1,
        "config": {"preset": "tiny", "lr": 1e-3, "betas": [0.9, 0.95], "model": {}},
    }


def assert_same(expected, actual, path: str = "state") -> None:
    """Equal types and values all the way down; tensors and arrays equal in dtype, shape and every
    bit (NaN payloads and -0.0 included); a module state dict's ``_metadata`` too."""
    assert type(actual) is type(expected), (path, type(expected), type(actual))
    if isinstance(expected, torch.Tensor):
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), path
        assert torch.equal(_bytes_of(actual), _bytes_of(expected)), path
    elif isinstance(expected, np.ndarray):
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), path
        assert actual.tobytes() == expected.tobytes(), path
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), path
        assert getattr(actual, "_metadata", None) == getattr(expected, "_metadata", None), path
        for key in expected:
            assert_same(expected[key], actual[key], f"{path}/{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), path
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            assert_same(left, right, f"{path}/{index}")
    elif isinstance(expected, float):
        assert np.float64(actual).tobytes() == np.float64(expected).tobytes(), path
    else:
        assert actual == expected, path


def _bytes_of(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
