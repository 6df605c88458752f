"""Resume state as bounded files: every file within the limit, tensors split and rebuilt bit for
bit, plain values back with their exact types, and nothing stored that would need pickle."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from state_cases import assert_same

from genomamba.train.state_files import (
    MANIFEST_FILE,
    MIN_PART_LIMIT,
    STRUCTURE_FILE,
    read_state_files,
    write_state_files,
)

LIMIT = 64 * 1024


def _tensor_nodes(node):
    """Every ``$tensor`` entry of a ``state.json`` structure."""
    if isinstance(node, dict):
        if "$tensor" in node:
            yield node["$tensor"]
        else:
            for value in node.values():
                yield from _tensor_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tensor_nodes(value)


def _round_trip(tmp_path, state, limit=LIMIT):
    written = write_state_files(tmp_path, state, limit)
    assert sorted(written) == sorted(tmp_path.iterdir()) and written[-1].name == MANIFEST_FILE
    assert all(path.stat().st_size <= limit for path in written), [p.stat().st_size for p in written]
    return read_state_files(tmp_path)


def test_a_tensor_larger_than_the_limit_is_split_and_rebuilt(tmp_path):
    generator = torch.Generator().manual_seed(0)
    big = torch.randint(0, 2**32, (300, 257), generator=generator, dtype=torch.int64).to(torch.int32)
    big = big.view(torch.float32)  # random bit patterns: NaN payloads, denormals, -0.0 among them
    state = {
        "small": torch.arange(10, dtype=torch.int64),
        "big": big,  # 308,400 bytes: five limits' worth
        "strided": torch.arange(40_000, dtype=torch.float64).reshape(200, 200).t(),  # not contiguous
        "half": torch.randn(3, 5, generator=generator).to(torch.bfloat16),
        "flags": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }
    loaded = _round_trip(tmp_path, state)
    assert_same(state, loaded)
    structure = json.loads((tmp_path / STRUCTURE_FILE).read_text())
    nodes = {n["pieces"][0].split("#")[0]: n for n in _tensor_nodes(structure)}
    assert len(nodes["state/big"]["pieces"]) >= 5 and len(nodes["state/strided"]["pieces"]) >= 5
    assert nodes["state/small"]["pieces"] == ["state/small"]  # tensors that fit are stored whole
    assert len(list(tmp_path.glob("part-*.safetensors"))) >= 10


@pytest.mark.parametrize("seed", range(4))
def test_random_tensor_sizes_pack_within_the_limit(tmp_path, seed):
    rng = np.random.default_rng(seed)
    dtypes = [torch.float32, torch.bfloat16, torch.int64, torch.uint8, torch.float64]
    state = [torch.full((int(rng.integers(0, 6_000)),), float(i), dtype=dtypes[i % 5]) for i in range(30)]
    assert_same(state, _round_trip(tmp_path, state, limit=MIN_PART_LIMIT * 4))


def test_a_structure_larger_than_the_limit_is_refused(tmp_path):
    with pytest.raises(ValueError, match="state.json would take"):
        write_state_files(tmp_path, {str(i): torch.ones(1) for i in range(200)}, MIN_PART_LIMIT)


def test_plain_values_come_back_with_their_types(tmp_path):
    shared = torch.ones(4)
    module_state = OrderedDict(weight=shared, bias=torch.zeros(2))
    module_state._metadata = OrderedDict({"": {"version": 1}, "layer": {"version": 2}})
    state = {
        "floats": [0.1, -0.0, 1e-308, 5e-324, float("inf"), 1 / 3],
        "ints": (0, -1, 2**70, True, False, None),
        "int keys": {0: "a", 1: (0.9, 0.95)},
        "$reserved": {"$not_a_tag": 1},
        "strings": ["", "ünïcode", "a#b"],
        "numpy": (np.arange(624, dtype=np.uint32), np.array([[1.5, -2.0]]), np.array(True)),
        "module": module_state,
        "tied": shared,
        "nested": {"empty": {}, "list": [[], ()]},
    }
    loaded = _round_trip(tmp_path, state)
    assert_same(state, loaded)
    assert loaded["tied"] is loaded["module"]["weight"]  # one tensor saved once, one object back
    assert len(list(_tensor_nodes(json.loads((tmp_path / STRUCTURE_FILE).read_text())))) == 3


@pytest.mark.parametrize("value, where", [({1, 2}, "state/bad"), (object(), "state/bad"),
                                          (np.array(["x"], dtype=object), "state/bad")])
def test_values_that_would_need_pickle_are_refused_before_writing(tmp_path, value, where):
    with pytest.raises(TypeError, match=f"{where} is a"):
        write_state_files(tmp_path, {"ok": torch.ones(1), "bad": value})
    assert list(tmp_path.iterdir()) == []


def test_a_limit_below_the_minimum_or_a_name_too_long_for_it_is_refused(tmp_path):
    with pytest.raises(ValueError, match="below the minimum"):
        write_state_files(tmp_path, {}, MIN_PART_LIMIT - 1)
    with pytest.raises(ValueError, match="is too long for parts of 4096 bytes"):
        write_state_files(tmp_path, {"x" * 3000: torch.zeros(0)}, MIN_PART_LIMIT)


def test_the_manifest_lists_each_file_with_size_and_digest(tmp_path):
    write_state_files(tmp_path, {"t": torch.ones(30_000)}, LIMIT)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    listed = {entry["name"]: entry for entry in manifest["files"]}
    assert set(listed) | {MANIFEST_FILE} == {p.name for p in tmp_path.iterdir()}
    assert len(listed) == 3 and manifest["part_limit"] == LIMIT
    for name, entry in listed.items():
        assert entry["bytes"] == (tmp_path / name).stat().st_size and len(entry["sha256"]) == 64
