"""Every single-base substitution of genome regions: in silico saturation mutagenesis.

A region is written as samtools writes one, ``CHROM:START-END`` (1-based, inclusive; thousands
separators allowed) or ``CHROM`` for a whole record. Each position of it yields the three
substitutions of its base as :class:`genomamba.io.vcf.Variant` alleles, in position order, so that
``genomamba score-variants --region`` scores them exactly as it scores a VCF's SNVs. A position
whose genome base is N or an IUPAC code yields one ``ambiguous`` allele instead, which the scorer
leaves out and counts.
"""

from __future__ import annotations

from collections.abc import Iterator

from genomamba.errors import InputDataError
from genomamba.io.regions import parse_region
from genomamba.io.vcf import Variant


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
