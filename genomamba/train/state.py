"""Training-resume state: written atomically into ``RUN_DIR/checkpoints/step-XXXXXX/state.pt``;
and the global RNGs, seeded at the start of a run and saved with its state.

The state is a plain dict (model, optimiser and scheduler state dicts, RNG states of Python,
numpy and torch, the sampler position, the step) saved with ``torch.save``. It is *resume* state
for the run that wrote it, not a model export: models are exported only through
:func:`genomamba.model_directory.save_pretrained` (DESIGN.md §2, "Model directory").

Atomicity: the directory is written under a temporary name in ``checkpoints/`` and renamed with
``os.replace``; a crash leaves either the previous checkpoints or the complete new one.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from genomamba.errors import GenomambaError
from genomamba.io.atomic import move_directory_into_place, staged_directory

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.pt"
_STEP_DIR = re.compile(r"^step-(\d{6,})$")


def seed_everything(seed: int) -> None:
    """Seed the global RNGs of Python, numpy and torch (all devices) at the start of a run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_states(device: torch.device | None = None) -> dict:
    """The global RNG states of Python, numpy and torch (CPU, and CUDA when present).

    With a CUDA ``device`` only that device's generator is saved (key ``cuda_device``): under
    data-parallel training each process owns one GPU, and asking for every device's state would
    make each process touch every GPU. Without one, all CUDA devices' states are saved (``cuda``).
    """
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        states["cuda_device"] = torch.cuda.get_rng_state(device)
    elif device is None and torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict, device: torch.device | None = None) -> None:
    """Restore what :func:`rng_states` saved. A ``cuda_device`` state goes to ``device`` (or the
    current CUDA device); from a ``cuda`` list, a CUDA ``device`` takes its own entry, otherwise all
    devices are set when their number matches."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if not torch.cuda.is_available():
        return
    if "cuda_device" in states and (device is None or device.type == "cuda"):
        torch.cuda.set_rng_state(states["cuda_device"], device if device is not None else "cuda")
    elif "cuda" in states and device is not None and device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        if index < len(states["cuda"]):
            torch.cuda.set_rng_state(states["cuda"][index], device)
    elif "cuda" in states and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:06d}"


def save_state(run_dir: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``step`` (replacing one of the same step), then keep
    only the newest ``keep`` checkpoints (0 keeps all). Returns the checkpoint directory."""
    target = checkpoint_dir(run_dir, step)
    target.parent.mkdir(parents=True, exist_ok=True)
    with staged_directory(target) as tmp:  # named with the pid: a killed run's is recognised and removed
        with open(tmp / STATE_FILE, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        move_directory_into_place(tmp, target)
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old[1], ignore_errors=True)
    return target


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as ``(step, directory)``, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def load_state(directory: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_state`. The file holds numpy RNG state tuples and
    other plain Python objects besides tensors, so it is loaded with ``weights_only=False``: only
    load checkpoints your own runs wrote."""
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)


def restore_state(
    directory: str | Path, model, optimizer, scheduler, device: torch.device
) -> tuple[int, int]:
    """Load a pretraining checkpoint into ``model``, ``optimizer``, ``scheduler`` and the global RNGs.

    Returns ``(step, micro_batches)``: optimiser steps done and micro-batches drawn (the data position,
    the same for every rank of a data-parallel run).

    Raises:
        GenomambaError: a checkpoint of an older version whose crops came from one sampler stream.
    """
    state = load_state(directory)
    if "micro_batches" not in state["sampler"]:
        raise GenomambaError(
            f"{directory}: checkpoint of an older genomamba whose crops came from a single stream; "
            "this version cannot resume it exactly (start a new run)"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_states(state["rng"], device)
    return int(state["step"]), int(state["sampler"]["micro_batches"])
