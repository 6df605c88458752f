"""The memory plan of a streaming run: sizes, chunk choice against a budget, where the residual lives."""

from __future__ import annotations

import collections

import pytest
import torch

from genomamba.errors import UnavailableError
from genomamba.infer import memory_plan
from genomamba.infer.memory_plan import (
    CPU_CHUNK,
    MIN_CHUNK,
    MIN_RESIDENT_CHUNK,
    Placement,
    device_bytes_per_position,
    parse_size,
    place_residual,
    plan_stream,
)
from genomamba.model import GenomambaModel, preset


@pytest.mark.parametrize("text, size", [("20G", 20 << 30), ("20GiB", 20 << 30), ("20GB", 20 * 10**9),
                                        ("512m", 512 << 20), ("1.5T", int(1.5 * (1 << 40))), ("1000", 1000),
                                        (" 64 KiB ", 64 << 10)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "20 parsecs", "-1G", "0"])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(ValueError):
        parse_size(text)


def _model(name: str = "small-1k", **overrides) -> GenomambaModel:
    return GenomambaModel(preset(name, **overrides))


def test_cpu_plan_uses_the_fixed_chunk_or_the_one_given(monkeypatch):
    model = _model("tiny")
    monkeypatch.setattr(memory_plan, "host_available_bytes", lambda: 1 << 40)
    plan = plan_stream(model, torch.device("cpu"))
    assert plan.chunk == CPU_CHUNK and plan.budget is None
    assert "chunks of 1,048,576 bases" in plan.describe()
    assert plan_stream(model, torch.device("cpu"), chunk=5000).chunk == 5000
    assert plan_stream(model, torch.device("cpu"), longest=300).chunk == 300
    # a host with little memory gets smaller chunks: their activations in a quarter of it
    monkeypatch.setattr(memory_plan, "host_available_bytes", lambda: 4 << 30)
    small = plan_stream(_model(), torch.device("cpu"))
    assert MIN_CHUNK <= small.chunk < CPU_CHUNK and small.device_bytes <= 1 << 30


def test_plan_fits_the_budget_and_refuses_one_too_small():
    model = _model()
    budget = 2 << 30
    plan = plan_stream(model, torch.device("cpu"), max_device_bytes=budget)
    step = 4096 * device_bytes_per_position(model.config, 4)  # chunks are multiples of 4096
    assert plan.device_bytes <= budget < plan.device_bytes + 2 * step
    assert plan.chunk % 4096 == 0 and "--max-gpu-memory" in plan.describe()
    with pytest.raises(UnavailableError, match="raise --max-gpu-memory"):
        plan_stream(model, torch.device("cpu"), max_device_bytes=MIN_CHUNK * 100)


def test_cuda_plan_takes_80_percent_of_the_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 << 30, 80 << 30))
    model = _model("base-131k")
    plan = plan_stream(model, torch.device("cuda"))
    assert plan.on_cuda and plan.weights == 4 * model.num_parameters()
    assert plan.budget == int(0.8 * (10 << 30)) and plan.device_bytes <= plan.budget
    # bf16 activations on CUDA (fp32 residual rows): a chunk holds more positions than with fp32 ones
    assert plan.chunk > 1.3 * plan_stream(model, torch.device("cpu"), max_device_bytes=plan.budget).chunk


def test_estimate_grows_with_what_a_layer_holds():
    one = device_bytes_per_position(preset("small-1k", rc_strategy="ph"), 2)
    two_strands = device_bytes_per_position(preset("small-1k", rc_strategy="ps"), 2)
    untied = device_bytes_per_position(preset("small-1k", tie_projections=False), 2)
    causal = device_bytes_per_position(preset("small-1k", rc_strategy="none", bidirectional=False), 2)
    assert two_strands > 1.9 * one and untied > one > causal


def _cuda_plan(monkeypatch, free: int, **kw):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 << 30))
    return plan_stream(_model(), torch.device("cuda"), **kw)


def test_a_record_stays_on_the_gpu_when_it_fits_with_a_smaller_chunk(monkeypatch, tmp_path):
    plan = _cuda_plan(monkeypatch, 25 << 30, max_device_bytes=20 << 30)
    one_mb = 1 << 20
    one = place_residual(one_mb * 1024, "auto", tmp_path, plan)  # 1 Mb of a 256-wide fp32 stream
    eight = place_residual(8 * one_mb * 1024, "auto", tmp_path, plan)
    assert one.where == eight.where == "device"
    assert MIN_RESIDENT_CHUNK <= eight.chunk < one.chunk < plan.chunk  # the budget's room left for a chunk
    assert plan.weights + 8 * one_mb * 1024 + eight.chunk * plan.per_position <= plan.budget
    # 70 Mb: host memory, page-locked when the rounded-up block (128 GiB) leaves the host room
    monkeypatch.setattr(memory_plan, "host_available_bytes", lambda: 128 << 30)
    assert place_residual(70 * one_mb * 1024, "auto", tmp_path, plan) == Placement("memory", plan.chunk)
    monkeypatch.setattr(memory_plan, "host_available_bytes", lambda: 500 << 30)
    assert place_residual(70 * one_mb * 1024, "auto", tmp_path, plan) == Placement("pinned", plan.chunk)
    assert place_residual(one_mb * 1024, "memory", tmp_path, plan) == Placement("pinned", plan.chunk)


def test_residual_goes_to_disk_when_memory_would_not_hold_it(monkeypatch, tmp_path):
    plan = plan_stream(_model("tiny"), torch.device("cpu"), chunk=1000)
    monkeypatch.setattr(memory_plan, "host_available_bytes", lambda: 1 << 30)
    assert place_residual(100 << 20, "auto", tmp_path, plan) == Placement("memory", 1000)
    assert place_residual(100 << 20, "disk", tmp_path, plan).where == "disk"
    assert place_residual(1 << 30, "auto", tmp_path, plan).where == "disk"
    assert place_residual(1 << 30, "memory", tmp_path, plan).where == "memory"  # asked: allocators will tell
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(memory_plan.shutil, "disk_usage", lambda path: usage(1 << 40, 0, 1 << 29))
    with pytest.raises(UnavailableError, match=r"needs 1\.0 GiB.*512\.0 MiB free on the disk"):
        place_residual(1 << 30, "auto", tmp_path, plan)
