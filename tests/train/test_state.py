"""Checkpoints of a run: bounded files that read back bit for bit, old single-file checkpoints
that still load, and step directories copied in part that are skipped or refused by name."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch
from state_cases import assert_same, trained_state

from genomamba.errors import EXIT_DATA
from genomamba.train.state import (
    LEGACY_STATE_FILE,
    checkpoint_dir,
    list_checkpoints,
    load_state,
    save_state,
    set_rng_states,
)
from genomamba.train.state_files import MANIFEST_FILE, STRUCTURE_FILE, IncompleteStateError


@pytest.fixture(scope="module")
def state():
    return trained_state()


def _draws() -> tuple:
    return random.random(), np.random.random(), torch.rand(3)


def test_a_trained_state_reads_back_bit_for_bit(state, tmp_path):
    directory = save_state(tmp_path, 3, state)
    loaded = load_state(directory)
    assert_same(state, loaded)
    assert sorted(loaded["optimizer"]["state"]) == list(range(len(state["model"])))  # ints, as in torch
    assert loaded["rng"]["torch"].dtype == torch.uint8
    set_rng_states(state["rng"])
    expected = _draws()
    set_rng_states(loaded["rng"])
    assert_same(expected, _draws())


def test_every_file_stays_within_the_part_limit(state, tmp_path):
    limit = 64 * 1024
    directory = save_state(tmp_path, 3, state, part_limit=limit)
    sizes = {path.name: path.stat().st_size for path in directory.iterdir()}
    assert max(sizes.values()) <= limit
    assert len([name for name in sizes if name.startswith("part-")]) >= 4  # 260 KB of tensors
    assert_same(state, load_state(directory))


def test_a_checkpoint_of_the_single_file_format_still_loads(state, tmp_path):
    directory = checkpoint_dir(tmp_path, 5)
    directory.mkdir(parents=True)
    torch.save(state, directory / LEGACY_STATE_FILE)  # what genomamba wrote before bounded files
    assert list_checkpoints(tmp_path) == [(5, directory)]
    assert_same(state, load_state(directory))


class _RunsCode:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_a_single_file_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    directory = checkpoint_dir(tmp_path, 1)
    directory.mkdir(parents=True)
    torch.save({"step": 1, "payload": _RunsCode()}, directory / LEGACY_STATE_FILE)
    with pytest.raises(IncompleteStateError, match=f"{directory / LEGACY_STATE_FILE}: unreadable"):
        load_state(directory)
    assert "code ran" not in capsys.readouterr().out


def _missing(path):
    path.unlink()


def _truncated(path):
    path.write_bytes(path.read_bytes()[:-100])


def _changed(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one tensor: same size, different sha256
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, name, reason", [
    (_missing, "part-0001.safetensors", "missing"),
    (_truncated, "part-0002.safetensors", "truncated"),
    (_changed, "part-0000.safetensors", "sha256 differs"),
    (_missing, STRUCTURE_FILE, "missing"),
    (_missing, MANIFEST_FILE, "missing"),
])
def test_a_step_directory_copied_in_part_is_incomplete(state, tmp_path, damage, name, reason):
    save_state(tmp_path, 1, state, keep=0, part_limit=64 * 1024)
    newest = save_state(tmp_path, 2, state, keep=0, part_limit=64 * 1024)
    damage(newest / name)
    notes = []
    assert list_checkpoints(tmp_path, note=notes.append) == [(1, checkpoint_dir(tmp_path, 1))]
    assert len(notes) == 1 and "step 2" in notes[0] and f"{newest / name}: {reason}" in notes[0]
    with pytest.raises(IncompleteStateError, match=f"{newest / name}: {reason}") as raised:
        load_state(newest)
    assert raised.value.exit_code == EXIT_DATA
    shutil.rmtree(checkpoint_dir(tmp_path, 1))  # nothing complete is left to resume from
    assert list_checkpoints(tmp_path) == []
    with pytest.raises(IncompleteStateError, match=f"{newest / name}: {reason}.*no complete checkpoint"):
        list_checkpoints(tmp_path, strict=True)


def test_keep_removes_older_checkpoints_complete_or_not(state, tmp_path):
    small = {"step": 0, "weights": torch.ones(3)}
    for step in (1, 2, 3):
        save_state(tmp_path, step, small, keep=0)
    _missing(checkpoint_dir(tmp_path, 2) / MANIFEST_FILE)
    save_state(tmp_path, 4, small, keep=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 4]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000003", "step-000004"]
