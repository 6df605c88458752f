"""The Caduceus peer of benchmarks/caduceus_peer.py, on CPU: parameter count, RC equivariance, both norms.

Needs the mamba-ssm sdist in .carry/ and einops (installed or as a wheel in .whl/), which are not in
git: skipped without them. mamba_ssm's CUDA scan is replaced by the CPU stand-in (genomamba's
reference scan) and its Triton RMSNorm runs in Triton's interpreter.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from pathlib import Path

import pytest
import torch

# one autotune config for mamba_ssm's Triton norm (the interpreter cannot benchmark); read when
# mamba_ssm's layer_norm module is imported, which happens first in this module.
os.environ.setdefault("MAMBA_DETERMINISTIC", "1")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
SDIST = REPO / ".carry" / "mamba_ssm-2.3.2.post1.tar.gz"

import caduceus_peer as cp  # noqa: E402

from genomamba.model import build_model, preset  # noqa: E402

pytestmark = pytest.mark.skipif(not SDIST.exists(), reason="mamba-ssm sdist not in .carry/")

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    lib = cp.load_mamba(SDIST, tmp_path_factory.mktemp("peer"), CPU, REPO / ".whl")
    if lib is None:
        pytest.skip("mamba_ssm's Mamba does not import here (einops missing?)")
    assert lib.scan == "cpu-reference-stand-in" and lib.fused_path is False
    return lib


def _tiny(lib, **changes):
    torch.manual_seed(0)
    return cp.build_peer(cp.peer_config_from(preset("tiny"), **changes), lib, CPU)


def test_parameter_count_matches_the_issue(lib):
    cfg = cp.peer_config_from(preset("base-131k"))
    assert cfg.padded_vocab == 16
    assert cp.build_peer(cfg, lib, CPU).num_parameters() == cp.PEER_PARAMETERS == 7_729_408
    tied = cp.peer_config_from(preset("base-131k"), tie_lm_head=True)
    assert cp.build_peer(tied, lib, CPU).num_parameters() == 7_729_408 - 16 * 256
    assert build_model("base-131k").num_parameters() == 7_723_786


def test_directions_share_projections_only(lib):
    mixer = _tiny(lib).layers[0].mixer
    assert mixer.mamba_rev.in_proj.weight is mixer.mamba_fwd.in_proj.weight
    assert mixer.mamba_rev.out_proj.weight is mixer.mamba_fwd.out_proj.weight
    assert mixer.mamba_rev.conv1d.weight is not mixer.mamba_fwd.conv1d.weight
    assert mixer.mamba_rev.A_log is not mixer.mamba_fwd.A_log


def test_logits_are_rc_equivariant(lib):
    model = _tiny(lib, n_layer=1).eval()
    assert cp.rc_equivariance_error(model, 16) < 1e-5
    # the check can fail: without the vocabulary complement the two strands disagree
    ids = torch.tensor([[5, 6, 7, 8, 9, 5, 5, 6, 8, 8, 7, 6]])
    with torch.no_grad():
        a, b = model(ids), model(model.complement[ids.flip(-1)])
    assert (b - a.flip(1)).abs().max() > 1e-3


def test_one_strand_peer_is_the_two_strand_peer_without_its_rc_half(lib):
    """PS logits[i, v] = one-strand logits(x)[i, v] + one-strand logits(RC x)[L-1-i, comp(v)]."""
    ps = _tiny(lib, n_layer=1).eval()
    ph = _tiny(lib, n_layer=1, strands=1).eval()
    ph.load_state_dict(ps.state_dict())
    assert ph.num_parameters() == ps.num_parameters()
    ids = torch.tensor([[5, 6, 7, 8, 9, 5, 5, 6, 8, 8, 7, 6]])
    with torch.no_grad():
        both = ps(ids)
        fwd, rc = ph(ids), ph(ps.complement[ids.flip(-1)])
    torch.testing.assert_close(both, fwd + rc.flip(1)[..., ps.complement], rtol=1e-5, atol=1e-5)


@pytest.fixture
def triton_norm_on_cpu(monkeypatch):
    """mamba_ssm's norm enters torch.cuda.device() and reads the SM count; make both harmless on CPU."""
    monkeypatch.setattr(torch.cuda, "device", lambda *a, **k: contextlib.nullcontext())
    props = types.SimpleNamespace(multi_processor_count=2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a: props)


def test_triton_norm_matches_torch_norm(lib, triton_norm_on_cpu):
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("needs Triton's interpreter")
    ref = _tiny(lib, norm="torch", n_layer=1)  # the interpreter runs one program per position: keep it short
    tri = _tiny(lib, norm="triton", n_layer=1)
    tri.load_state_dict(ref.state_dict())
    ids = torch.tensor([[5, 6, 7, 8, 1, 5, 9, 6]])
    labels = torch.where(ids == 1, torch.tensor(7), torch.tensor(-100))
    out = {}
    for name, model in (("torch", ref), ("triton", tri)):
        logits = model(ids)
        model.loss(logits, labels).backward()
        out[name] = (logits.detach(), model.layers[0].mixer.mamba_fwd.in_proj.weight.grad)
    torch.testing.assert_close(out["triton"][0], out["torch"][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["triton"][1], out["torch"][1], rtol=1e-3, atol=1e-5)


def test_checkpointing_gives_the_same_gradients_and_training_lowers_the_loss(lib):
    from bench_util import make_adamw, mlm_batch

    from genomamba.train.optimizer import param_groups

    plain, ckpt = _tiny(lib, n_layer=1), _tiny(lib, n_layer=1, gradient_checkpointing=True)
    inputs, labels = mlm_batch(2, 32, 0, CPU)
    for model in (plain, ckpt):
        model.loss(model(inputs), labels).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)

    opt, _ = make_adamw(param_groups(plain, 0.1), 3e-3, CPU)
    losses = []
    for _ in range(6):
        opt.zero_grad(set_to_none=True)
        loss = plain.loss(plain(inputs), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses
