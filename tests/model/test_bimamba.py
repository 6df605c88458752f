"""BiMamba equals the Caduceus construction (two Mamba mixers, the second on the flipped sequence),
without flipping anything; strands and padding; the residual block."""

from __future__ import annotations

import copy

import pytest
import torch
from model_cases import TOL, tiny_config

from genomamba.model import MixerConfig, bimamba, mixer
from genomamba.model.bimamba import BiMambaMixer, Block
from genomamba.model.mixer import MambaMixer

CFG = MixerConfig(d_state=4)
D = 16


def _bimamba(tie=True, combine="sum", seed=0):
    torch.manual_seed(seed)
    m = BiMambaMixer(D, CFG, tie_projections=tie, combine=combine).double()
    with torch.no_grad():  # non-trivial D and conv bias so every parameter matters
        for d in (m.fwd, m.rev):
            d.D.uniform_(0.5, 1.5)
            d.conv1d.bias.uniform_(-0.5, 0.5)
    return m


def _as_mamba(bm: BiMambaMixer, direction: str) -> MambaMixer:
    """A unidirectional Mamba with one direction's weights, as Caduceus would hold it."""
    m = MambaMixer(D, CFG).double()
    rev = direction == "rev"
    m.in_proj = copy.deepcopy(bm.in_proj_rev if rev and not bm.tie_projections else bm.in_proj)
    m.out_proj = copy.deepcopy(bm.out_proj_rev if rev and not bm.tie_projections else bm.out_proj)
    m.fwd = copy.deepcopy(getattr(bm, direction))
    if rev:  # our anti-causal taps read x[t + k]; a causal conv on the flipped sequence reads them mirrored
        with torch.no_grad():
            m.fwd.conv1d.weight.copy_(m.fwd.conv1d.weight.flip(-1))
    return m


def _caduceus(bm: BiMambaMixer, x: torch.Tensor, mask=None) -> torch.Tensor:
    fwd, rev = _as_mamba(bm, "fwd"), _as_mamba(bm, "rev")
    a = fwd(x, mask)
    b = rev(x.flip(1), None if mask is None else mask.flip(1)).flip(1)
    return a + b if bm.combine == "sum" else a * b


ALL_VARIANTS = [(True, "sum"), (True, "product"), (False, "sum"), (False, "product")]


@pytest.mark.parametrize("tie, combine", ALL_VARIANTS)
def test_matches_flip_construction(tie, combine):
    bm = _bimamba(tie, combine)
    x = torch.randn(2, 33, D, dtype=torch.float64)
    torch.testing.assert_close(bm(x), _caduceus(bm, x), **TOL)


@pytest.mark.parametrize("tie, combine", [(True, "sum"), (False, "product")])
def test_no_activation_is_flipped(monkeypatch, tie, combine):
    """The mixer's own code never calls flip (what a scan backend does inside is its business)."""
    bm = _bimamba(tie, combine)
    x = torch.randn(2, 20, D, dtype=torch.float64)
    want = _caduceus(bm, x)
    real = (torch.flip, torch.Tensor.flip)

    def refuse(*args, **kwargs):
        raise AssertionError("flip called inside BiMambaMixer.forward")

    def scan_may_flip(fn):
        def call(*args, **kwargs):
            torch.flip, torch.Tensor.flip = real
            try:
                return fn(*args, **kwargs)
            finally:
                torch.flip, torch.Tensor.flip = refuse, refuse
        return call

    # the mixer scans through bidirectional_selective_scan, or through mixer.scan's selective_scan
    for module, name in ((bimamba, "bidirectional_selective_scan"), (mixer, "selective_scan")):
        monkeypatch.setattr(module, name, scan_may_flip(getattr(module, name)))
    monkeypatch.setattr(torch, "flip", refuse)
    monkeypatch.setattr(torch.Tensor, "flip", refuse)
    got = bm(x)
    monkeypatch.undo()
    torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("t", [0, 9, 19])
def test_every_position_sees_both_sides(t):
    bm = _bimamba()
    x = torch.randn(1, 20, D, dtype=torch.float64)
    x2 = x.clone()
    x2[:, t] += 1.0
    changed = (bm(x) - bm(x2)).abs().amax(-1)[0]
    assert bool((changed > 0).all())


@pytest.mark.parametrize("tie, combine", [(True, "sum"), (False, "product")])
def test_second_strand_reads_the_mixer_mirrored(tie, combine):
    """Strand 1 holds the RC strand at forward positions: the same mixer read right to left."""
    bm = _bimamba(tie, combine)
    h = torch.randn(2, 25, 2, D, dtype=torch.float64)
    out = bm(h)
    torch.testing.assert_close(out[:, :, 0], bm(h[:, :, 0]), **TOL)
    torch.testing.assert_close(out[:, :, 1], bm(h[:, :, 1].flip(1)).flip(1), **TOL)


@pytest.mark.parametrize("strands", [1, 2])
def test_padding_does_not_leak_into_real_positions(strands, monkeypatch):
    monkeypatch.setenv("GENOMAMBA_SCAN_BACKEND", "reference")  # sequential: garbage must change no bit
    bm = _bimamba()
    n, length = 17, 30
    h = torch.randn(2, length, strands, D, dtype=torch.float64)
    mask = (torch.arange(length)[None] < n).expand(2, -1)
    padded = bm(h, mask)[:, :n]
    alone = bm(h[:, :n])
    torch.testing.assert_close(padded, alone, **TOL)
    h2 = h.clone()
    h2[:, n:] = 1e3 * torch.randn_like(h2[:, n:])  # loud garbage at padded positions changes nothing
    torch.testing.assert_close(bm(h2, mask)[:, :n], padded, rtol=0, atol=0)


def test_block_keeps_fp32_residual_under_autocast():
    torch.manual_seed(0)
    block = Block(tiny_config(d_model=D))
    h = torch.randn(2, 12, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(h)
    assert out.dtype == torch.float32 and out.shape == h.shape and torch.isfinite(out).all()
