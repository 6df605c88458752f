"""Several processes, one model: process-group set-up for ``torchrun`` and the few collectives training needs.

``torchrun --nproc-per-node N genomamba pretrain ...`` starts N copies of the command and tells each
who it is through environment variables: ``RANK`` (0..N-1 over all machines), ``WORLD_SIZE`` (N),
``LOCAL_RANK`` (the index on this machine, which picks the GPU) and ``MASTER_ADDR``/``MASTER_PORT``
(where rank 0 listens). Without them (a plain ``genomamba pretrain``) everything here is a no-op
for one process, so the training loop has a single code path.

* :func:`world_from_env` reads and checks those variables without touching torch.distributed, so
  a configuration that cannot work (e.g. a world size that does not divide the micro-batches of a
  step) fails before any process waits for another;
* :func:`distributed` initialises the process group -- NCCL with one GPU per process
  (``cuda:LOCAL_RANK``, selected *before* the group is created so NCCL binds the right device),
  gloo on CPU -- once per process, kept until the process exits;
* :class:`Distributed` holds rank, device and backend, and offers :meth:`~Distributed.all_reduce`
  (sum or max of a few numbers, in float64 so token counts stay exact), :meth:`~Distributed.gather_objects`
  and :meth:`~Distributed.broadcast_object` (picklable values: scores, rows, decisions),
  :meth:`~Distributed.barrier` and :attr:`~Distributed.is_main` (rank 0: the only one that writes files).
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence

import torch

from genomamba.runtime.device import World, resolve_device
from genomamba.strict_config import ConfigError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def world_from_env(environ: Mapping[str, str] | None = None) -> World:
    """The :class:`World` that ``torchrun``'s variables describe (one process when ``WORLD_SIZE`` is unset).

    Raises:
        ConfigError: a variable is not an integer, ranks lie outside ``[0, WORLD_SIZE)``, or a
            multi-process world lacks ``MASTER_ADDR``/``MASTER_PORT``.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return World()

    def integer(key: str, default: str) -> int:
        raw = env.get(key, default)
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"environment variable {key}={raw!r} is not an integer") from None

    rank = integer("RANK", "0")
    world = World(rank, integer("WORLD_SIZE", "1"), integer("LOCAL_RANK", str(rank)))
    if world.world_size < 1 or not 0 <= world.rank < world.world_size or world.local_rank < 0:
        raise ConfigError(
            f"inconsistent torchrun environment: RANK={world.rank}, WORLD_SIZE={world.world_size}, "
            f"LOCAL_RANK={world.local_rank}"
        )
    if world.world_size > 1 and not (env.get("MASTER_ADDR") and env.get("MASTER_PORT")):
        raise ConfigError(
            "WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: launch several processes "
            "with torchrun (e.g. torchrun --nproc-per-node 2 $(which genomamba) pretrain ...)"
        )
    return world


class Distributed:
    """A running world: rank, device, backend (None for one process) and the collectives training uses.

    Every collective must be called by every rank in the same order; with one process they return
    their input and synchronise nothing.
    """

    def __init__(self, world: World, device: torch.device, backend: str | None):
        self.world = world
        self.device = device
        self.backend = backend

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def world_size(self) -> int:
        return self.world.world_size

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    @property
    def active(self) -> bool:
        """True when several processes share the work (a process group exists)."""
        return self.backend is not None

    def all_reduce(self, values: Sequence[float | torch.Tensor], op: str = "sum") -> list[float]:
        """Element-wise ``sum`` or ``max`` over ranks of a few scalars (floats or 0-d tensors).

        float64 on the communication device (CUDA for NCCL): integers up to 2**53 stay exact, and
        tensors already on the GPU are reduced without a host round trip before the result is read.
        """
        vector = torch.stack(
            [torch.as_tensor(v, dtype=torch.float64, device=self.device).reshape(()) for v in values]
        )
        if self.active:
            import torch.distributed as dist

            reduce_op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op]
            dist.all_reduce(vector, op=reduce_op)
        return vector.tolist()

    def gather_objects(self, value: object) -> list:
        """Every rank's ``value`` (any picklable object), in rank order, on every rank.

        For the few things ranks must agree on that are not numbers: the scores of the validation
        rows each rank scored, the rows of an inference shard. One process: ``[value]``.
        """
        if not self.active:
            return [value]
        import torch.distributed as dist

        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def broadcast_object(self, value: object) -> object:
        """Rank 0's ``value`` on every rank (what the others pass is ignored). One process: ``value``."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel over this process's device, or as it is for one process.

        The wrapper shares the module's parameters (optimisers and state dicts keep using
        ``model``); call its ``no_sync()`` around all but the last micro-batch of a step.
        """
        if not self.active:
            return model
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # the model's only buffers are constants (complement tables): no broadcast before every
        # forward (newer torch releases renamed the option)
        names = inspect.signature(DistributedDataParallel.__init__).parameters
        buffers = "forward_sync_buffers" if "forward_sync_buffers" in names else "broadcast_buffers"
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, **{buffers: False})

    def barrier(self) -> None:
        """Wait until every rank got here (used so that no rank exits before rank 0 finished writing)."""
        if not self.active:
            return
        import torch.distributed as dist

        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()


@contextlib.contextmanager
def distributed(device_name: str = "auto") -> Iterator[Distributed]:
    """Join the world torchrun describes for the duration of the block.

    One process: no process group, the device from :func:`genomamba.runtime.device.resolve_device`.
    Several: the device is ``cuda:LOCAL_RANK`` (made current before the group exists) with NCCL,
    or the CPU with gloo; the group is created from the ``env://`` variables on first use and kept
    until the process exits (gloo cannot rendezvous a second time on the same address, so a script
    that runs several commands under one torchrun needs the group to outlive each of them). A group
    that the caller had already initialised is used as it is.

    Raises:
        ConfigError: see :func:`world_from_env`.
        UnavailableError: see :func:`genomamba.runtime.device.resolve_device`.
    """
    world = world_from_env()
    device = resolve_device(device_name, world)
    if world.world_size == 1:
        yield Distributed(world, device, None)
        return
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if dist.is_initialized():
        backend = dist.get_backend()
    else:
        dist.init_process_group(backend=backend, rank=world.rank, world_size=world.world_size)
        atexit.register(_destroy_process_group)
    yield Distributed(world, device, backend)


def _destroy_process_group() -> None:
    """At exit: release the group (NCCL warns about a group never destroyed)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
