"""The mixer's depthwise conv + SiLU + padding mask on time-major rows, with a backend per device.

``depthwise_conv_silu(x, weight, bias, anti_causal, mask)``: x (batch, length, channels) with unit
stride along channels (a slice of in_proj's output), weight (channels, 1, K) as nn.Conv1d stores
it. Returns u = silu(conv(x masked) + bias) masked, as (batch, length, channels):

* on CUDA with the Triton scan backend, the fused kernel of ``genomamba.kernels.conv_silu``:
  time-major in and out (contiguous rows, the layout the scan kernels read), no copies;
* otherwise PyTorch's conv1d on channel-major rows (one transposing copy in); the result is
  returned as a (batch, length, channels) *view* of channel-major storage, so the CPU scan keeps
  the layout it is fastest in.

Causal: ``pre[t] = sum_k w[k] x[t + k - (K-1)]``; anti-causal: ``pre[t] = sum_k w[k] x[t + k]``;
positions outside the sequence read 0, padded positions (mask False) are zeroed before the conv and
in the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genomamba.ops.dispatch import resolve_backend

__all__ = ["depthwise_conv_silu", "depthwise_conv_silu_torch"]


def depthwise_conv_silu_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                              anti_causal: bool, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The PyTorch path (any device); also the reference the Triton kernel is tested against."""
    m = None if mask is None else mask[:, None, :].to(x.dtype)
    xc = x.transpose(1, 2).contiguous()  # conv1d wants length-contiguous rows
    if m is not None:
        xc = xc * m
    k = weight.shape[-1]
    out = F.conv1d(xc, weight, bias, padding=k - 1, groups=xc.shape[1])
    out = out[..., k - 1 :] if anti_causal else out[..., : xc.shape[-1]]
    u = F.silu(out)
    if m is not None:
        u = u * m
    return u.transpose(1, 2)


def depthwise_conv_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, anti_causal: bool,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """silu(depthwise conv) on time-major rows; the fused Triton kernel wherever the scan runs Triton."""
    if x.is_cuda and x.stride(2) == 1 and resolve_backend("auto", x.device, announce=False) == "triton":
        # resolve_backend answers triton only where genomamba.kernels imports
        from genomamba.kernels.conv_silu import conv_silu_triton

        return conv_silu_triton(x, weight, bias, anti_causal=anti_causal, mask=mask)
    return depthwise_conv_silu_torch(x, weight, bias, anti_causal=anti_causal, mask=mask)
