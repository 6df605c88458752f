"""Every single-base substitution of genome regions: in silico saturation mutagenesis.

A region is written as samtools writes one, ``CHROM:START-END`` (1-based, inclusive; thousands
separators allowed) or ``CHROM`` for a whole record. Each position of it yields the three
substitutions of its base as :class:`genomamba.io.vcf.Variant` alleles, in position order, so that
``genomamba score-variants --region`` scores them exactly as it scores a VCF's SNVs. A position
whose genome base is N or an IUPAC code yields one ``ambiguous`` allele instead, which the scorer
leaves out and counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from genomamba.errors import InputDataError
from genomamba.io.vcf import Variant

# The name may hold colons itself (HLA-A*01:01:01:01): only a trailing :START-END is a range.
_REGION = re.compile(r"^(?P<chrom>.+?)(:(?P<start>[\d,]+)-(?P<end>[\d,]+))?$")


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


def saturation_alleles(genome, region: str) -> Iterator[list[Variant]]:
    """The substitutions of every position of ``region`` on ``genome`` (an open
    :class:`genomamba.io.indexed.IndexedFasta`), one list of alleles per position.

    Raises:
        ValueError: a malformed region. InputDataError: a chromosome the genome does not have, or a
        region past its end.
    """
    chrom, start, end = parse_region(region)
    if chrom not in genome.lengths:
        raise InputDataError(f"region {region}: no record named '{chrom}' in {genome.path}")
    length = genome.lengths[chrom]
    start, end = (0, length) if start is None else (start, end)
    if end > length:
        raise InputDataError(f"region {region}: runs past the end of '{chrom}' ({length} bases)")
    where = f"region {region}"
    step = 1 << 16  # read the region in pieces: a whole chromosome need not be held as text
    for piece_start in range(start, end, step):
        bases = genome.fetch(chrom, piece_start, min(end, piece_start + step)).decode("ascii").upper()
        for offset, ref in enumerate(bases):
            position = piece_start + offset
            if ref in "ACGT":
                yield [Variant(where, chrom, position, ".", ref, alt) for alt in "ACGT" if alt != ref]
            else:
                yield [Variant(where, chrom, position, ".", ref, "N")]
