"""Memory planned before a whole-record streaming run, not discovered by running out of it.

A streaming run (:mod:`genomamba.model.streaming`) holds two things:

* on the device, the activations of one layer over one chunk (with its halo): the residual rows
  and their norm, in_proj's output, each pass's conv output and scan inputs (u, delta, x_proj's
  B/C/dt), the scan outputs and out_proj's, plus the model's weights.
  :func:`device_bytes_per_position` counts them per position of a chunk, with a margin for the
  allocator's cache and the temporaries of each op (the right-to-left scan's states at the chunk
  boundaries wait on the host);
* the residual stream of the whole record, ``L x hidden_size x 4`` bytes (fp32), between layers:
  on the GPU itself when it fits the budget beside a chunk's activations (no copies at all), else
  in host memory (page-locked), else, when that would not fit in the host's available memory, as
  a memmap on disk. Off the GPU, every layer copies it to the device and back once more than it
  computes on it, so a record that fits on the GPU runs much faster than one that does not.

:func:`plan_stream` picks the largest chunk whose estimate fits the device budget
(``--max-gpu-memory``; by default 80% of the GPU's free memory; on CPU a fixed chunk of
:data:`CPU_CHUNK` positions) and :func:`place_residual` decides, per record, where its residual
stream lives (with a smaller chunk, when that keeps it on the GPU). Both are estimates: a genuine
out-of-memory still ends the command with exit 69 (:mod:`genomamba.cli.boundary`) and no output.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from genomamba.errors import UnavailableError, format_bytes

#: Positions per chunk on CPU, where activations share the host's memory and speed hardly depends
#: on the chunk size past a few thousand positions; less when :data:`CPU_SHARE` of the available
#: memory cannot hold a chunk's activations.
CPU_CHUNK = 1 << 20
CPU_SHARE = 0.25
#: Share of the GPU's free memory a run plans for when --max-gpu-memory is not given.
DEFAULT_GPU_SHARE = 0.8
#: Share of the host's available memory the residual stream may take before it goes to disk.
HOST_SHARE = 0.8
#: The smallest chunk worth running (below it kernel launches dominate); a budget that cannot
#: hold it is refused.
MIN_CHUNK = 1024
#: Multiplier on the counted activations: the caching allocator, temporaries inside each op.
MARGIN = 1.5
#: The smallest chunk a record is run with to keep its residual stream on the GPU (smaller chunks
#: waste the GPU; the copies of a host-resident stream cost less than that).
MIN_RESIDENT_CHUNK = 1 << 16
#: Where a record's residual stream may be asked to live (``auto``: chosen per record).
RESIDUAL_STORES = ("auto", "device", "memory", "disk")

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 10**3, "kib": 1 << 10, "m": 1 << 20, "mb": 10**6, "mib": 1 << 20,
          "g": 1 << 30, "gb": 10**9, "gib": 1 << 30, "t": 1 << 40, "tb": 10**12, "tib": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes of a size such as ``20G``, ``20GiB``, ``512MB``, ``1.5T`` or ``1000000`` (K, M, G, T
    alone and the ``iB`` forms are powers of 1024; ``kB``, ``MB``, ``GB``, ``TB`` of 1000).

    Raises:
        ValueError: anything else, or a size of zero.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"not a memory size: {text!r} (write e.g. 20G, 512MiB, 2.5GB or a number of bytes)")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"a memory size must be positive, got {text!r}")
    return size


def device_bytes_per_position(config, activation_bytes: int, residual_bytes: int = 4) -> float:
    """Device bytes one position of a chunk costs while a layer runs over it (see module docstring).

    ``activation_bytes``: 2 under bf16 autocast (CUDA), the weights' size otherwise.
    """
    s, d, di = config.n_strands, config.d_model, config.d_inner
    a, r = activation_bytes, residual_bytes
    n_state, rank = config.mixer.d_state, config.mixer.resolved_dt_rank(d)
    projections = 1 if config.tie_projections or not config.bidirectional else 2
    passes = 2 if config.bidirectional else 1
    residual = 4 * s * d * r  # the rows read, their norm (and its fp32 temporaries), the rows written
    project = projections * s * 3 * di * a  # in_proj output and the strand blocks' copies of x and z
    per_pass = s * (4 * di * a  # conv input copy, conv output, SiLU, the blocks of another direction
                    + (rank + 2 * n_state) * a + di * a  # x_proj, delta
                    + 2 * di * 4)  # the scan's output and its fp32 working rows
    out = s * (di * a + passes * d * max(a, 4))  # the sum of the passes, out_proj and its cast
    return MARGIN * (residual + project + passes * per_pass + out)


@dataclass(frozen=True)
class StreamPlan:
    """Chunk size and estimated device memory of a streaming run; ``budget`` and ``source`` say
    what it was fitted to."""

    chunk: int
    device_bytes: int
    budget: int | None
    source: str
    per_position: float = 0.0
    weights: int = 0
    on_cuda: bool = False

    def describe(self) -> str:
        fitted = f" of {format_bytes(self.budget)} ({self.source})" if self.budget is not None else ""
        memory = "GPU memory" if self.on_cuda else "memory for weights and activations"
        return (f"chunks of {self.chunk:,} bases, estimated peak {memory} "
                f"{format_bytes(self.device_bytes)}{fitted}")

    def resident_chunk(self, nbytes: int) -> int | None:
        """The chunk (at most :attr:`chunk`) with which a residual stream of ``nbytes`` fits on
        the device beside the weights and a chunk's activations; None below
        :data:`MIN_RESIDENT_CHUNK` or without a budget."""
        if self.budget is None:
            return None
        chunk = min(self.chunk, int((self.budget - self.weights - nbytes) / self.per_position))
        if chunk < MIN_RESIDENT_CHUNK:
            return None
        return chunk - chunk % 4096


@dataclass(frozen=True)
class Placement:
    """Where one record's residual stream lives (``device``, ``pinned`` or plain ``memory``, or
    ``disk``: genomamba.model.streaming.ResidualStore) and the chunk size it runs with."""

    where: str
    chunk: int


def plan_stream(model, device, *, max_device_bytes: int | None = None, chunk: int | None = None,
                longest: int | None = None) -> StreamPlan:
    """The chunk size of a streaming run of ``model`` on ``device`` (a torch.device).

    ``chunk`` given: used as it is (the estimate is still reported). Otherwise on CUDA the largest
    chunk (a multiple of 4096 above 4096) whose estimate fits ``max_device_bytes`` (default
    :data:`DEFAULT_GPU_SHARE` of the free memory); on CPU :data:`CPU_CHUNK`, or less when
    :data:`CPU_SHARE` of the available memory cannot hold it (``max_device_bytes``, if given, is
    fitted there too). ``longest``, the longest record when known, caps the chunk.

    Raises:
        UnavailableError: the budget cannot hold the weights and a chunk of :data:`MIN_CHUNK`
            positions (exit 69), naming both sizes.
    """
    import torch

    config = model.config
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    on_cuda = device.type == "cuda"
    activation = 2 if on_cuda else next(model.parameters()).element_size()
    per_position = device_bytes_per_position(config, activation)
    budget, source = None, ""
    if on_cuda:
        if max_device_bytes is not None:
            budget, source = max_device_bytes, "--max-gpu-memory"
        else:
            free, _ = torch.cuda.mem_get_info(device)
            budget, source = int(DEFAULT_GPU_SHARE * free), f"{DEFAULT_GPU_SHARE:.0%} of the free GPU memory"
    elif max_device_bytes is not None:
        budget, source = max_device_bytes, "--max-gpu-memory"
    if chunk is None:
        available = host_available_bytes() if budget is None else None
        if budget is None and available is not None:
            chunk = int((CPU_SHARE * available - weights) / per_position)
            chunk = max(MIN_CHUNK, min(CPU_CHUNK, chunk - chunk % 4096 if chunk > 4096 else chunk))
        elif budget is None:
            chunk = CPU_CHUNK
        else:
            chunk = int((budget - weights) / per_position)
            if chunk < MIN_CHUNK:
                need = weights + MIN_CHUNK * per_position
                raise UnavailableError(
                    f"out of GPU memory before starting: the model's weights and a chunk of {MIN_CHUNK} "
                    f"bases need about {format_bytes(need)}, more than the {format_bytes(budget)} "
                    f"available ({source}); raise --max-gpu-memory, free the GPU, or use --device cpu")
            if chunk > 4096:
                chunk -= chunk % 4096
        if longest is not None:
            chunk = max(1, min(chunk, longest))
    return StreamPlan(chunk, int(weights + chunk * per_position), budget, source, per_position, weights,
                      on_cuda)


def host_available_bytes() -> int | None:
    """Memory the host can give without swapping (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def place_residual(nbytes: int, where: str, work_dir: str | os.PathLike, plan: StreamPlan) -> Placement:
    """Where a residual stream of ``nbytes`` lives, for ``where`` (:data:`RESIDUAL_STORES`):
    ``auto`` keeps it on a GPU when :meth:`StreamPlan.resident_chunk` finds a chunk for it, else
    in host memory unless it would take more than :data:`HOST_SHARE` of the available memory,
    else on the disk of ``work_dir`` (a memmap). ``device``, ``memory``, ``disk``: as asked.

    Raises:
        UnavailableError: it fits neither in memory nor on the disk (exit 69), naming what it
            needs and what there is.
    """
    if where not in RESIDUAL_STORES:
        raise ValueError(f"the residual store must be one of {RESIDUAL_STORES}, got {where!r}")
    resident = plan.resident_chunk(nbytes) if plan.on_cuda else None
    if where == "device" or (where == "auto" and resident is not None):
        return Placement("device", resident or plan.chunk)
    available = host_available_bytes()
    fits_memory = available is None or nbytes <= HOST_SHARE * available
    if where == "memory" or (where == "auto" and fits_memory):
        # page-locked for a GPU's copies, when that leaves the host room: torch's pinned-memory
        # allocator rounds a block up to a power of two
        pinned = plan.on_cuda and available is not None and 1 << (nbytes - 1).bit_length() <= available / 2
        return Placement("pinned" if pinned else "memory", plan.chunk)
    free = shutil.disk_usage(Path(work_dir)).free
    if nbytes > free:
        have = f"{format_bytes(available)} of memory available and " if available is not None else ""
        raise UnavailableError(
            f"out of memory before starting: the record's residual stream needs {format_bytes(nbytes)}, "
            f"and there are {have}{format_bytes(free)} free on the disk of {work_dir}; free some space "
            "there or run on a machine with more memory")
    return Placement("disk", plan.chunk)
