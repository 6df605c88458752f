"""Training-resume state: written atomically into ``RUN_DIR/checkpoints/step-XXXXXX/state.pt``.

The state is a plain dict (model, optimiser and scheduler state dicts, RNG states of Python,
numpy and torch, the sampler position, the step) saved with ``torch.save``. It is *resume* state
for the run that wrote it, not a model export: models are exported only through
:func:`genomamba.checkpoint.save_pretrained` (DESIGN.md §2, "Model directory").

Atomicity: the directory is written under a temporary name in ``checkpoints/`` and renamed with
``os.replace``; a crash leaves either the previous checkpoints or the complete new one.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.pt"
_STEP_DIR = re.compile(r"^step-(\d{6,})$")


def rng_states() -> dict:
    """The global RNG states of Python, numpy and torch (CPU, and CUDA when present)."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:06d}"


def save_state(run_dir: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``step`` (replacing one of the same step), then keep
    only the newest ``keep`` checkpoints (0 keeps all). Returns the checkpoint directory."""
    target = checkpoint_dir(run_dir, step)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with open(tmp / STATE_FILE, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
