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
    device_bytes_per_position,
    format_bytes,
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


def test_format_bytes():
    assert format_bytes(512) == "512 bytes"
    assert format_bytes(3 << 30) == "3.0 GiB"


def _model(name: str = "small-1k", **overrides) -> GenomambaModel:
    return GenomambaModel(preset(name, **overrides))


def test_cpu_plan_uses_the_fixed_chunk_or_the_one_given():
    model = _model("tiny")
    plan = plan_stream(model, torch.device("cpu"))
    assert plan.chunk == CPU_CHUNK and plan.budget is None
    assert "chunks of 1,048,576 bases" in plan.describe()
    assert plan_stream(model, torch.device("cpu"), chunk=5000).chunk == 5000
    assert plan_stream(model, torch.device("cpu"), longest=300).chunk == 300


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
    assert plan.budget == int(0.8 * (10 << 30)) and plan.device_bytes <= plan.budget
    # bf16 activations on CUDA (fp32 residual rows): a chunk holds more positions than with fp32 ones
    assert plan.chunk > 1.3 * plan_stream(model, torch.device("cpu"), max_device_bytes=plan.budget).chunk


def test_estimate_grows_with_what_a_layer_holds():
    one = device_bytes_per_position(preset("small-1k", rc_strategy="ph"), 2)
    two_strands = device_bytes_per_position(preset("small-1k", rc_strategy="ps"), 2)
    untied = device_bytes_per_position(preset("small-1k", tie_projections=False), 2)
    causal = device_bytes_per_position(preset("small-1k", rc_strategy="none", bidirectional=False), 2)
    assert two_strands > 1.9 * one and untied > one > causal


def test_residual_goes_to_disk_when_memory_would_not_hold_it(monkeypatch, tmp_path):
    monkeypatch.setattr(memory_plan, "host_available_bytes", lambda: 1 << 30)
    assert place_residual(100 << 20, "auto", tmp_path) is False
    assert place_residual(100 << 20, "disk", tmp_path) is True
    assert place_residual(1 << 30, "auto", tmp_path) is True
    assert place_residual(1 << 30, "memory", tmp_path) is False  # asked for: the allocator will tell
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(memory_plan.shutil, "disk_usage", lambda path: usage(1 << 40, 0, 1 << 29))
    with pytest.raises(UnavailableError, match=r"needs 1\.0 GiB.*512\.0 MiB free on the disk"):
        place_residual(1 << 30, "auto", tmp_path)
