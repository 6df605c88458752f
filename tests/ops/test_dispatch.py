"""Backend choice: auto → chunked on CPU, environment override, loud fallback, UnavailableError for triton."""

from __future__ import annotations

import importlib
import json
import logging
import warnings

import pytest
import torch

from genomamba.errors import EXIT_UNAVAILABLE, UnavailableError
from genomamba.ops import backend_report, bidirectional_selective_scan, dispatch, selective_scan
from tests.ops.scan_cases import make_case, make_inputs

# the module itself (genomamba.ops re-exports functions whose names equal their modules')
chunked_mod = importlib.import_module("genomamba.ops.selective_scan_chunked")


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    dispatch._reset_cache()
    yield
    dispatch._reset_cache()


@pytest.fixture
def no_kernel(monkeypatch):
    missing = dispatch.TritonKernels(None, None, "ImportError: no kernel here")
    monkeypatch.setattr(dispatch, "_load_triton", lambda: missing)


@pytest.fixture
def fake_kernel(monkeypatch):
    calls = []

    def uni(*a, **k):
        calls.append("uni")
        return "triton-uni"

    def bi(*a, **k):
        calls.append("bi")
        return "triton-bi"

    monkeypatch.setattr(dispatch, "_load_triton", lambda: dispatch.TritonKernels(uni, bi, None))
    return calls


def _args():
    i = make_inputs(make_case(dim=4, length=9))
    return i, (i["u"], i["delta"], i["A"], i["B"], i["C"], i["D"], i["z"], i["delta_bias"], True)


def test_auto_on_cpu_runs_chunked(monkeypatch):
    seen = []
    real = chunked_mod.selective_scan_chunked

    def spy(*a, **k):
        seen.append(k)
        return real(*a, **k)

    monkeypatch.setattr(chunked_mod, "selective_scan_chunked", spy)
    assert dispatch.resolve_backend("auto", "cpu") == "chunked"
    i, args = _args()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on the normal path
        y = selective_scan(*args)
    assert len(seen) == 1
    torch.testing.assert_close(y, selective_scan(*args, backend="reference"), rtol=1e-5, atol=1e-5)


def test_bidirectional_dispatch_matches_reference():
    _, args = _args()
    torch.testing.assert_close(
        bidirectional_selective_scan(*args),
        bidirectional_selective_scan(*args, backend="reference"),
        rtol=1e-5,
        atol=1e-5,
    )


def test_environment_overrides_auto_but_not_an_explicit_backend(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "reference")
    assert dispatch.resolve_backend("auto", "cpu") == "reference"
    assert dispatch.resolve_backend("chunked", "cpu") == "chunked"
    monkeypatch.setenv(dispatch.ENV_VAR, "Chunked ")
    assert dispatch.resolve_backend("auto", "cuda") == "chunked"


def test_bad_backend_names_are_value_errors(monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        dispatch.resolve_backend("cuda", "cpu")
    monkeypatch.setenv(dispatch.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="GENOMAMBA_SCAN_BACKEND='fast'"):
        dispatch.resolve_backend("auto", "cpu")


def test_explicit_triton_on_cpu_raises_unavailable(fake_kernel):
    _, args = _args()
    with pytest.raises(UnavailableError, match="needs CUDA tensors") as exc:
        selective_scan(*args, backend="triton")
    assert exc.value.exit_code == EXIT_UNAVAILABLE == 69
    assert fake_kernel == []


def test_triton_from_environment_on_cpu_raises(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    with pytest.raises(UnavailableError, match="GENOMAMBA_SCAN_BACKEND=triton"):
        dispatch.resolve_backend("auto", "cpu")


def test_explicit_triton_without_kernel_raises(no_kernel):
    with pytest.raises(UnavailableError, match="does not import .*no kernel here"):
        dispatch.resolve_backend("triton", "cuda")


def test_auto_fallback_on_cuda_is_loud(no_kernel, caplog):
    with caplog.at_level(logging.WARNING, logger="genomamba.ops.dispatch"):
        with pytest.warns(RuntimeWarning, match="falling back to the chunked PyTorch scan"):
            assert dispatch.resolve_backend("auto", "cuda") == "chunked"
        with pytest.warns(RuntimeWarning, match="no kernel here"):
            assert dispatch.resolve_backend("auto", torch.device("cuda", 0)) == "chunked"
    logged = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(logged) == 1  # logged once, warned on every call


def test_auto_on_cuda_picks_triton_when_it_imports(fake_kernel):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dispatch.resolve_backend("auto", "cuda") == "triton"
    assert dispatch._impl("triton", bidirectional=True)() == "triton-bi"


def test_the_kernel_module_named_in_messages_is_the_one_imported():
    pytest.importorskip("triton")
    kernels = dispatch._load_triton()
    assert kernels.error is None, kernels.error
    assert kernels.scan.__module__ == kernels.bidirectional_scan.__module__ == dispatch._KERNEL_MODULE
    assert dispatch._impl("triton", bidirectional=False) is kernels.scan


def test_real_kernel_import_failure_is_reported_not_raised():
    # Whatever the state of genomamba.kernels on this machine, the report must be complete and JSON-able.
    report = backend_report()
    json.dumps(report)
    assert report["cpu"]["backend"] == "chunked"
    assert report["cuda"]["backend"] in ("triton", "chunked")
    assert set(report) >= {
        "cuda_available",
        "triton_version",
        "kernel_importable",
        "kernel_error",
        "env_override",
    }
    assert report["kernel_importable"] == (report["kernel_error"] is None)


def test_report_names_fallback_reason_and_override(no_kernel, monkeypatch):
    report = backend_report()
    assert report["cuda"] == {
        "backend": "chunked",
        "reason": "Triton kernel unavailable (ImportError: no kernel here); would fall back with a warning",
    }
    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    report = backend_report()
    assert report["env_override"] == "triton"
    assert report["cpu"]["backend"] is None and "needs CUDA" in report["cpu"]["reason"]


@pytest.mark.gpu
def test_auto_on_cuda_runs_triton_without_warning_and_matches_reference():
    dispatch._reset_cache()
    assert dispatch.resolve_backend("auto", "cuda") == "triton", backend_report()
    i, args = _args()
    cuda_args = [a.detach().cuda() if isinstance(a, torch.Tensor) else a for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = selective_scan(*cuda_args)
    assert y.is_cuda
    y_ref = selective_scan(*args, backend="reference").detach()
    torch.testing.assert_close(y.cpu(), y_ref, rtol=1e-4, atol=1e-4)
