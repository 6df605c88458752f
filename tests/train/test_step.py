"""clip_and_step: a finite gradient is clipped and stepped; a non-finite one leaves the weights alone."""

from __future__ import annotations

import math

import pytest
import torch

from genomamba.train.step import clip_and_step


def _model_and_optimizer():
    torch.manual_seed(3)
    model = torch.nn.Linear(4, 3)
    return model, torch.optim.AdamW(model.parameters(), lr=0.1)


def _backward(model, scale: float = 1.0):
    loss = (model(torch.randn(5, 4)) ** 2).sum() * scale
    loss.backward()


def test_finite_gradient_is_clipped_then_stepped():
    model, optimizer = _model_and_optimizer()
    before = [p.detach().clone() for p in model.parameters()]
    _backward(model, scale=100.0)
    norm, stepped = clip_and_step(model.parameters(), optimizer, grad_clip=1.0)
    assert stepped and math.isfinite(norm) and norm > 1.0
    clipped = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))
    assert float(clipped) == pytest.approx(1.0, rel=1e-5)
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_gradient_skips_the_step(bad):
    model, optimizer = _model_and_optimizer()
    _backward(model)
    clip_and_step(model.parameters(), optimizer, grad_clip=1.0)  # one real step: AdamW has moments
    weights = [p.detach().clone() for p in model.parameters()]
    moments = [s["exp_avg"].clone() for s in optimizer.state.values()]
    optimizer.zero_grad()
    _backward(model)
    model.weight.grad[0, 0] = bad
    norm, stepped = clip_and_step(model.parameters(), optimizer, grad_clip=1.0)
    assert not stepped and not math.isfinite(norm)
    assert all(torch.equal(a, p) for a, p in zip(weights, model.parameters(), strict=True))
    assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(moments, optimizer.state.values(), strict=True))


def test_clipping_off_always_steps():
    model, optimizer = _model_and_optimizer()
    _backward(model)
    assert clip_and_step(model.parameters(), optimizer, grad_clip=0.0) == (None, True)
