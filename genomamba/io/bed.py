"""BED intervals on a genome: the columns of a BED file, checked line by line against the genome,
and the token ids of each interval.

A BED file here is tab-separated ``chrom start end ...`` (0-based, half-open), with
``track``/``browser`` lines and ``#`` comments skipped. Its columns are named either by a header
line (``#chrom start end name label ...`` or the same without ``#``; ``chr``/``chromosome``/``seqid``,
``chromStart``/``chromEnd`` and ``id`` are read as ``chrom``, ``start``, ``end``, ``name``) or, without
one, by position, as the caller says (:func:`parse_bed`'s ``headerless``). Every interval must lie
on a chromosome of the genome, with ``0 <= start < end <= length`` and a strand of ``+``, ``-`` or
``.`` (``+`` when there is no strand column). Every error is an
:class:`~genomamba.errors.InputDataError` naming the file and line.

Used by the labelled inputs (genomamba.io.labels: a ``label`` column) and by ``embed``/``predict``
(genomamba.infer.model_inputs: the standard BED3-BED12 columns).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from genomamba.alphabet import EncodingStats, InvalidCharacterError, encode, reverse_complement
from genomamba.errors import InputDataError
from genomamba.io.compression import read_text
from genomamba.io.records import invalid_character_message

#: The standard columns of BED, by position (BED3 to BED12).
BED_COLUMNS = ("chrom", "start", "end", "name", "score", "strand", "thickstart", "thickend", "itemrgb",
               "blockcount", "blocksizes", "blockstarts")
# BEND's BED files name the first column "chromosome"
_ALIASES = {
    "chr": "chrom", "chromosome": "chrom", "seqid": "chrom",
    "chromstart": "start", "chromend": "end", "id": "name",
}


@dataclass(frozen=True)
class BedInterval:
    """One line of a BED file: ``[start, end)`` on ``chrom``, its strand and every named column."""

    where: str  # "FILE: line N", for messages
    chrom: str
    start: int
    end: int
    strand: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class ParsedBed:
    """A BED file's column names and its data lines (line number, text), not yet checked."""

    path: str
    names: list[str]
    lines: list[tuple[int, str]]


def _header(fields: list[str], known: tuple[str, ...]) -> list[str] | None:
    """Column names when ``fields`` (a line split on tabs) is a header line, else None."""
    first = fields[0]
    if first.startswith("#"):
        names = [f.strip().lower().lstrip("#") for f in fields]
        is_header = any(n in names for n in known) or names[0] in ("chrom", "chr", "chromosome", "seqid")
        return names if is_header else None
    if len(fields) >= 2 and not fields[1].strip().lstrip("-").isdigit():
        return [f.strip().lower() for f in fields]
    return None


def _track_or_browser(line: str) -> bool:
    # the whole first word: a chromosome may be called 'track7' (startswith dropped its lines unsaid)
    return line.split(None, 1)[0] in ("track", "browser")


def parse_bed(
    path: str | os.PathLike,
    *,
    required: tuple[str, ...],
    headerless: Callable[[int, int], list[str]],
) -> ParsedBed:
    """Read the file and name its columns.

    Args:
        required: columns a header line must name (beyond chrom, start and end).
        headerless: ``(width, line number) -> names`` for a file without a header line, from the
            first line's number of columns; it raises InputDataError for a width it cannot name.

    Raises:
        InputDataError: an empty file, a header missing a required column, no interval.
    """
    text = read_text(path)
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1)]
    lines = [(n, line) for n, line in lines if line.strip() and not _track_or_browser(line)]
    if not lines:
        raise InputDataError(f"{path}: empty file: no BED intervals")
    # The header, if any, is the first line that is not a plain '#' comment; without one, that
    # first line is data and its width names the columns (a leading comment is not a header).
    first = next((i for i, (_, line) in enumerate(lines) if not line.startswith("#")
                  or _header(line.split("\t"), required) is not None), None)
    if first is None:
        raise InputDataError(f"{path}: no BED intervals, only '#' comment lines")
    names = _header(lines[first][1].split("\t"), required)
    if names is None:
        lines = lines[first:]
        names = headerless(len(lines[0][1].split("\t")), lines[0][0])
    else:
        header_line = lines[first][0]
        lines = lines[first + 1 :]
        names = [_ALIASES.get(n, n) for n in names]
        missing = [c for c in ("chrom", "start", "end", *required) if c not in names]
        if missing:
            raise InputDataError(
                f"{path}: line {header_line}: missing column(s) {', '.join(map(repr, missing))} in the "
                f"header (found: {', '.join(map(repr, names))}; columns separated by tabs)"
            )
    lines = [(n, line) for n, line in lines if not line.startswith("#")]
    if not lines:
        raise InputDataError(f"{path}: no intervals after the header")
    return ParsedBed(str(path), names, lines)


def standard_columns(path: str | os.PathLike) -> Callable[[int, int], list[str]]:
    """``headerless`` for plain BED: BED3 to BED12, named by position."""

    def names(width: int, line: int) -> list[str]:
        if not 3 <= width <= len(BED_COLUMNS):
            raise InputDataError(f"{path}: line {line}: {width} column(s); BED has 3 to 12 tab-separated "
                                 "columns (chrom, start, end, name, score, strand, ...)")
        return list(BED_COLUMNS[:width])

    return names


def intervals(bed: ParsedBed, lengths: Mapping[str, int], genome: str | os.PathLike) -> Iterator[BedInterval]:
    """The intervals of ``bed`` in file order, each checked against the chromosome ``lengths`` of
    ``genome`` (named in messages).

    Raises:
        InputDataError: a line with the wrong number of columns, non-integer coordinates, an unknown
            chromosome, ``start >= end``, an interval past the chromosome's end, a bad strand.
    """
    col = {name: i for i, name in enumerate(bed.names)}
    for number, line in bed.lines:
        where = f"{bed.path}: line {number}"
        fields = line.split("\t")
        if len(fields) != len(bed.names):
            raise InputDataError(f"{where}: {len(fields)} tab-separated column(s), expected {len(bed.names)}")
        chrom = fields[col["chrom"]].strip()
        try:
            start, end = int(fields[col["start"]]), int(fields[col["end"]])
        except ValueError:
            raise InputDataError(
                f"{where}: start and end (columns {col['start'] + 1}, {col['end'] + 1}) must be "
                f"integers, got {fields[col['start']]!r}, {fields[col['end']]!r}"
            ) from None
        if chrom not in lengths:
            raise InputDataError(f"{where}: chromosome {chrom!r} is not in the genome {genome}")
        length = lengths[chrom]
        if not 0 <= start < end:
            raise InputDataError(f"{where}: need 0 <= start < end, got start {start}, end {end}")
        if end > length:
            raise InputDataError(
                f"{where}: interval {chrom}:{start}-{end} runs past the end of {chrom!r} "
                f"(length {length:,}) in {genome}"
            )
        strand = fields[col["strand"]].strip() if "strand" in col else "+"
        if strand not in ("+", "-", "."):
            raise InputDataError(f"{where}: strand must be +, - or ., got {strand!r}")
        yield BedInterval(where, chrom, start, end, strand, {n: fields[i] for n, i in col.items()})


def forward_ids(fasta, interval: BedInterval, genome: str | os.PathLike, *, lenient: bool = False,
                rna: bool = False) -> tuple[np.ndarray, EncodingStats]:
    """Token ids of ``interval`` as the genome's forward strand reads it, from ``fasta`` (an open
    :class:`genomamba.io.indexed.IndexedFasta` of ``genome``), and what encoding them counted.

    Raises:
        InputDataError: a base that is not DNA, naming the BED line and the genome position.
    """
    raw = fasta.fetch(interval.chrom, interval.start, interval.end)
    try:
        ids, _, stats = encode(raw, rna=rna, lenient=lenient)
    except InvalidCharacterError as exc:
        message = f"{interval.chrom}:{interval.start + exc.offset + 1}: {invalid_character_message(exc.byte)}"
        raise InputDataError(f"{interval.where}: {genome} {message}") from None
    return ids, stats


def interval_ids(fasta, interval: BedInterval, genome: str | os.PathLike, *, lenient: bool = False,
                 rna: bool = False) -> tuple[np.ndarray, EncodingStats]:
    """:func:`forward_ids`, reverse-complemented on the ``-`` strand: the interval as its strand
    reads it."""
    ids, stats = forward_ids(fasta, interval, genome, lenient=lenient, rna=rna)
    return (reverse_complement(ids) if interval.strand == "-" else ids), stats
