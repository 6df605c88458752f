"""Whole FASTA records through the model in one exact pass each, in bounded device memory.

What ``embed --per-base``, ``track`` and ``--context record`` (embed, predict) share: a model
loaded once, the memory plan made and printed before any work (:mod:`genomamba.infer.memory_plan`),
and each record streamed through the model layer by layer, chunk by chunk
(:mod:`genomamba.model.streaming`), its per-base values written into an array (a memmap) as the
chunks come, or its windows' values gathered (:mod:`genomamba.infer.record_context`). The model
runs in eval mode under ``torch.inference_mode`` with the evaluation's precision (bf16 autocast on
CUDA, fp32 on CPU).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from genomamba.errors import UnavailableError, format_bytes, is_out_of_memory, out_of_memory_detail
from genomamba.infer.memory_plan import RESIDUAL_STORES, Placement, place_residual, plan_stream
from genomamba.infer.runner import load_model
from genomamba.io.atomic import temporary_directory
from genomamba.io.directories import made_directories
from genomamba.runtime.precision import autocast_for

T = TypeVar("T")


@dataclass(frozen=True)
class StreamSettings:
    """How whole records are streamed: ``device`` auto/cpu/cuda (or, under torchrun, the torch device
    of this process: :func:`genomamba.infer.sharding.sharded_run`); ``max_gpu_memory`` bytes the plan
    fits (None: 80% of the free GPU memory); ``chunk_size`` positions per chunk (None: planned);
    ``residual_store`` one of :data:`RESIDUAL_STORES`."""

    device: str | torch.device = "auto"
    max_gpu_memory: int | None = None
    chunk_size: int | None = None
    residual_store: str = "auto"

    def __post_init__(self) -> None:
        if self.residual_store not in RESIDUAL_STORES:
            raise ValueError(f"residual_store must be one of {RESIDUAL_STORES}, got {self.residual_store!r}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"chunk size must be at least 1, got {self.chunk_size}")


class RecordStreamer:
    """A model directory loaded and planned for streaming whole records.

    Raises (on construction):
        ModelDirectoryError: ``model_dir`` cannot be loaded. UnavailableError: ``cuda`` without a
            GPU, or a GPU budget too small for the weights and a minimal chunk (exit 69).
    """

    def __init__(self, model_dir: str | os.PathLike, settings: StreamSettings, log: Callable[[str], None]):
        self.settings, self.log = settings, log
        self.model, self.device = load_model(model_dir, settings.device)
        self.config = self.model.config
        self.plan = plan_stream(self.model, self.device, max_device_bytes=settings.max_gpu_memory,
                                chunk=settings.chunk_size)
        log(f"memory plan: {self.plan.describe()}; a record's residual stream takes "
            f"{format_bytes(self.config.hidden_size * 4)} per base between layers")

    def per_base(self, record: str, ids: np.ndarray, out: np.ndarray, *, work_dir: str | os.PathLike,
                 what: str = "embedding", layer: int | None = None, conjoin: bool | None = None,
                 progress: Callable[[float], None] | None = None) -> None:
        """Fill ``out`` (len(ids), k) with the per-base values of one record (token ids, uint8):
        :func:`genomamba.model.streaming.streamed_per_base`'s ``what``, run as :meth:`run` runs it.

        Raises:
            UnavailableError: as :meth:`run`.
        """
        from genomamba.model.streaming import streamed_per_base

        self.run(record, ids, lambda model, input_ids, **stream: streamed_per_base(
            model, input_ids, out[None], what=what, layer=layer, conjoin=conjoin, **stream),
            work_dir=work_dir, progress=progress)

    def run(self, record: str, ids: np.ndarray, stream: Callable[..., T], *, work_dir: str | os.PathLike,
            progress: Callable[[float], None] | None = None) -> T:
        """``stream(model, input_ids, chunk=, device=, residual=, store_dir=, progress=)`` for one
        record (token ids, uint8; ``input_ids`` is them as a (1, L) tensor), one of the streaming
        functions of :mod:`genomamba.model.streaming`, under the plan: the residual stream waits
        where :func:`genomamba.infer.memory_plan.place_residual` puts it (on the GPU, in host
        memory, or in a memmap in ``work_dir``), in inference mode with the evaluation's precision.
        Returns what ``stream`` returns.

        Raises:
            UnavailableError: the residual stream fits neither in memory nor on ``work_dir``'s disk;
                a genuine out-of-memory (GPU or host), as one message saying what to change.
        """
        nbytes = len(ids) * self.config.hidden_size * 4
        place = place_residual(nbytes, self.settings.residual_store, work_dir, self.plan)
        if place.where == "disk" or len(ids) > place.chunk:
            where = {"device": "GPU memory", "pinned": "page-locked host memory", "memory": "host memory",
                     "disk": f"a file in {work_dir}"}
            chunks = -(-len(ids) // place.chunk)
            self.log(f"{record}: {len(ids):,} bases in {chunks} chunks of {place.chunk:,}, residual "
                     f"stream of {format_bytes(nbytes)} in {where[place.where]}")
        try:
            with torch.inference_mode(), autocast_for(self.device):
                return stream(self.model, torch.from_numpy(ids)[None], chunk=place.chunk, device=self.device,
                              residual=place.where, store_dir=work_dir, progress=progress)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            raise self._out_of_memory(record, len(ids), place, exc) from None

    def _out_of_memory(self, record: str, length: int, place: Placement,
                       exc: BaseException) -> UnavailableError:
        """One message for a genuine out-of-memory: what ran out, at what plan, what to change."""
        detail, gpu = out_of_memory_detail(exc)
        if gpu:
            advice = ("lower --max-gpu-memory or --chunk-size (the plan's estimate was "
                      f"{format_bytes(self.plan.device_bytes)}), free the GPU, or use --device cpu")
            if place.where == "device":
                advice = "use --residual-store memory, " + advice
        else:
            advice = "use --residual-store disk, a smaller --chunk-size, or a machine with more memory"
        what = "GPU memory" if gpu else "memory"
        return UnavailableError(f"{record}: out of {what} streaming {length:,} bases in chunks of "
                                f"{place.chunk:,}{': ' + detail if detail else ''}; {advice}")


@contextlib.contextmanager
def work_directory(out: str | os.PathLike) -> Iterator[Path]:
    """A scratch directory beside ``out`` (the disk the user chose for large outputs), removed on
    leaving the block however it is left; parent folders made for it are removed on failure."""
    out = Path(out)
    with made_directories(out.parent):
        scratch = temporary_directory(out.with_name(out.name + ".work"))
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def per_base_array(path: str | os.PathLike | None, length: int, width: int, dtype) -> np.ndarray:
    """A (length, width) array to fill: a ``.npy`` memmap at ``path``, or in memory when None."""
    if path is None:
        return np.zeros((length, width), dtype=dtype)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(length, width))
