"""The model's inputs: FASTA records and BED intervals as the sequences a model reads, whole or
cut into windows, in batches.

Whole records are the default, so a model sees exactly the sequence it is given (padding in a
batch never changes a result: the model masks it). ``window``/``stride`` cut long records (a
chromosome) into windows, with :func:`genomamba.io.windows.window_spans`' policies for the last
one. Every window remembers its file, record and 0-based half-open ``[start, end)``.

Nothing is read as N silently: IUPAC ambiguity codes (and, with ``lenient``, invalid
characters) become N as everywhere in the project (docs/input-formats.md), and each file that
had any is summed up in one logged warning (how many records, which codes how often), so a
genome full of ambiguity codes is noticed without a line per record. The tables then give each
window's N count (runner.WINDOW_COLUMNS).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np

from genomamba.alphabet import reverse_complement
from genomamba.io.bed import forward_ids, intervals, parse_bed, standard_columns
from genomamba.io.fasta import read_fasta
from genomamba.io.records import ReadAsNTally
from genomamba.io.shards import window_n_fraction
from genomamba.io.windows import window_spans

LOG = logging.getLogger("genomamba.infer")


@dataclass(frozen=True)
class SequenceWindow:
    """Bases ``[start, end)`` of one record (uint8 token ids); from a BED file, also the
    interval's name and strand (the ids of a ``-`` interval are its reverse complement)."""

    file: str
    record: str
    start: int
    end: int
    ids: np.ndarray
    name: str = ""
    strand: str = ""


def fasta_windows(
    paths: Iterable[str | os.PathLike],
    *,
    window: int | None = None,
    stride: int | None = None,
    last: str = "keep",
    lenient: bool = False,
) -> Iterator[SequenceWindow]:
    """Every record of every file, in order: whole (``window=None``) or as windows of ``window``
    bases every ``stride`` (default: ``window``, no overlap).

    Raises:
        InputDataError: what :class:`genomamba.io.fasta.FastaReader` rejects (file, line, what is
            wrong). An empty record is skipped with a logged warning (file, record, line), as
            everywhere the project reads FASTA.
        ValueError: a non-positive window or stride, or an unknown ``last`` policy.
    """
    _check_stride(window, stride)
    for path in paths:
        tally = ReadAsNTally()
        for record in read_fasta(path, lenient=lenient, softmask=False):
            tally.add(record.stats.encoding)
            # never empty: the reader skips empty records, with a warning
            whole = SequenceWindow(str(path), record.name, 0, int(record.ids.size), record.ids)
            yield from windows_of(whole, window=window, stride=stride, last=last)
        tally.warn(str(path), "records")


def windows_of(record: SequenceWindow, *, window: int | None = None, stride: int | None = None,
               last: str = "keep") -> Iterator[SequenceWindow]:
    """The windows of a record read whole (as :func:`fasta_windows` gives it without a window), cut
    as :func:`fasta_windows` cuts them; their ids are views of the record's.

    Raises:
        ValueError: as :func:`fasta_windows`.
    """
    _check_stride(window, stride)
    for start, end in _spans(record.end - record.start, window, stride, last):
        yield SequenceWindow(record.file, record.record, record.start + start, record.start + end,
                             record.ids[start:end], record.name, record.strand)


class MostlyN:
    """Which windows a model reads: those with at most ``max_n_fraction`` N (assembly gaps), as
    tokenize keeps them; :meth:`keeps` counts the others and :meth:`warn` reports them in one
    warning. 1.0 keeps all.

    Raises (on construction):
        ValueError: a fraction outside [0, 1].
    """

    def __init__(self, max_n_fraction: float):
        if not 0.0 <= max_n_fraction <= 1.0:
            raise ValueError(f"max_n_fraction must be within [0, 1], got {max_n_fraction}")
        self.max_n_fraction, self.left_out = max_n_fraction, 0

    def keeps(self, w: SequenceWindow) -> bool:
        if self.max_n_fraction < 1.0 and window_n_fraction(w.ids, w.end - w.start) > self.max_n_fraction:
            self.left_out += 1
            return False
        return True

    def warn(self) -> None:
        if self.left_out:
            LOG.warning("%d windows with more than %g N left out (--max-n-fraction)", self.left_out,
                        self.max_n_fraction)


def bed_windows(
    bed: str | os.PathLike,
    genome: str | os.PathLike,
    *,
    window: int | None = None,
    stride: int | None = None,
    last: str = "keep",
    lenient: bool = False,
) -> Iterator[SequenceWindow]:
    """The intervals of a BED file (BED3 to BED12, or columns named by a header line) read from
    ``genome``, whole or in windows as :func:`fasta_windows` cuts records. ``record``, ``start`` and
    ``end`` are genome coordinates; a ``-`` interval's windows are read as their reverse complement.

    Raises:
        InputDataError: what genomamba.io.bed rejects (file, line, what is wrong), or a base of the
            genome that is not DNA (the BED line and the genome position).
        ValueError: as :func:`fasta_windows`.
    """
    from genomamba.io.indexed import IndexedFasta

    _check_stride(window, stride)
    parsed = parse_bed(bed, required=(), headerless=standard_columns(bed))
    tally = ReadAsNTally()
    with IndexedFasta(genome) as fasta:
        for interval in intervals(parsed, fasta.lengths, genome):
            # windows are cut in genome coordinates, then each one oriented by the strand
            forward, stats = forward_ids(fasta, interval, genome, lenient=lenient)
            tally.add(stats)
            for start, end in _spans(interval.end - interval.start, window, stride, last):
                piece = forward[start:end]
                yield SequenceWindow(str(bed), interval.chrom, interval.start + start, interval.start + end,
                                     reverse_complement(piece) if interval.strand == "-" else piece,
                                     interval.fields.get("name", "").strip(), interval.strand)
    tally.warn(f"{bed} (sequences from {genome})", "intervals")


def _check_stride(window: int | None, stride: int | None) -> None:
    if window is None and stride is not None:
        raise ValueError("stride needs a window")


def _spans(length: int, window: int | None, stride: int | None, last: str) -> list[tuple[int, int]]:
    """The ``[start, end)`` offsets read of a sequence of ``length``: all of it, or its windows."""
    return [(0, length)] if window is None else window_spans(length, window, stride or window, last)


def batches(windows: Iterable[SequenceWindow], size: int) -> Iterator[list[SequenceWindow]]:
    """Consecutive lists of at most ``size`` windows."""
    iterator = iter(windows)
    while batch := list(islice(iterator, size)):
        yield batch
