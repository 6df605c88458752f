"""The model on CUDA with the Triton scan: same answers as the CPU-path backend, and the core
properties (RC equivariance, padding invariance, checkpointing) hold there too."""

from __future__ import annotations

import pytest
import torch
from model_cases import pad_batch, random_bases, tiny_config

from genomamba.model import GenomambaModel
from genomamba.model.rc import flip_real, permute_vocab, reverse_complement_ids

pytestmark = pytest.mark.gpu
GPU_TOL = {"rtol": 2e-4, "atol": 2e-4}
LENGTHS = [64, 41, 7]


def _model(**overrides) -> GenomambaModel:
    torch.manual_seed(0)
    return GenomambaModel(tiny_config(d_model=32, **overrides)).cuda().eval()


def _batch():
    ids, mask = pad_batch([random_bases(1, n, seed=n)[0] for n in LENGTHS], 64)
    return ids.cuda(), mask.cuda(), torch.tensor(LENGTHS, device="cuda")


def _run(model, ids, mask, backend, monkeypatch):
    monkeypatch.setenv("GENOMAMBA_SCAN_BACKEND", backend)
    model.zero_grad(set_to_none=True)
    out = model(ids, mask, labels=ids)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("overrides", [{"rc_strategy": "ps"}, {"rc_strategy": "ph", "tie_projections": False,
                                                                "combine": "product"},
                                       {"rc_strategy": "ps", "mixer": {"decay": "ladder"}},
                                       {"rc_strategy": "ph", "mixer": {"decay": "scalar"}}])
def test_triton_matches_reference_backend(monkeypatch, overrides):
    model = _model(**overrides).train()
    ids, mask, _ = _batch()
    logits_t, grads_t = _run(model, ids, mask, "triton", monkeypatch)
    logits_r, grads_r = _run(model, ids, mask, "reference", monkeypatch)
    real = mask.bool()
    torch.testing.assert_close(logits_t[real], logits_r[real], **GPU_TOL)
    for name, g in grads_r.items():
        torch.testing.assert_close(grads_t[name], g, rtol=1e-3, atol=1e-4, msg=name)


def test_ps_equivariance_and_padding_on_gpu(monkeypatch):
    monkeypatch.setenv("GENOMAMBA_SCAN_BACKEND", "triton")
    model = _model(rc_strategy="ps")
    ids, mask, lengths = _batch()
    table = model.backbone.complement
    with torch.no_grad():
        out = model(ids, mask).logits
        out_rc = model(reverse_complement_ids(ids, lengths, table), mask).logits
        expected = permute_vocab(flip_real(out, lengths), table)
        for i, n in enumerate(LENGTHS):
            torch.testing.assert_close(out_rc[i, :n], expected[i, :n], **GPU_TOL)
            torch.testing.assert_close(out[i, :n], model(ids[i : i + 1, :n]).logits[0], **GPU_TOL)


def test_checkpointing_and_bf16_on_gpu(monkeypatch):
    monkeypatch.setenv("GENOMAMBA_SCAN_BACKEND", "triton")
    model = _model(rc_strategy="ph").train()
    ids, mask, _ = _batch()
    _, plain = _run(model, ids, mask, "triton", monkeypatch)
    model.backbone.gradient_checkpointing = True
    _, ckpt = _run(model, ids, mask, "triton", monkeypatch)
    for name, g in plain.items():
        torch.testing.assert_close(ckpt[name], g, rtol=1e-5, atol=1e-6, msg=name)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(ids, mask, labels=ids)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
