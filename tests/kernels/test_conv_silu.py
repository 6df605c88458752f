"""The fused Triton conv + SiLU + mask against PyTorch's conv1d path: output and every gradient.

Without CUDA the kernel runs in Triton's interpreter (TRITON_INTERPRET=1, tests/conftest.py) at
small sizes; the oracle is the PyTorch path in fp64. Inputs are random (never zeros), x is a
strided slice of a wider tensor as in the mixer (in_proj's x half), lengths and channel counts
are not multiples of the kernel's tiles.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[dev]' adds it); "
                    "the Triton kernel tests need it, on CPU too (in its interpreter)")
from genomamba.kernels.conv_silu import conv_silu_triton  # noqa: E402

from genomamba.ops.conv import depthwise_conv_silu_torch  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = [
    # (batch, length, channels, K, anti_causal, bias, mask, dtype)
    (2, 1, 5, 4, False, True, False, torch.float32),
    (2, 70, 5, 4, True, True, True, torch.float32),
    (1, 130, 70, 4, False, False, True, torch.float32),
    (2, 67, 66, 3, True, True, False, torch.bfloat16),
    (1, 9, 8, 4, False, True, True, torch.bfloat16),
    # K > 4: the backward's first pass sums dw per tile (its deferred sums hold four taps)
    (1, 70, 6, 5, True, True, True, torch.float32),
]


def _inputs(batch, length, channels, k, bias, mask, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    # x rounded to the kernel's input dtype first, so the fp64 oracle sees the same values
    wide = torch.randn(batch, length, 2 * channels, generator=g, dtype=torch.float64).to(dtype).double()
    weight = 0.5 * torch.randn(channels, 1, k, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(channels, generator=g, dtype=torch.float64) if bias else None
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    m = (torch.arange(length)[None, :] < lengths[:, None]) if mask else None
    return wide, weight, b, m


@pytest.mark.parametrize("batch, length, channels, k, anti_causal, bias, mask, dtype", CASES, ids=str)
def test_fused_conv_silu_matches_pytorch(batch, length, channels, k, anti_causal, bias, mask, dtype):
    wide, weight, b, m = _inputs(batch, length, channels, k, bias, mask, dtype, seed=length * 31 + channels)
    dev = lambda t, dt=dtype: None if t is None else t.to(DEVICE, dt).requires_grad_(t.is_floating_point())  # noqa: E731

    x_k, w_k, b_k = dev(wide), dev(weight, torch.float32), dev(b, torch.float32)
    m_k = None if m is None else m.to(DEVICE)
    u_k = conv_silu_triton(x_k[..., :channels], w_k, b_k, anti_causal, m_k)
    x_r, w_r, b_r = (None if t is None else t.clone().requires_grad_() for t in (wide, weight, b))
    u_r = depthwise_conv_silu_torch(x_r[..., :channels], w_r, b_r, anti_causal, m)

    du = torch.randn(u_r.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    du = du.to(dtype).double()
    grads_k = torch.autograd.grad(u_k, [t for t in (x_k, w_k, b_k) if t is not None], du.to(DEVICE, dtype))
    grads_r = torch.autograd.grad(u_r, [t for t in (x_r, w_r, b_r) if t is not None], du)
    # The kernel computes in fp32 and rounds u and dx to the input dtype once (one unit of that
    # dtype, two for the interpreter's truncating casts); dw and dbias stay fp32 sums.
    names = ("u", "dx", "dw", "dbias")[: 1 + len(grads_r)]
    for name, got, want in zip(names, (u_k, *grads_k), (u_r, *grads_r), strict=True):
        scale = want.abs().max().item() + 1e-30
        tol = 2 * torch.finfo(dtype).eps if name in ("u", "dx") and dtype != torch.float32 else 1e-5
        err = (got.double().cpu() - want).abs().max().item() / scale
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.1e}"
    if m is not None:  # padded positions produce exactly zero and pass no gradient to x
        assert (u_k.cpu()[~m] == 0).all()
        assert (grads_k[0][..., :channels].cpu()[~m] == 0).all()


def test_rejects_channel_major_input():
    x = torch.randn(1, 4, 8).transpose(1, 2)  # (batch 1, length 8, channels 4), channel stride 8
    with pytest.raises(ValueError, match="unit channel stride"):
        conv_silu_triton(x, torch.randn(4, 1, 4), None, False)


@pytest.mark.gpu
@pytest.mark.parametrize("anti_causal", [False, True])
def test_fused_conv_silu_at_model_size_on_gpu(anti_causal):
    """A base-131k-sized stream (channels 512 of in_proj's 1024 columns, length 4097, bf16, padded)."""
    wide, weight, b, m = _inputs(2, 4097, 512, 4, True, True, torch.bfloat16, seed=4097)
    x = wide.cuda().to(torch.bfloat16)[..., :512]
    w, bias, mask = weight.cuda().float(), b.cuda().float(), m.cuda()
    got = conv_silu_triton(x, w, bias, anti_causal, mask).double()
    want = depthwise_conv_silu_torch(x.double(), w.double(), bias.double(), anti_causal, mask)
    assert (got - want).abs().max() <= 2 * torch.finfo(torch.bfloat16).eps * want.abs().max()
