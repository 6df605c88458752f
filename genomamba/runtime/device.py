"""Which device a process runs on: ``--device auto|cpu|cuda``, one process or one of several.

Training and inference choose the same way; under ``torchrun`` each training process is a
:class:`World` member whose local rank picks its GPU (:mod:`genomamba.runtime.distributed` reads
the world from the environment).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genomamba.errors import UnavailableError


@dataclass(frozen=True)
class World:
    """Who this process is among ``world_size`` training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, world: World | None = None) -> torch.device:
    """The device this process runs on.

    ``auto``: CUDA when available, else CPU. With several processes a CUDA device is
    ``cuda:LOCAL_RANK`` (one GPU per process); ``cpu`` stays CPU (gloo).

    Raises:
        UnavailableError: ``cuda`` without a GPU, or a local rank without a GPU of its own.
    """
    world = world or World()
    if name == "cuda" and not torch.cuda.is_available():
        raise UnavailableError("--device cuda: no CUDA device is available")
    use_cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu")
    if world.world_size == 1:
        return torch.device("cuda")
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise UnavailableError(
            f"local rank {world.local_rank} has no GPU of its own ({count} visible): start at most "
            f"{count} processes per machine (torchrun --nproc-per-node)"
        )
    return torch.device("cuda", world.local_rank)
