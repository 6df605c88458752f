"""Memory planned before a whole-record streaming run, not discovered by running out of it.

A streaming run (:mod:`genomamba.model.streaming`) holds two things:

* on the device, the activations of one layer over one chunk (with its halo): the residual rows
  and their norm, in_proj's output, each pass's conv output and scan inputs (u, delta, x_proj's
  B/C/dt), the scan outputs and out_proj's, plus the model's weights.
  :func:`device_bytes_per_position` counts them per position of a chunk, with a margin for the
  allocator's cache and the temporaries of each op (the right-to-left scan's states at the chunk
  boundaries wait on the host);
* in host memory, the residual stream of the whole record, ``L x hidden_size x 4`` bytes (fp32),
  or, when that would not fit in the host's available memory, the same array as a memmap on disk.

:func:`plan_stream` picks the largest chunk whose estimate fits the device budget
(``--max-gpu-memory``; by default 80% of the GPU's free memory; on CPU a fixed chunk of
:data:`CPU_CHUNK` positions) and :func:`place_residual` decides, per record, where its residual
stream lives. Both are estimates: a genuine out-of-memory still ends the command with exit 69
(:mod:`genomamba.cli.boundary`) and no output.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from genomamba.errors import UnavailableError

#: Positions per chunk on CPU, where activations share the host's memory and speed hardly depends
#: on the chunk size past a few thousand positions.
CPU_CHUNK = 1 << 20
#: Share of the GPU's free memory a run plans for when --max-gpu-memory is not given.
DEFAULT_GPU_SHARE = 0.8
#: Share of the host's available memory the residual stream may take before it goes to disk.
HOST_SHARE = 0.8
#: The smallest chunk worth running (below it kernel launches dominate); a budget that cannot
#: hold it is refused.
MIN_CHUNK = 1024
#: Multiplier on the counted activations: the caching allocator, temporaries inside each op.
MARGIN = 1.5

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


def format_bytes(n: float) -> str:
    """``n`` bytes for people: ``1.5 GiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


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

    def describe(self) -> str:
        fitted = f" of {format_bytes(self.budget)} ({self.source})" if self.budget is not None else ""
        return (f"chunks of {self.chunk:,} bases, estimated peak device memory "
                f"{format_bytes(self.device_bytes)}{fitted}")


def plan_stream(model, device, *, max_device_bytes: int | None = None, chunk: int | None = None,
                longest: int | None = None) -> StreamPlan:
    """The chunk size of a streaming run of ``model`` on ``device`` (a torch.device).

    ``chunk`` given: used as it is (the estimate is still reported). Otherwise on CUDA the largest
    chunk (a multiple of 4096 above 4096) whose estimate fits ``max_device_bytes`` (default
    :data:`DEFAULT_GPU_SHARE` of the free memory); on CPU :data:`CPU_CHUNK`. ``longest``, the
    longest record when known, caps the chunk.

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
        if budget is None:
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
    return StreamPlan(chunk, int(weights + chunk * per_position), budget, source)


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


def place_residual(nbytes: int, where: str, work_dir: str | os.PathLike) -> bool:
    """Whether a residual stream of ``nbytes`` goes to disk (a memmap in ``work_dir``) rather
    than host memory: ``where`` is ``memory``, ``disk`` or ``auto`` (disk when it would take more
    than :data:`HOST_SHARE` of the available memory).

    Raises:
        UnavailableError: it fits neither (exit 69), naming what it needs and what there is.
    """
    available = host_available_bytes()
    fits_memory = available is None or nbytes <= HOST_SHARE * available
    if where == "memory" or (where == "auto" and fits_memory):
        return False
    free = shutil.disk_usage(Path(work_dir)).free
    if nbytes > free:
        have = f"{format_bytes(available)} of memory available and " if available is not None else ""
        raise UnavailableError(
            f"out of memory before starting: the record's residual stream needs {format_bytes(nbytes)}, "
            f"and there are {have}{format_bytes(free)} free on the disk of {work_dir}; free some space "
            "there or run on a machine with more memory")
    return True
