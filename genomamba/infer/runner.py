"""The loop ``embed`` and ``predict`` share: load a model directory, run it over batches of windows.

The model runs in eval mode under ``torch.inference_mode`` (bf16 autocast on CUDA, fp32 on CPU, as
in evaluation), on batches padded to their longest window; padding is masked and changes no
result. What comes back per batch is a (batch, k) array; every ``ROWS_PER_CHUNK`` windows the
outputs, next to each window's file, record, start, end and N count in input order, are written to the
output table (tables.streaming_table), so memory stays that of one chunk however many windows
the input holds. With ``context="record"`` the windows' outputs come instead from one streamed
pass over each whole record (genomamba.infer.record_context), into the same tables. Under
``torchrun`` the batches (or records) are shared among the processes and rank 0 writes the one
table (genomamba.infer.sharding).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from genomamba.alphabet import N_ID
from genomamba.errors import InputDataError
from genomamba.infer.bigwig import require_pybigwig, track_chromosomes
from genomamba.infer.model_inputs import MostlyN, SequenceWindow, batches, bed_windows, fasta_windows
from genomamba.infer.sharding import Shard, ShardedRun, sharded_run
from genomamba.infer.tables import (
    TRACK_FORMATS,
    check_outputs_are_not_inputs,
    check_track_windows,
    streaming_table,
    table_format,
)
from genomamba.runtime.batching import pad_batch
from genomamba.runtime.log import stderr_log
from genomamba.runtime.precision import autocast_for

if TYPE_CHECKING:  # whole_records imports this module
    from genomamba.infer.whole_records import StreamSettings

#: Every table's first columns: where the window lies, and how many of its bases are N (N itself,
#: IUPAC ambiguity codes, lenient replacements), for filtering out windows a model cannot read.
WINDOW_COLUMNS = ("file", "record", "start", "end", "n_bases")
#: After those, for windows of BED intervals: the interval's name (empty without one) and strand.
INTERVAL_COLUMNS = ("name", "strand")
#: How a window is read: alone (``window``), or from the hidden states of its whole record (``record``).
CONTEXTS = ("window", "record")
LOG = logging.getLogger("genomamba.infer")


def load_model(model_dir: str | os.PathLike, device: str | torch.device):
    """(model in eval mode on the device, the device); ``device`` is auto, cpu or cuda, or the
    torch device a process of several was given (:func:`genomamba.infer.sharding.sharded_run`).

    Raises:
        ModelDirectoryError: a directory that is not a complete model directory (exit 65).
        UnavailableError: ``cuda`` without a GPU (exit 69).
    """
    from genomamba.model_directory import from_pretrained
    from genomamba.runtime.device import resolve_device

    device_t = device if isinstance(device, torch.device) else resolve_device(device)
    return from_pretrained(model_dir, device=device_t), device_t


#: Windows whose outputs are gathered before they are written (one Parquet row group): with
#: 256-wide embeddings a chunk holds 16 MiB of values.
ROWS_PER_CHUNK = 16_384


def run_over_windows(
    windows: Iterable[SequenceWindow],
    compute: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    *,
    batch_size: int,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
    interval_columns: bool = False,
    run: ShardedRun | None = None,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Chunks of (one row per window: WINDOW_COLUMNS, and INTERVAL_COLUMNS if asked; their (n, k)
    float32 outputs), in input order, each of about ``ROWS_PER_CHUNK`` windows; ``compute(ids,
    mask)`` maps a padded batch to a (batch, k) tensor; ``progress`` receives the bases of each
    batch. No window gives no chunk. ``run``: under torchrun, this process computes the batches of
    its :class:`~genomamba.infer.sharding.Shard` and rank 0 gets every chunk (the others none)."""
    shard = run.shard if run is not None else Shard()

    def outputs() -> Iterator[tuple[list[SequenceWindow], np.ndarray]]:
        skipped = None if progress is None else (lambda batch: progress(_bases(batch)))
        for batch in shard.take(batches(windows, batch_size), skipped):
            ids, mask = pad_batch([w.ids for w in batch], device)
            with torch.inference_mode(), autocast_for(device):
                out = compute(ids, mask)
            if progress is not None:
                progress(_bases(batch))
            yield batch, out.float().reshape(len(batch), -1).cpu().numpy()

    return table_chunks(outputs(), interval_columns, run)


def _bases(batch: list[SequenceWindow]) -> int:
    return sum(w.end - w.start for w in batch)


def table_chunks(
    outputs: Iterable[tuple[list[SequenceWindow], np.ndarray]],
    interval_columns: bool = False,
    run: ShardedRun | None = None,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """``(windows, their (n, k) float32 outputs)`` pairs regrouped as :func:`run_over_windows`'
    chunks: (window columns, outputs) of about ``ROWS_PER_CHUNK`` windows (more when one pair holds
    more), in order. ``run``: the pairs are this process's; rank 0 gets the chunks of every rank's
    pairs, in the order of one process (:meth:`~genomamba.infer.sharding.ShardedRun.gather`)."""
    names = WINDOW_COLUMNS + (INTERVAL_COLUMNS if interval_columns else ())
    # a unit is one pair with its windows turned into rows: what a rank writes for rank 0
    units = (([_row(w, interval_columns) for w in windows], values) for windows, values in outputs)
    if run is not None:
        units = run.gather(units, rows=lambda unit: len(unit[0]), chunk_rows=ROWS_PER_CHUNK)
    meta: list[tuple] = []
    parts: list[np.ndarray] = []
    for rows, values in units:
        parts.append(values)
        meta.extend(rows)
        if len(meta) >= ROWS_PER_CHUNK:
            yield _chunk(meta, parts, names)
            meta, parts = [], []
    if meta:
        yield _chunk(meta, parts, names)


def _row(w: SequenceWindow, interval_columns: bool) -> tuple:
    row = (w.file, w.record, w.start, w.end, int(np.count_nonzero(w.ids == N_ID)))
    return row + (w.name, w.strand) if interval_columns else row


def _chunk(meta: list[tuple], parts: list[np.ndarray], names: tuple[str, ...]):
    """(the window columns of ``meta`` as a frame, the stacked outputs)."""
    frame = pd.DataFrame(meta, columns=list(names))
    frame[["start", "end", "n_bases"]] = frame[["start", "end", "n_bases"]].astype("int64")
    return frame, np.concatenate(parts).astype(np.float32, copy=False)


def model_table(
    model_dir: str | os.PathLike,
    fasta: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    compute: Callable,
    columns: Callable[[np.ndarray], pd.DataFrame],
    *,
    window: int | None = None,
    stride: int | None = None,
    last: str = "keep",
    batch_size: int = 16,
    device: str = "auto",
    lenient: bool = False,
    provenance: dict | None = None,
    track: str | None = None,
    progress: Callable[[int], None] | None = None,
    bed: str | os.PathLike | None = None,
    genome: str | os.PathLike | None = None,
    track_out: str | os.PathLike | None = None,
    max_n_fraction: float = 1.0,
    context: str = "window",
    record_compute: Callable | None = None,
    stream: StreamSettings | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """Run ``compute(model, ids, mask)`` over every record or window of the ``fasta`` files and
    write the window columns joined with ``columns(outputs)`` to ``out``, chunk by chunk; returns
    ``(rows written, the table's column names)``.

    ``context``: ``window`` (each window is read alone) or ``record``: every record runs in one
    streamed pass and each window's outputs are ``record_compute(model, input_ids, spans, **stream)``
    of its span there (:func:`genomamba.infer.record_context.run_over_records`; ``stream``: the
    memory plan's settings, whose device ``device`` overrides; ``log``: where the plan is told;
    ``batch_size`` has no use). FASTA files only.

    ``window``/``stride``/``last``/``lenient``: :func:`genomamba.infer.model_inputs.fasta_windows`;
    ``batch_size`` windows per forward pass; ``device`` auto, cpu or cuda; ``provenance``: more
    of what a Parquet output records (the command and its own options), beside the model's weights
    digest and these options; ``track``: the column a track output (bedGraph, bigWig) holds;
    ``progress``: called with the number of bases of every batch done (a progress bar). ``bed`` and
    ``genome`` instead of ``fasta``: the intervals of a BED file read from a genome FASTA
    (:func:`genomamba.infer.model_inputs.bed_windows`), with INTERVAL_COLUMNS added. ``track_out``: a
    bedGraph or bigWig of the ``track`` column written in the same pass (a failed run leaves
    neither; both are renamed into place at the end); a bigWig's header is laid out before the
    model runs (:func:`genomamba.infer.bigwig.track_chromosomes`). ``max_n_fraction``: windows with
    a larger fraction of N are left out (and counted in one log line), as tokenize leaves them
    out; 1.0 keeps all.

    Raises:
        ValueError: an unknown output suffix, overlapping windows for a track output, not
            exactly one of FASTA files and a BED file with its genome, an output path that names
            an input, an unknown context or record context with a BED file (before any work); a
            bad window or stride.
        InputDataError: what the FASTA reader rejects, even after many chunks were written, or no
            window at all; ``out`` is then untouched. For a bigWig, a BED out of order (before any
            work).
        ModelDirectoryError, UnavailableError: see :func:`load_model`; a bigWig without pyBigWig.
        RankFailedError: under torchrun, another process failed (:mod:`genomamba.infer.sharding`).
    """
    if track_out is not None and table_format(track_out) not in TRACK_FORMATS:
        raise ValueError(f"{track_out}: a track output must end in .bedgraph or .bdg (or with .gz), .bw or "
                         ".bigwig")
    outputs = (out, *([track_out] if track_out is not None else []))
    # an unusable output fails before any work
    if any(table_format(path) in TRACK_FORMATS for path in outputs):
        check_track_windows(window, stride, last)
    fasta = [str(path) for path in fasta]
    check_outputs_are_not_inputs((out, track_out), (*fasta, bed, genome, model_dir))
    if bool(fasta) == (bed is not None) or (bed is None) != (genome is None):
        raise ValueError("give FASTA files, or a BED file with the genome FASTA its intervals are on "
                         "(--bed with --genome), not both")
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {', '.join(CONTEXTS)}, got {context!r}")
    if context == "record" and bed is not None:
        raise ValueError("--context record reads whole FASTA records, not --bed intervals")
    if context == "window" and stream is not None:
        raise ValueError("--max-gpu-memory, --chunk-size and --residual-store plan --context record")
    cut = dict(window=window, stride=stride, last=last, lenient=lenient)
    inputs = {"bed": str(bed), "genome": str(genome)} if bed is not None else {}
    options = {**cut, **inputs, "max_n_fraction": max_n_fraction, "context": context, **(provenance or {})}
    # one process, or this one's share under torchrun: rank 0 writes the outputs, the others hand
    # their rows to it and return (0, [])
    with sharded_run(device, out) as run:
        chromosomes = None
        if any(table_format(path) == "bigwig" for path in outputs):
            require_pybigwig()
            if run.is_main:
                chromosomes = track_chromosomes(fasta, bed=bed, genome=genome, lenient=lenient)
        if context == "window":
            model, device_t = load_model(model_dir, run.device)
            windows = fasta_windows(fasta, **cut) if bed is None else bed_windows(bed, genome, **cut)
            windows = _warn_beyond(_leave_out_mostly_n(windows, max_n_fraction), model.config.max_length)
        else:
            from genomamba.infer.whole_records import RecordStreamer, StreamSettings

            settings = dataclasses.replace(stream or StreamSettings(), device=run.device)
            streamer = RecordStreamer(model_dir, settings, log or stderr_log)
            options["chunk"] = streamer.plan.chunk
        # hashes the weights: once for every output, on the process that writes them
        provenance = output_provenance(model_dir, options) if run.is_main else None
        rows, names = 0, []
        with contextlib.ExitStack() as tables:
            appends = [tables.enter_context(streaming_table(path, provenance, track=track,
                                                            chromosomes=chromosomes))
                       for path in (outputs if run.is_main else ())]
            if context == "window":
                chunks = run_over_windows(windows, lambda ids, mask: compute(model, ids, mask),
                                          batch_size=batch_size, device=device_t, progress=progress,
                                          interval_columns=bed is not None, run=run)
            else:
                from genomamba.infer.record_context import run_over_records
                from genomamba.infer.whole_records import work_directory

                chunks = table_chunks(run_over_records(
                    streamer, fasta_windows(fasta, lenient=lenient), record_compute, window=window,
                    stride=stride, last=last, max_n_fraction=max_n_fraction,
                    work_dir=tables.enter_context(work_directory(out)), progress=progress, shard=run.shard),
                    run=run)
            for frame, values in chunks:
                frame = frame.join(columns(values))
                for append in appends:
                    append(frame)
                rows, names = rows + len(frame), list(frame.columns)
            if rows == 0 and run.is_main:
                raise InputDataError(f"{', '.join(fasta) or bed}: no sequence to read (every record is "
                                     "empty, shorter than --window with --last drop, or over "
                                     "--max-n-fraction)")
    return rows, names


def _leave_out_mostly_n(windows: Iterable[SequenceWindow], max_n_fraction: float) -> Iterator[SequenceWindow]:
    """The windows whose fraction of N is at most ``max_n_fraction``; logs how many were left out."""
    kept = MostlyN(max_n_fraction)
    yield from filter(kept.keeps, windows)
    kept.warn()


def _warn_beyond(windows: Iterable[SequenceWindow], max_length: int | None) -> Iterator[SequenceWindow]:
    """The windows unchanged; logs once if one is longer than the model's preset is sized for."""
    warned = False
    for w in windows:
        if max_length is not None and not warned and w.end - w.start > max_length:
            LOG.warning("%s: record '%s' is read as %d bases, longer than the %d the model is sized for; "
                        "--window cuts it (memory grows with the length)", w.file, w.record, w.end - w.start,
                        max_length)
            warned = True
        yield w


def output_provenance(model_dir: str | os.PathLike, options: dict) -> dict:
    """What a Parquet output records about how it was made (tables.streaming_table)."""
    from genomamba import __version__
    from genomamba.io.compression import sha256_file
    from genomamba.model_directory import WEIGHTS_FILE

    return {"genomamba_version": __version__, "model": str(model_dir),
            "model_weights_sha256": sha256_file(Path(model_dir) / WEIGHTS_FILE), "options": options}
