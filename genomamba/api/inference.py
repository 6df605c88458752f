"""The inference commands as functions: ``embed`` (pooled, or ``--per-base``), ``predict``,
``score-variants`` and ``track``.

Each is what its ``genomamba`` command runs once the options are parsed: it holds the lock of
every output it writes (a second process gets :class:`~genomamba.io.locks.OutputBusyError`, exit
75) and writes nothing unless the whole run succeeds. Options that cannot work together (an
unknown output suffix, a stride without a window, an output that names an input) raise
:class:`~genomamba.errors.UsageError`. A tuning parameter left at None takes the library's default
(:mod:`genomamba.api.options`).

Common parameters: ``model_dir`` (a model directory, or the name of a shipped model:
:func:`~genomamba.api.options.model_path`), ``fasta`` (FASTA or GenBank files), ``out``
(the output; its suffix picks the format), ``device`` (auto, cpu, cuda), ``lenient`` (read invalid
characters as N), ``log`` (one-line messages; default stderr), ``progress`` (called with the
number of bases, or variants, done).

Under ``torchrun``, ``embed`` (not ``--per-base``), ``predict`` and ``score-variants`` share the work
among the processes and write one output, the same as one process's (:mod:`genomamba.infer.sharding`):
rank 0 alone holds the locks, logs and reports progress. ``embed_per_base`` and ``track`` run on one
process only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

from genomamba.api.options import Log, Progress, given, model_path, usage_errors

PathLike = str | os.PathLike


@contextlib.contextmanager
def _this_process_writes(outputs: Sequence[PathLike | None], log: Log | None,
                         progress: Progress | None) -> Iterator[tuple[Log | None, Progress | None]]:
    """Hold the locks of ``outputs`` for the block and yield its ``(log, progress)``; under torchrun
    only rank 0, which writes the outputs, locks them, and the others' log and progress are silent."""
    from genomamba.infer.sharding import is_main_process
    from genomamba.io.locks import output_locks

    with usage_errors():
        main = is_main_process()
    with output_locks(outputs if main else [], note=log):
        yield (log, progress) if main else (_silent, None)


def _silent(message: str) -> None:
    """The log of ranks >= 1."""


def _one_process(command: str) -> None:
    """Refuse a command that does not share its work under torchrun (each process would write the
    same output).

    Raises:
        UsageError: several processes.
    """
    from genomamba.errors import UsageError
    from genomamba.runtime.distributed import world_from_env

    with usage_errors():
        processes = world_from_env().world_size
    if processes > 1:
        raise UsageError(f"{command} runs on one process: launch it without torchrun ({processes} processes "
                         "were started)")


def embed(
    model_dir: PathLike,
    fasta: Sequence[PathLike],
    out: PathLike,
    *,
    bed: PathLike | None = None,
    genome: PathLike | None = None,
    window: int | None = None,
    stride: int | None = None,
    last: str | None = None,
    max_n_fraction: float | None = None,
    pooling: str | None = None,
    conjoin: bool | None = None,
    layer: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    context: str = "window",
    max_gpu_memory: int | None = None,
    chunk_size: int | None = None,
    residual_store: str | None = None,
    lenient: bool = False,
    log: Log | None = None,
    progress: Progress | None = None,
) -> dict:
    """One embedding per record of ``fasta`` (or window: ``window``, ``stride``, ``last``; or
    interval of ``bed`` on ``genome``) as a table ``out`` (.parquet, .tsv, .csv; columns emb_0000
    ...; :mod:`genomamba.infer.embed`). ``pooling``: mean, max, first, last, center; ``conjoin``:
    average in the reverse complement (None: for PH models); ``layer``: this layer's output (1 =
    the first; None: the last); ``max_n_fraction``: windows with more N are left out.
    ``context``: ``window`` (each window read alone) or ``record`` (each window from the hidden
    states of its whole record, one streamed pass per record in planned memory: ``max_gpu_memory``,
    ``chunk_size``, ``residual_store`` as :func:`embed_per_base`; FASTA files only;
    :mod:`genomamba.infer.record_context`).

    Returns:
        ``{"out", "rows", "width", "pooling"}``.

    Raises:
        InputDataError: an invalid FASTA or BED file, no sequence at all, a model directory that
            cannot be loaded. UsageError: see the module docstring; a ``layer`` the model lacks.
        UnavailableError: ``device="cuda"`` without a GPU.
    """
    from genomamba.infer.embed import embed_fasta

    model_dir = model_path(model_dir)

    with _this_process_writes([out], log, progress) as (log, progress), usage_errors():
        return embed_fasta(model_dir, list(fasta), out, conjoin=conjoin, layer=layer, lenient=lenient,
                           log=log, progress=progress, context=context,
                           stream=_given_stream_settings(max_gpu_memory, chunk_size, residual_store),
                           **given(bed=bed, genome=genome, window=window, stride=stride, last=last,
                                   max_n_fraction=max_n_fraction, pooling=pooling, batch_size=batch_size,
                                   device=device))


def embed_per_base(
    model_dir: PathLike,
    fasta: Sequence[PathLike],
    out: PathLike,
    *,
    layer: int | None = None,
    dtype: str | None = None,
    conjoin: bool | None = None,
    device: str | None = None,
    max_gpu_memory: int | None = None,
    chunk_size: int | None = None,
    residual_store: str | None = None,
    lenient: bool = False,
    log: Log | None = None,
    progress: Progress | None = None,
) -> dict:
    """One embedding per base of every whole record of ``fasta``, into the new directory ``out``
    (one ``(length, d)`` .npy array per record, index.tsv, manifest.json;
    :mod:`genomamba.infer.per_base`). Each record runs in one exact pass in planned memory:
    ``max_gpu_memory`` (bytes), ``chunk_size`` (bases), ``residual_store`` (auto, device, memory,
    disk); see :class:`~genomamba.infer.whole_records.StreamSettings`. ``dtype``: float32 or float16.

    Returns:
        ``{"out", "records", "bases", "width", "dtype"}``.

    Raises:
        InputDataError: an invalid FASTA file, no sequence, a model directory that cannot be
            loaded. UsageError: ``out`` exists or names an input, a bad dtype or layer.
        UnavailableError: ``device="cuda"`` without a GPU, or a memory budget too small.
    """
    from genomamba.infer.per_base import embed_per_base as write_per_base
    from genomamba.io.locks import output_locks

    model_dir = model_path(model_dir)

    _one_process("embed --per-base")
    with usage_errors(), output_locks([out], note=log):
        settings = _stream_settings(device, max_gpu_memory, chunk_size, residual_store)
        return write_per_base(model_dir, list(fasta), out, layer=layer, conjoin=conjoin, lenient=lenient,
                              settings=settings, log=log, progress=progress, **given(dtype=dtype))


def predict(
    model_dir: PathLike,
    fasta: Sequence[PathLike],
    out: PathLike,
    *,
    bed: PathLike | None = None,
    genome: PathLike | None = None,
    window: int | None = None,
    stride: int | None = None,
    last: str | None = None,
    max_n_fraction: float | None = None,
    track: str | None = None,
    track_out: PathLike | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    context: str = "window",
    max_gpu_memory: int | None = None,
    chunk_size: int | None = None,
    residual_store: str | None = None,
    lenient: bool = False,
    log: Log | None = None,
    progress: Progress | None = None,
) -> dict:
    """A fine-tuned model's predictions for every record (or window, or BED interval; as
    :func:`embed`, ``context`` and its memory settings too) as ``out``: a table (.parquet, .tsv,
    .csv) of class probabilities or values, or a track (.bedgraph, .bw) of the ``track`` column
    (None: the only score of a binary or regression model). ``track_out``: also that track, from
    the same pass (:mod:`genomamba.infer.predict`).

    Returns:
        ``{"out", "rows", "task", "labels"}``.

    Raises:
        InputDataError: an invalid FASTA or BED file, no sequence, a model without a sequence head.
        UsageError: see the module docstring; overlapping windows or an unknown column for a track.
        UnavailableError: ``device="cuda"`` without a GPU, a .bw output without pyBigWig.
    """
    from genomamba.infer.predict import predict_fasta

    model_dir = model_path(model_dir)

    with _this_process_writes([out, track_out], log, progress) as (log, progress), usage_errors():
        return predict_fasta(model_dir, list(fasta), out, track=track, track_out=track_out, lenient=lenient,
                             log=log, progress=progress, context=context,
                             stream=_given_stream_settings(max_gpu_memory, chunk_size, residual_store),
                             **given(bed=bed, genome=genome, window=window, stride=stride, last=last,
                                     max_n_fraction=max_n_fraction, batch_size=batch_size, device=device))


def score_variants(
    model_dir: PathLike,
    vcf: PathLike | None,
    genome: PathLike,
    out: PathLike,
    *,
    regions: Sequence[str] = (),
    window: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    lenient: bool = False,
    log: Log | None = None,
    progress: Progress | None = None,
) -> dict:
    """Zero-shot scores of every SNV of ``vcf`` (or, with ``regions`` instead, of every
    substitution of every position of these ``CHROM:START-END`` regions) on ``genome`` with a
    masked-LM: log P(alt) - log P(ref) in a ``window`` of context (:mod:`genomamba.infer.variants`).
    ``out``: a table (.parquet, .tsv, .csv) or the input VCF with the scores in INFO (.vcf, .vcf.gz,
    .bcf); ``progress`` is called with the alleles scored.

    Returns:
        ``{"out", "rows", "left_out"}``.

    Raises:
        InputDataError: a malformed VCF line, a chromosome or REF the genome disagrees with, no SNV,
            a model that is not a masked-LM. UsageError: see the module docstring; not exactly one
            of ``vcf`` and ``regions``. UnavailableError: no GPU for ``cuda``, a VCF output without pysam.
    """
    from genomamba.infer.variants import score_variants as score

    model_dir = model_path(model_dir)

    with _this_process_writes([out], log, progress) as (log, progress), usage_errors():
        return score(model_dir, vcf, genome, out, regions=tuple(regions), lenient=lenient, log=log,
                     progress=progress, **given(window=window, batch_size=batch_size, device=device))


def track(
    model_dir: PathLike,
    fasta: Sequence[PathLike],
    out: PathLike,
    *,
    score: str | None = None,
    track_out: PathLike | None = None,
    conjoin: bool | None = None,
    device: str | None = None,
    max_gpu_memory: int | None = None,
    chunk_size: int | None = None,
    residual_store: str | None = None,
    lenient: bool = False,
    log: Log | None = None,
    progress: Progress | None = None,
) -> dict:
    """Per-base masked-LM scores of every whole record of ``fasta`` (``ref-ll``: log P(reference
    base); ``entropy``), each record in one exact pass in planned memory (as :func:`embed_per_base`).
    ``out``: a track (.bw, .bedgraph) of the ``score`` or a table of both; ``track_out``: also the
    track, from the same pass (:mod:`genomamba.infer.lm_track`).

    Returns:
        ``{"out", "records", "rows", "score"}``.

    Raises:
        InputDataError: an invalid FASTA file, no A/C/G/T base, a model without a masked-LM head.
        UsageError: see the module docstring. UnavailableError: no GPU for ``cuda``, a .bw output
            without pyBigWig, not enough memory for the plan.
    """
    from genomamba.infer.lm_track import lm_track
    from genomamba.io.locks import output_locks

    model_dir = model_path(model_dir)

    _one_process("track")
    with usage_errors(), output_locks([out, track_out], note=log):
        settings = _stream_settings(device, max_gpu_memory, chunk_size, residual_store)
        return lm_track(model_dir, list(fasta), out, track_out=track_out, conjoin=conjoin, lenient=lenient,
                        settings=settings, log=log, progress=progress, **given(score=score))


def _stream_settings(device: str | None, max_gpu_memory: int | None, chunk_size: int | None,
                     residual_store: str | None):
    from genomamba.infer.whole_records import StreamSettings

    return StreamSettings(max_gpu_memory=max_gpu_memory, chunk_size=chunk_size,
                          **given(device=device, residual_store=residual_store))


def _given_stream_settings(max_gpu_memory: int | None, chunk_size: int | None, residual_store: str | None):
    """The memory settings of ``context="record"``, or None when none was given (the device is
    the command's own ``device``)."""
    if max_gpu_memory is None and chunk_size is None and residual_store is None:
        return None
    return _stream_settings(None, max_gpu_memory, chunk_size, residual_store)
