"""Training-resume state: one directory per checkpoint, ``RUN_DIR/checkpoints/step-XXXXXX/``,
written atomically; and the global RNGs, seeded at the start of a run and saved with its state.

The state is a plain dict (model, optimiser and scheduler state dicts, RNG states of Python,
numpy and torch, the sampler position, the step). It is *resume* state for the run that wrote
it, not a model export: models are exported only through
:func:`genomamba.model_directory.save_pretrained` (DESIGN.md §2, "Model directory").

On disk (:mod:`genomamba.train.state_files`): ``state.json`` (everything but tensors),
``part-NNNN.safetensors`` files of at most :data:`PART_LIMIT` bytes (16 MiB) holding the tensors,
and ``manifest.json`` with the size and sha256 of each, written last. Bounded files let a run go
on across jobs whose outputs come back in files of at most 16 MiB. Checkpoints written before
this format are one ``state.pt`` (``torch.save``); they still load, through torch's weights-only
unpickler. Neither format runs code from the files when read.

Atomicity: the directory is written under a temporary name in ``checkpoints/`` and renamed with
``os.replace``; a crash leaves either the previous checkpoints or the complete new one. A step
directory copied in part (a file missing, short or changed) fails its manifest and is skipped.
"""

from __future__ import annotations

import pickle
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from genomamba.errors import GenomambaError
from genomamba.io.atomic import move_directory_into_place, staged_directory
from genomamba.train.state_files import (
    MANIFEST_FILE,
    PART_LIMIT,
    IncompleteStateError,
    check_state_files,
    read_state_files,
    write_state_files,
)

try:  # numpy 2; numpy 1 has it as numpy.core.multiarray
    from numpy._core.multiarray import _reconstruct as _numpy_reconstruct
except ImportError:  # pragma: no cover
    from numpy.core.multiarray import _reconstruct as _numpy_reconstruct

CHECKPOINTS = "checkpoints"
LEGACY_STATE_FILE = "state.pt"  # the single torch.save file of checkpoints written before state files
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


def save_state(
    run_dir: str | Path, step: int, state: dict, keep: int = 2, part_limit: int = PART_LIMIT
) -> Path:
    """Write ``state`` as the checkpoint of ``step`` (replacing one of the same step) in files of
    at most ``part_limit`` bytes, then keep only the newest ``keep`` complete checkpoints (0 keeps
    all; incomplete step directories older than those kept go too). Returns the checkpoint directory.

    Raises:
        TypeError: a value in ``state`` that cannot be stored without pickle.
    """
    target = checkpoint_dir(run_dir, step)
    target.parent.mkdir(parents=True, exist_ok=True)
    with staged_directory(target) as tmp:  # named with the pid: a killed run's is recognised and removed
        write_state_files(tmp, state, part_limit)
        move_directory_into_place(tmp, target)
    kept = list_checkpoints(run_dir)[-keep:] if keep > 0 else []
    for old_step, old in _step_directories(run_dir):
        if kept and old_step < kept[0][0]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(
    run_dir: str | Path, note: Callable[[str], None] | None = None, strict: bool = False
) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as ``(step, directory)``, oldest first.

    A step directory whose files do not match its manifest (a part missing, short or changed: a
    copy between machines that stopped half-way) is skipped, and ``note`` is told which file and
    why. Every byte of every checkpoint is read and hashed (about a second per GB).

    Raises:
        IncompleteStateError: with ``strict``, when the run has step directories but none of them
            is complete (``--resume`` must not start afresh over a run it cannot read), naming
            the first bad file of the newest.
    """
    found, newest_problem = [], None
    for step, path in _step_directories(run_dir):
        try:
            check_checkpoint(path)
        except IncompleteStateError as exc:
            newest_problem = exc
            if note is not None:
                note(f"skipping the checkpoint of step {step}, which is incomplete: {exc}")
            continue
        found.append((step, path))
    if strict and newest_problem is not None and not found:
        raise IncompleteStateError(f"{newest_problem}; no complete checkpoint in {run_dir} to resume from")
    return found


def _step_directories(run_dir: str | Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _is_legacy(directory: Path) -> bool:
    return not (directory / MANIFEST_FILE).exists() and (directory / LEGACY_STATE_FILE).is_file()


def check_checkpoint(directory: str | Path) -> None:
    """Check that ``directory`` is a complete checkpoint (see :func:`list_checkpoints`).

    Raises:
        IncompleteStateError: naming the file that is missing, short or changed.
    """
    if not _is_legacy(Path(directory)):
        check_state_files(directory)


def load_state(directory: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_state`: tensors on the CPU, bit for bit as saved;
    RNG states as saved (torch's as uint8 tensors, numpy's as its tuple with a uint32 array).
    Nothing is unpickled, for checkpoints of either format: no code from the files runs.

    Raises:
        IncompleteStateError: a file missing, short, changed or unreadable (named).
    """
    directory = Path(directory)
    if _is_legacy(directory):
        return _load_legacy(directory / LEGACY_STATE_FILE)
    return read_state_files(directory)


def _load_legacy(path: Path) -> dict:
    """A single ``torch.save`` file, the format before bounded state files, read with torch's
    weights-only unpickler (tensors and plain containers only), allowing the numpy types of
    numpy's RNG state, under their numpy 2 and numpy 1 module names."""
    allowed = [np.ndarray, np.dtype, type(np.dtype(np.uint32)),
               _numpy_reconstruct, (_numpy_reconstruct, "numpy.core.multiarray._reconstruct")]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IncompleteStateError(f"{path}: unreadable ({first_line})") from None


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
