"""Streaming inference equals the one-pass model (CPU, tiny chunks, every mixer and RC strategy).

Tolerance: the rule of tests/ops/scan_cases.py applied to the whole model. The oracle ``O`` is the
one-pass model in float64 with the reference scan computing in float64; the one-pass model in
float32 (``R``) shows what an honest same-precision run is off by; the streamed float32 result
``X`` may be at most about twice as far: ``max|X - O| <= 2 max|R - O| + 1e-6 max(1, max|O|)``.
"""

from __future__ import annotations

import functools
import importlib

import numpy as np
import pytest
import torch
from model_cases import make_model, random_bases

from genomamba.model.streaming import (
    ResidualStore,
    chunk_spans,
    streamed_embedding,
    streamed_hidden,
    streamed_per_base,
)

LENGTH = 200
CONFIGS = {
    "ps": {"rc_strategy": "ps"},
    "ps-untied": {"rc_strategy": "ps", "tie_projections": False},
    "ps-product": {"rc_strategy": "ps", "combine": "product"},
    "ph": {"rc_strategy": "ph"},
    "ph-untied-product": {"rc_strategy": "ph", "tie_projections": False, "combine": "product"},
    "none": {"rc_strategy": "none"},
    "causal": {"rc_strategy": "none", "bidirectional": False},
    "ph-ladder": {"rc_strategy": "ph", "mixer": {"decay": "ladder"}},
    "ps-scalar": {"rc_strategy": "ps", "mixer": {"decay": "scalar"}},
}
dispatch = importlib.import_module("genomamba.ops.dispatch")
reference = importlib.import_module("genomamba.ops.selective_scan_ref")


def _models(name: str):
    """(float64 oracle model, the same weights in float32), 3 layers, d_conv 4."""
    config = {**CONFIGS[name], "mixer": {"d_conv": 4, **CONFIGS[name].get("mixer", {})}}
    oracle = make_model(seed=11, dtype=torch.float64, n_layer=3, **config)
    return oracle, make_model(seed=11, dtype=torch.float32, n_layer=3, **config)


def _one_pass(model, ids) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return {"per_base": model.embed(ids), "mean": model.embed(ids, pooling="mean"),
                "center": model.embed(ids, pooling="center"), "logits": model.predict(ids).logits}


def _streamed(model, ids, chunk: int, **kw) -> dict[str, torch.Tensor]:
    per_base = np.zeros((1, ids.shape[1], model.config.d_model), np.float32)
    logits = np.zeros((1, ids.shape[1], model.config.vocab_size), np.float32)
    streamed_per_base(model, ids, per_base, chunk=chunk, device="cpu", **kw)
    streamed_per_base(model, ids, logits, chunk=chunk, device="cpu", what="logits", **kw)
    return {"per_base": torch.from_numpy(per_base), "logits": torch.from_numpy(logits),
            **{how: streamed_embedding(model, ids, chunk=chunk, device="cpu", pooling=how, **kw)
               for how in ("mean", "center")}}


def _assert_within_rule(streamed: dict, same_precision: dict, oracle: dict) -> None:
    failures = []
    for key, o in oracle.items():
        o = o.double()
        err_x = (streamed[key].double() - o).abs().max().item()
        err_r = (same_precision[key].double() - o).abs().max().item()
        bound = 2 * err_r + 1e-6 * max(1.0, o.abs().max().item())
        if not err_x <= bound:
            failures.append(f"{key}: streamed off by {err_x:.3g}, one pass by {err_r:.3g} "
                            f"(bound {bound:.3g})")
    assert not failures, "; ".join(failures)


@pytest.fixture
def float64_scans(monkeypatch):
    """While active, every scan runs the reference in float64 (the oracle's scan)."""

    def oracle_impl(name, bidirectional):
        fn = reference.bidirectional_selective_scan_ref if bidirectional else reference.selective_scan_ref
        return functools.partial(fn, compute_dtype=torch.float64)

    def use(on: bool):
        if on:
            monkeypatch.setattr(dispatch, "_impl", oracle_impl)
        else:
            monkeypatch.undo()

    return use


@pytest.mark.parametrize("name", list(CONFIGS))
def test_streaming_equals_one_pass(name, float64_scans):
    oracle_model, model = _models(name)
    ids = random_bases(1, LENGTH, seed=3)
    float64_scans(True)
    oracle = _one_pass(oracle_model, ids)
    float64_scans(False)
    _assert_within_rule(_streamed(model, ids, chunk=16), _one_pass(model, ids), oracle)


@pytest.mark.parametrize("name", ["ps-untied", "causal", "ph"])
@pytest.mark.parametrize("chunk, length", [(37, 91), (3, 40), (1000, 91)])  # not dividing L; < d_conv; one
def test_streaming_any_chunk_size(name, chunk, length, float64_scans):
    oracle_model, model = _models(name)
    ids = random_bases(1, length, seed=4)
    float64_scans(True)
    oracle = _one_pass(oracle_model, ids)
    float64_scans(False)
    _assert_within_rule(_streamed(model, ids, chunk=chunk), _one_pass(model, ids), oracle)


def test_intermediate_layer_every_pooling_and_a_batch():
    """``layer`` streams the first layers only; every fixed pooling; rows of a batch stay apart.
    Float64 models: streaming and one pass agree to the scan's fp32 state (model_cases.TOL)."""
    model = make_model(seed=5, n_layer=3, rc_strategy="ps")
    ids = random_bases(2, 57, seed=6)
    per_base = np.zeros((2, 57, model.config.d_model))
    streamed_per_base(model, ids, per_base, chunk=8, device="cpu", layer=2)
    torch.testing.assert_close(torch.from_numpy(per_base), model.embed(ids, layer=2).detach(),
                               rtol=2e-5, atol=2e-6)
    for how in ("mean", "max", "first", "last", "center"):
        got = streamed_embedding(model, ids, chunk=8, device="cpu", pooling=how, layer=2, conjoin=True)
        torch.testing.assert_close(got, model.embed(ids, pooling=how, layer=2, conjoin=True).detach(),
                                   rtol=2e-5, atol=2e-6, msg=how)


@pytest.mark.parametrize("residual", ["device", "disk"])
def test_every_residual_place_gives_the_same_result_and_leaves_no_file(tmp_path, residual):
    model = make_model(seed=7, n_layer=2, rc_strategy="ph")
    ids = random_bases(1, 64, seed=8)
    in_memory = [h for _, _, h in streamed_hidden(model, ids, chunk=10, device="cpu")]
    elsewhere = [h for _, _, h in streamed_hidden(model, ids, chunk=10, device="cpu", residual=residual,
                                                  store_dir=tmp_path)]
    assert all(torch.equal(a, b) for a, b in zip(in_memory, elsewhere, strict=True))
    assert list(tmp_path.iterdir()) == []


def test_progress_adds_up_to_the_length():
    model = make_model(seed=9, n_layer=2, rc_strategy="ph")
    done = []
    streamed_embedding(model, random_bases(1, 50, seed=1), chunk=7, device="cpu", progress=done.append)
    assert sum(done) == pytest.approx(50)


def test_chunk_spans_and_store():
    assert chunk_spans(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_spans(3, 8) == [(0, 3)]
    with pytest.raises(ValueError, match="at least 1"):
        chunk_spans(10, 0)

def test_store_in_memory_and_on_disk(tmp_path):
    for dtype in (torch.float32, torch.bfloat16):
        for where in ("memory", "pinned", "device", "disk"):
            store = ResidualStore(1, 6, 2, dtype, where=where, directory=tmp_path)
            store.write(0, torch.zeros(1, 6, 2, dtype=dtype))
            store.write(2, torch.full((1, 3, 2), 1.5, dtype=dtype))
            assert store.read(0, 6)[0, :, 1].tolist() == [0, 0, 1.5, 1.5, 1.5, 0]
            assert store.read(0, 6).dtype == dtype
            assert store.nbytes == 12 * torch.empty((), dtype=dtype).element_size()
            store.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="where must be one of"):
        ResidualStore(1, 6, 2, torch.float32, where="cloud")


def test_bad_requests_are_refused():
    model = make_model(seed=1, n_layer=2, rc_strategy="ps")
    ids = random_bases(1, 20, seed=1)
    with pytest.raises(ValueError, match="layer must be 1..2"):
        streamed_embedding(model, ids, chunk=8, device="cpu", layer=3)
    with pytest.raises(ValueError, match="out must have shape"):
        streamed_per_base(model, ids, np.zeros((1, 19, 16)), chunk=8, device="cpu")
    with pytest.raises(ValueError, match="last layer"):
        streamed_per_base(model, ids, np.zeros((1, 20, 10)), chunk=8, device="cpu", what="logits", layer=1)
    with pytest.raises(ValueError, match="unknown pooling"):
        streamed_embedding(model, ids, chunk=8, device="cpu", pooling="attention")


@pytest.mark.gpu
@pytest.mark.parametrize("overrides", [{}, {"rc_strategy": "ps", "tie_projections": False,
                                              "combine": "product"}])
def test_streaming_equals_one_pass_on_gpu_at_a_megabase(monkeypatch, overrides):
    """small-1k sizes (random weights) over 1.05 Mb with the Triton kernels, fp32: hidden states and
    masked-LM logits of the streamed pass (chunks of 256 kb, not dividing L) match the one pass."""
    from genomamba.model import GenomambaModel, preset

    monkeypatch.setenv("GENOMAMBA_SCAN_BACKEND", "triton")
    torch.manual_seed(0)
    model = GenomambaModel(preset("small-1k", **overrides)).cuda().eval()
    ids = random_bases(1, (1 << 20) + 12_345, seed=2).cuda()
    with torch.inference_mode():
        hidden = model.backbone(ids)
        logits = model.predict(ids).logits
    streamed = torch.cat([h for _, _, h in streamed_hidden(model, ids, chunk=1 << 18, device="cuda")], dim=1)
    torch.testing.assert_close(streamed, hidden, rtol=1e-4, atol=1e-4)
    del hidden, streamed
    out = np.zeros((1, ids.shape[1], model.config.vocab_size), np.float32)
    streamed_per_base(model, ids, out, chunk=1 << 18, device="cuda", what="logits")
    torch.testing.assert_close(torch.from_numpy(out), logits.float().cpu(), rtol=1e-4, atol=1e-4)
