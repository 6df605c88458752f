"""The conv + SiLU + mask op of the mixer: its PyTorch path against the equations, and the dispatch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genomamba.ops.conv import depthwise_conv_silu, depthwise_conv_silu_torch


def test_causal_and_anti_causal_taps_match_the_equations():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 3, dtype=torch.float64)  # (batch, L, channels), time-major rows
    w = torch.randn(3, 1, 4, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    causal = depthwise_conv_silu_torch(x, w, b, anti_causal=False)
    anti = depthwise_conv_silu_torch(x, w, b, anti_causal=True)
    xp = F.pad(x, (0, 0, 3, 3))  # x[t] sits at xp[:, t + 3]
    for t in range(9):
        want_c = sum(w[:, 0, k] * xp[:, t + k] for k in range(4)) + b  # x[t + k - 3]
        want_a = sum(w[:, 0, k] * xp[:, t + k + 3] for k in range(4)) + b  # x[t + k]
        torch.testing.assert_close(causal[:, t], F.silu(want_c))
        torch.testing.assert_close(anti[:, t], F.silu(want_a))


def test_mask_zeroes_padded_inputs_and_outputs():
    torch.manual_seed(1)
    x = torch.randn(1, 8, 2, dtype=torch.float64)
    w, b = torch.randn(2, 1, 4, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    mask = torch.arange(8)[None, :] < 5
    got = depthwise_conv_silu_torch(x, w, b, anti_causal=True, mask=mask)
    # the anti-causal conv of the first 5 positions must not see positions 5..7
    want = depthwise_conv_silu_torch(x[:, :5], w, b, anti_causal=True)
    torch.testing.assert_close(got[:, :5], want)
    assert (got[:, 5:] == 0).all()


def test_cpu_tensors_take_the_pytorch_path_and_keep_the_channel_major_layout():
    x = torch.randn(2, 6, 4)
    u = depthwise_conv_silu(x, torch.randn(4, 1, 4), None, anti_causal=False)
    assert u.shape == (2, 6, 4) and u.transpose(1, 2).is_contiguous()
