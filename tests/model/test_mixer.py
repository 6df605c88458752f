"""The unidirectional Mamba mixer: initialisation, shapes, causality, layout helpers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from model_cases import TOL

from genomamba.model import ConfigError, MixerConfig
from genomamba.model.mixer import (
    MambaMixer,
    ScanDirection,
    channels_last,
    split_last,
    time_major,
)


def test_mamba_initialisation():
    torch.manual_seed(0)
    cfg = MixerConfig(d_state=8, dt_min=0.002, dt_max=0.05)
    d = ScanDirection(24, cfg)  # d_inner 48, dt_rank ceil(24/16) = 2
    assert d.d_inner == 48 and d.dt_rank == 2
    # S4D-real: A = -(1..N) in every channel
    expected_A = -torch.arange(1, 9, dtype=torch.float32).expand(48, 8)
    torch.testing.assert_close(d.A(), expected_A)
    # softplus(dt bias) lies in [dt_min, dt_max] and spreads over it (log-uniform draw)
    dt = F.softplus(d.dt_proj.bias.detach())
    assert dt.min() >= 0.002 * (1 - 1e-5) and dt.max() <= 0.05 * (1 + 1e-5)
    assert dt.max() / dt.min() > 5
    assert torch.equal(d.D.detach(), torch.ones(48))
    std = d.dt_rank**-0.5 * cfg.dt_scale
    assert d.dt_proj.weight.abs().max() <= std and d.dt_proj.weight.std() > std / 4
    for p in (d.A_log, d.D, d.dt_proj.bias):
        assert p._no_weight_decay


def test_ladder_decay_keeps_one_rate_per_channel_through_training():
    torch.manual_seed(0)
    d = ScanDirection(8, MixerConfig(d_state=4, decay="ladder"))
    assert d.A_log.shape == (16, 1)
    ladder = torch.arange(1, 5, dtype=torch.float32)
    torch.testing.assert_close(d.A(), -ladder.expand(16, 4))  # S4D-real at initialisation
    (d.A() * torch.randn(16, 4)).sum().backward()
    with torch.no_grad():
        d.A_log -= 0.1 * d.A_log.grad
    rate = d.A()[:, :1]
    assert not torch.allclose(rate, torch.full_like(rate, -1.0))
    torch.testing.assert_close(d.A(), rate * ladder)  # a step later, still a ladder


def test_scalar_decay_keeps_one_rate_in_every_state():
    torch.manual_seed(0)
    d = ScanDirection(8, MixerConfig(d_state=4, decay="scalar"))
    assert d.A_log.shape == (16, 1)
    rates = -d.A()[:, 0]
    assert rates.min() >= 1.0 and rates.max() <= 16.0 and rates.std() > 2  # Mamba-2's uniform [1, 16]
    torch.testing.assert_close(d.A(), d.A()[:, :1].expand(16, 4))


def test_unknown_decay_is_refused():
    with pytest.raises(ConfigError, match="decay"):
        MixerConfig(decay="diagonal")


def test_constant_dt_init():
    d = ScanDirection(16, MixerConfig(dt_init="constant", dt_scale=2.0))
    assert torch.allclose(d.dt_proj.weight, torch.full_like(d.dt_proj.weight, 2.0 * d.dt_rank**-0.5))


def test_channels_last_is_a_view_of_the_scan_layout():
    y = torch.randn(2, 10, 7)  # (batch, strands * c, L) as the scan returns it
    t = channels_last(y, 2)
    assert t.shape == (2, 7, 2, 5) and t.data_ptr() == y.data_ptr()
    torch.testing.assert_close(t[:, :, 1], y[:, 5:].transpose(1, 2))


def test_time_major_is_a_view_for_one_strand_and_one_copy_for_two():
    xz = torch.randn(2, 7, 1, 10)  # (batch, L, strands, 2 * c): z is the second half, as in_proj writes it
    z = time_major(xz[..., 5:])
    assert z.shape == (2, 5, 7) and z.stride(1) == 1 and z.data_ptr() == xz[..., 5:].data_ptr()
    two = torch.randn(2, 7, 2, 10)
    z2 = time_major(two[..., 5:])
    assert z2.shape == (2, 10, 7) and z2.transpose(1, 2).is_contiguous()
    torch.testing.assert_close(z2[:, 5:], two[:, :, 1, 5:].transpose(1, 2))


def test_scan_inputs_reach_the_scan_time_major(monkeypatch):
    """Everything but u reaches the scan as rows of channels (unit stride along channels, and along
    the state for B and C), the layout the GPU kernels load as vectors, without channel-major copies."""
    import genomamba.model.mixer as mixer

    seen = {}

    def spy(u, delta, A, B, C, D=None, z=None, **kwargs):
        seen.update(delta=delta, B=B, C=C, z=z)
        return torch.zeros_like(u)

    monkeypatch.setattr(mixer, "selective_scan", spy)
    _mixer()(torch.randn(2, 9, 16, dtype=torch.float64))
    assert seen["delta"].stride(1) == 1 and seen["z"].stride(1) == 1
    assert seen["B"].stride(1) == 1 and seen["C"].stride(1) == 1  # (batch, d_state, L): state fastest


def _mixer(seed=0):
    torch.manual_seed(seed)
    return MambaMixer(16, MixerConfig(d_state=4)).double()


def test_mixer_shapes_and_dtype():
    m = _mixer()
    y = m(torch.randn(3, 20, 16, dtype=torch.float64))
    assert y.shape == (3, 20, 16) and y.dtype == torch.float64


@pytest.mark.parametrize("t", [0, 11, 23])
def test_unidirectional_mixer_is_causal(t, monkeypatch):
    monkeypatch.setenv("GENOMAMBA_SCAN_BACKEND", "reference")  # sequential: exact, not merely close
    m = _mixer()
    x = torch.randn(2, 24, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, t] += torch.randn(2, 16, dtype=torch.float64)
    y, y2 = m(x), m(x2)
    assert torch.equal(y[:, :t], y2[:, :t])  # the past never sees the future, not even in the last bit
    assert (y[:, t:] - y2[:, t:]).abs().amax(dim=(0, 2)).min() > 0  # ... and every later position does


def test_mixer_mask_zeroes_nothing_before_the_end():
    m = _mixer()
    x = torch.randn(1, 24, 16, dtype=torch.float64)
    mask = torch.arange(24)[None] < 15
    torch.testing.assert_close(m(x, mask)[:, :15], m(x[:, :15]), **TOL)


def test_dt_rank_auto_is_ceil_d_model_over_16():
    assert MixerConfig().resolved_dt_rank(250) == math.ceil(250 / 16) == 16
    assert MixerConfig(dt_rank=3).resolved_dt_rank(250) == 3


def test_split_last_gradients_equal_those_of_slicing():
    torch.manual_seed(7)
    t = torch.randn(2, 5, 3, 6, dtype=torch.float64, requires_grad=True)
    first, second = split_last(t, 2)
    assert first.data_ptr() == t.data_ptr() and first.shape[-1] == 2 and second.shape[-1] == 4
    g_first, g_second = torch.randn_like(first), torch.randn_like(second)
    ((first * g_first).sum() + (second * g_second).sum()).backward()
    assert torch.equal(t.grad, torch.cat([g_first, g_second], dim=-1))
    # Only one half used: the other half's gradient is zero.
    t.grad = None
    split_last(t, 2)[1].mul(g_second).sum().backward()
    assert torch.equal(t.grad, torch.cat([torch.zeros_like(g_first), g_second], dim=-1))
