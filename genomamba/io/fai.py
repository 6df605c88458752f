"""The samtools index of a FASTA (``.fai``, plus ``.gzi`` for BGZF), and a cheap check that an
index describes the file it is used with.

A ``.fai`` line is ``NAME LENGTH OFFSET LINEBASES LINEWIDTH`` (tab-separated): the record's name,
its number of bases, the offset of its first base in the uncompressed text, and the bases and the
bytes of each full line (their difference is the line end: 1 for ``\\n``, 2 for ``\\r\\n``). A
``.gzi`` (htslib) maps BGZF blocks to the text: a little-endian uint64 count, then as many
``(compressed offset, uncompressed offset)`` uint64 pairs, the first block's ``(0, 0)`` left out.

:func:`index_problem` decides whether an index can be trusted without reading the whole FASTA
(reading it is what building an index costs, minutes for a mammalian genome):

* the ``.fai`` parses, names each record once, and its records follow one another without
  overlapping and end within the file (for BGZF: within the text the ``.gzi`` describes, whose
  blocks lie within the file);
* for up to :data:`SAMPLED_RECORDS` records spread over the file (all of them in a small genome),
  the bytes are where the index says: the header line ``>NAME`` ends just before the first base,
  the first line ends after LINEBASES bases, and the record ends after LENGTH bases, followed by
  the next header or the end of the file.

A wrong offset, line length or record length shows on every record after the change that caused
it, so a sample finds it; what no check without a full read can find is an edit that keeps every
sampled record in place. Whether the index is *older* than the FASTA is for the caller to judge
(:mod:`genomamba.io.indexed`).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

#: Records whose bytes are looked at: each costs three small reads (a BGZF block each, at worst).
SAMPLED_RECORDS = 256
#: Longest header line checked against its record's name; a longer one is skipped, not failed.
HEADER_WINDOW = 4096
#: The most text one BGZF block holds (SAM/BAM specification §4.1).
BGZF_BLOCK_TEXT = 1 << 16
_LINE_ENDS = (b"\n", b"\r\n")


@dataclass(frozen=True)
class FaiEntry:
    """One line of a ``.fai``; offsets count bytes of the uncompressed text."""

    name: str
    length: int
    offset: int
    line_bases: int
    line_width: int

    @property
    def end(self) -> int:
        """Offset just past the record's last base (before its line end)."""
        if self.length == 0:
            return self.offset
        full, rest = divmod(self.length, self.line_bases)
        if rest:
            return self.offset + full * self.line_width + rest
        return self.offset + full * self.line_width - (self.line_width - self.line_bases)


def read_fai(path: str | os.PathLike) -> list[FaiEntry]:
    """The entries of a ``.fai``, in file order.

    Raises:
        ValueError: a line that is not five tab-separated fields with non-negative integers
            (``line N: ...``), or a file that is not UTF-8 text.
        OSError: it cannot be read.
    """
    entries = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 5 or not fields[0]:
                raise ValueError(f"line {number}: expected 5 tab-separated fields, found {len(fields)}")
            try:
                length, offset, line_bases, line_width = (int(f) for f in fields[1:])
            except ValueError:
                raise ValueError(f"line {number}: the four numbers must be integers") from None
            if min(length, offset, line_bases, line_width) < 0 or line_width < line_bases:
                raise ValueError(f"line {number}: negative numbers, or a line narrower than its bases")
            if length and not line_bases:
                raise ValueError(f"line {number}: record '{fields[0]}' has bases but no bases per line")
            entries.append(FaiEntry(fields[0], length, offset, line_bases, line_width))
    return entries


def read_gzi(path: str | os.PathLike) -> list[tuple[int, int]]:
    """The ``(compressed, uncompressed)`` offsets of every BGZF block a ``.gzi`` lists, ``(0, 0)``
    first.

    Raises:
        ValueError: the size does not match the count it starts with.
        OSError: it cannot be read.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 8:
        raise ValueError("shorter than its 8-byte count")
    (count,) = struct.unpack_from("<Q", data)
    if len(data) != 8 + 16 * count:
        raise ValueError(f"{len(data)} bytes, but it counts {count} blocks ({8 + 16 * count} bytes)")
    pairs = struct.unpack_from(f"<{2 * count}Q", data, 8)
    return [(0, 0), *zip(pairs[::2], pairs[1::2], strict=True)]


@contextlib.contextmanager
def text_reader(
    fasta: str, blocks: Sequence[tuple[int, int]] | None
) -> Iterator[Callable[[int, int], bytes]]:
    """``read(offset, n)``: up to ``n`` bytes of the FASTA's text at ``offset`` (fewer at its end).
    ``blocks``: the ``.gzi`` of a BGZF file (:func:`read_gzi`), None for plain text."""
    if blocks is None:
        with open(fasta, "rb") as handle:

            def read_plain(offset: int, n: int) -> bytes:
                handle.seek(offset)
                return handle.read(n)

            yield read_plain
        return
    from Bio import bgzf

    starts = [text for _, text in blocks]
    with bgzf.BgzfReader(fasta, "rb") as reader:

        def read_bgzf(offset: int, n: int) -> bytes:
            compressed, text = blocks[bisect.bisect_right(starts, offset) - 1]
            if offset - text >= BGZF_BLOCK_TEXT:
                return b""  # past the last block's text: past the end
            try:
                reader.seek(bgzf.make_virtual_offset(compressed, offset - text))
                return reader.read(n)
            except ValueError:  # Biopython: an offset past the end of the block's text
                return b""

        yield read_bgzf


def index_problem(fasta: str, fai: str, gzi: str | None) -> str | None:
    """What is wrong with ``fai`` (and ``gzi``, for a BGZF ``fasta``) as its index, in a phrase
    that names the file; None when the checks of the module docstring pass. Never raises for a bad
    index or FASTA: an unreadable or damaged file is a problem like any other."""
    try:
        entries = read_fai(fai)
    except (OSError, ValueError) as exc:
        return f"{fai} cannot be read as a .fai ({getattr(exc, 'strerror', None) or exc})"
    if not entries:
        return f"{fai} lists no records"
    seen: set[str] = set()
    for previous, entry in zip([None, *entries], entries, strict=False):
        if entry.name in seen:
            return f"{fai} lists record '{entry.name}' twice"
        seen.add(entry.name)
        if previous is not None and entry.offset < previous.end:
            return f"{fai}: record '{entry.name}' starts at byte {entry.offset}, inside '{previous.name}'"
    size = os.path.getsize(fasta)
    blocks = None
    if gzi is not None:
        try:
            blocks = read_gzi(gzi)
        except (OSError, ValueError) as exc:
            return f"{gzi} cannot be read as a .gzi ({getattr(exc, 'strerror', None) or exc})"
        for (c0, u0), (c1, u1) in zip(blocks, blocks[1:], strict=False):
            if not (c0 < c1 < size and u0 <= u1 <= u0 + BGZF_BLOCK_TEXT):
                return f"{gzi} does not describe the BGZF blocks of {fasta}"
        size = blocks[-1][1] + BGZF_BLOCK_TEXT  # an upper bound on the text's size
    last = entries[-1]
    if last.end > size:
        return f"{fai}: record '{last.name}' ends at byte {last.end}, past the end of {fasta}"
    try:
        with text_reader(fasta, blocks) as read:
            for entry in _sample(entries):
                if problem := _record_problem(entry, read):
                    return f"{fai} does not describe {fasta}: record '{entry.name}' {problem}"
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        return f"{fasta} cannot be read through {fai} ({exc})"
    return None


def _sample(entries: list[FaiEntry]) -> list[FaiEntry]:
    """Every entry, or :data:`SAMPLED_RECORDS` of them evenly spread, first and last included."""
    n = len(entries)
    if n <= SAMPLED_RECORDS:
        return entries
    return [entries[i * (n - 1) // (SAMPLED_RECORDS - 1)] for i in range(SAMPLED_RECORDS)]


def _record_problem(entry: FaiEntry, read: Callable[[int, int], bytes]) -> str | None:
    """Where the bytes of one record disagree with its entry (a phrase), or None."""
    start = max(0, entry.offset - HEADER_WINDOW)
    before = read(start, entry.offset - start)
    if not before.endswith(b"\n"):
        return f"does not start after a header line (byte {entry.offset})"
    lines = before[:-1].rstrip(b"\r").split(b"\n")
    if len(lines) > 1 or start == 0:  # the whole header line is in the window
        words = lines[-1][1:].split(None, 1)
        if not lines[-1].startswith(b">") or words[:1] != [entry.name.encode("utf-8")]:
            return f"is not preceded by its header line '>{entry.name}' (byte {entry.offset})"
    if entry.length > entry.line_bases:
        ending = read(entry.offset + entry.line_bases, entry.line_width - entry.line_bases)
        if ending not in _LINE_ENDS:
            return f"does not have {entry.line_bases} bases on its first line"
    if entry.length:
        after = read(entry.end, 64)
        if after and after[:1] not in b"\r\n":
            return f"does not end after {entry.length} bases"
        rest = after.lstrip(b"\r\n")
        if rest and not rest.startswith(b">"):
            return f"has more than {entry.length} bases"
    return None
