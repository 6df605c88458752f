"""Genome regions: parsing the samtools spelling, and choosing which parts of records to read.

A region is written as samtools writes one, ``CHROM:START-END`` (1-based, inclusive; thousands
separators allowed) or ``CHROM`` for a whole record; inside the library it is 0-based, half-open.

:class:`RegionSelection` turns ``--region`` (read only these) or ``--exclude-region`` (read all
but these) into the *segments* of each record: the 0-based, half-open stretches that a reader
keeps. Segments are cut out of the record, not filtered window by window, so a held-out region
leaves no base in the training windows and loses none at its edges: each segment is windowed
from its own start (see :class:`genomamba.io.windows.SegmentWindower`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from genomamba.errors import InputDataError

# The name may hold colons itself (HLA-A*01:01:01:01): only a trailing :START-END is a range.
_REGION = re.compile(r"^(?P<chrom>.+?)(:(?P<start>[\d,]+)-(?P<end>[\d,]+))?$")

# A segment: (start, end), 0-based half-open; end None means "to the end of the record".
Segment = tuple[int, "int | None"]


def parse_region(text: str) -> tuple[str, int | None, int | None]:
    """(chrom, 0-based start, end) of ``CHROM:START-END`` (1-based inclusive), or (chrom, None,
    None) for ``CHROM``.

    Raises:
        ValueError: not a region, or START > END or START < 1 (a usage error).
    """
    match = _REGION.match(text.strip())
    if match is None:
        raise ValueError(f"region {text!r}: write CHROM:START-END (1-based, inclusive) or CHROM")
    if match["start"] is None:
        return match["chrom"], None, None
    start, end = (int(match[k].replace(",", "")) for k in ("start", "end"))
    if not 1 <= start <= end:
        raise ValueError(f"region {text!r}: START must be at least 1 and at most END")
    return match["chrom"], start - 1, end


@dataclass(frozen=True)
class _Region:
    text: str
    chrom: str
    start: int
    end: int | None  # None: to the end of the record


class RegionSelection:
    """Which stretches of each record to read: all (no regions), only ``include``, or all but
    ``exclude`` (region strings as above; giving both is a ValueError).

    Raises:
        ValueError: a malformed region, or both lists given.
    """

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()):
        if include and exclude:
            raise ValueError("give regions to read or regions to leave out, not both")
        self.mode = "include" if include else "exclude" if exclude else "all"
        self._regions: dict[str, list[_Region]] = {}
        for text in (*include, *exclude):
            chrom, start, end = parse_region(text)
            self._regions.setdefault(chrom, []).append(_Region(text, chrom, start or 0, end))

    def __bool__(self) -> bool:
        return self.mode != "all"

    def segments(self, record: str) -> list[Segment]:
        """The stretches of ``record`` to read, sorted and disjoint (possibly none)."""
        regions = _merge((r.start, r.end) for r in self._regions.get(record, ()))
        if self.mode == "all":
            return [(0, None)]
        if self.mode == "include":
            return regions
        kept, position = [], 0  # exclude: the gaps between the regions left out
        for start, end in regions:
            if start > position:
                kept.append((position, start))
            if end is None:
                return kept
            position = end
        return kept + [(position, None)]

    def check(self, lengths: Mapping[str, int], inputs: str) -> None:
        """Check every region against the records read (name -> length), after reading them.

        Raises:
            InputDataError: a region names a record none of ``inputs`` has, or runs past its end.
        """
        for chrom, regions in self._regions.items():
            for region in regions:
                if chrom not in lengths:
                    raise InputDataError(f"region {region.text}: no record named '{chrom}' in {inputs}")
                if region.end is not None and region.end > lengths[chrom]:
                    raise InputDataError(
                        f"region {region.text}: runs past the end of '{chrom}' ({lengths[chrom]:,} bases)"
                    )


def _merge(spans: Iterable[Segment]) -> list[Segment]:
    """Sorted, overlapping or touching spans joined into one (an open end absorbs what follows)."""
    merged: list[list] = []
    for start, end in sorted(spans, key=lambda s: s[0]):
        if merged and (merged[-1][1] is None or start <= merged[-1][1]):
            last = merged[-1]
            last[1] = None if end is None or last[1] is None else max(last[1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]
