"""bigWig tracks of ``genomamba predict`` (``.bw``, ``.bigwig``), written with pyBigWig.

A bigWig holds what a bedGraph holds, one value per window (0-based, half-open), in UCSC's
indexed binary format, which genome browsers read over HTTP a zoom level at a time. Its header
lists every chromosome with its length before the first value, and values must then come
chromosome by chromosome in header order, by increasing position, never overlapping. So, before
any model work, :func:`track_chromosomes` lays out the header in the order the windows will come:

* FASTA (or GenBank) inputs: every record of every file in file order, with its length from one
  streaming pass of the reader the windows come from. That pass reads any input the windows
  accept (gzip, GenBank) and writes no index beside an input; it costs a read of the input, little
  next to running the model over it. A record name in two files is an error (a bigWig holds a
  chromosome once).
* a BED file on a genome: the chromosome lengths from the genome's index (the one the intervals are
  read through), the BED's chromosomes first in the order it names them. The BED must keep each
  chromosome's intervals together, sorted by start and not overlapping (``sort -k1,1 -k2,2n``);
  anything else is an error naming the line, before the run.

pyBigWig is an optional dependency (``pip install 'genomamba[tracks]'``): without it a bigWig
output is refused before any work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from genomamba.errors import InputDataError
from genomamba.optional import optional_module


def require_pybigwig():
    """The pyBigWig module, or exit 69 saying how to install it."""
    return optional_module("pyBigWig", "writing a bigWig track", "tracks", instead="write a .bedgraph")


def track_chromosomes(
    fasta: Sequence[str | os.PathLike],
    *,
    bed: str | os.PathLike | None = None,
    genome: str | os.PathLike | None = None,
    lenient: bool = False,
) -> list[tuple[str, int]]:
    """``[(chromosome, length), ...]`` for a bigWig header, in the order the windows of ``fasta``
    (or of ``bed`` on ``genome``) come; see the module docstring.

    Raises:
        InputDataError: what the readers reject; a record name in two FASTA files; a BED file out
            of order or with overlapping intervals (file and line).
    """
    if bed is not None:
        return _bed_chromosomes(bed, genome)
    from genomamba.io.fasta import FastaReader

    seen: dict[str, str] = {}
    chromosomes = []
    for path in fasta:
        # quiet: the pass that reads the windows gives the same warnings (an empty record skipped)
        with FastaReader(path, lenient=lenient, softmask=False, warn=lambda message: None) as reader:
            for record in reader.records():
                for _ in record.chunks():
                    pass
                if record.name in seen:
                    raise InputDataError(f"record '{record.name}' is in both {seen[record.name]} and {path}: "
                                         "a bigWig track holds each chromosome once")
                seen[record.name] = str(path)
                chromosomes.append((record.name, record.stats.length))
    return chromosomes


def _bed_chromosomes(bed: str | os.PathLike, genome: str | os.PathLike) -> list[tuple[str, int]]:
    from genomamba.io.bed import intervals, parse_bed, standard_columns
    from genomamba.io.indexed import IndexedFasta

    with IndexedFasta(genome) as fasta:
        lengths = dict(fasta.lengths)
    order: dict[str, None] = {}
    previous = None
    for interval in intervals(parse_bed(bed, required=(), headerless=standard_columns(bed)), lengths, genome):
        if previous is not None:
            same = interval.chrom == previous.chrom
            if (same and interval.start < previous.end) or (not same and interval.chrom in order):
                line = previous.where.rsplit(": ", 1)[-1]  # "line N" of the same file
                raise InputDataError(
                    f"{interval.where}: {interval.chrom}:{interval.start}-{interval.end} comes after "
                    f"{previous.chrom}:{previous.start}-{previous.end} ({line}); "
                    "a bigWig track needs each chromosome's intervals together, sorted by start and not "
                    "overlapping: sort the BED (sort -k1,1 -k2,2n) and merge overlaps, or write a .bedgraph"
                )
        order[interval.chrom] = None
        previous = interval
    return [(chrom, lengths[chrom]) for chrom in order] + [
        (chrom, length) for chrom, length in lengths.items() if chrom not in order
    ]


def bigwig_appender(
    path: Path, chromosomes: Sequence[tuple[str, int]], column: str, closing: contextlib.ExitStack
) -> Callable[[pd.DataFrame], None]:
    """``append(frame)`` adding the ``record start end <column>`` rows of each frame to a bigWig
    at ``path`` whose header holds ``chromosomes``; the file is closed with ``closing``.

    Raises:
        UnavailableError: pyBigWig is not installed.
        ValueError: rows out of the header's order or overlapping (track_chromosomes and the
            window checks make sure they are not).
    """
    writer = require_pybigwig().open(str(path), "w")
    closing.callback(writer.close)
    writer.addHeader([(str(chrom), int(length)) for chrom, length in chromosomes], maxZooms=10)

    def append(frame: pd.DataFrame) -> None:
        try:
            writer.addEntries(frame["record"].astype(str).tolist(), frame["start"].astype(int).tolist(),
                              ends=frame["end"].astype(int).tolist(),
                              values=frame[column].astype(float).tolist())
        except RuntimeError as exc:  # libBigWig's "entries out of order"
            first = frame.iloc[0]
            raise ValueError(f"{path}: cannot add the windows from {first['record']}:{first['start']} to the "
                             f"bigWig: {exc}") from None

    return append
