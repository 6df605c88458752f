"""Variants of a VCF file, checked line by line against the genome they are on.

A VCF here is the text format of VCF 4.x (plain, gzip or BGZF): ``##`` meta lines and the
``#CHROM`` header are skipped; every other line needs the tab-separated columns ``CHROM POS ID REF
ALT``, with ``POS`` 1-based, ``REF`` the genome's bases at ``POS`` (case is ignored, N and IUPAC
codes of the genome match anything) and ``ALT`` a comma-separated list. Everything after ``ALT``
(QUAL, FILTER, INFO, samples) is read past.

Each ALT allele is one :class:`Variant`. Only single-base substitutions between A, C, G and T can
be scored by masking one position (genomamba.infer.variants); the others are counted by kind
(``indel``: REF and ALT lengths differ; ``multi-base substitution``: equal lengths above one;
``symbolic``: ``<DEL>``, breakends, ``*``;
``missing``: ``.``; ``ambiguous``: N or IUPAC codes) so that the caller can say how many it left
out. Errors are :class:`~genomamba.errors.InputDataError` naming the file and line: too few
columns, a bad POS, a chromosome the genome does not have (with a hint when the names differ only
by a ``chr`` prefix), a position past its end, or a REF that disagrees with the genome.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from genomamba.alphabet import IUPAC_AMBIGUITY_CODES
from genomamba.errors import InputDataError
from genomamba.io.compression import open_input

VCF_COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT")
_BASES = frozenset("ACGT")
_IUPAC_OR_N = frozenset("N" + IUPAC_AMBIGUITY_CODES)


@dataclass(frozen=True)
class Variant:
    """One ALT allele of one VCF line: ``ref`` -> ``alt`` at 0-based ``position`` of ``chrom``."""

    where: str  # "FILE: line N" (or the region it was made for), for messages
    chrom: str
    position: int  # 0-based; the VCF's POS is position + 1
    id: str
    ref: str
    alt: str
    record: int = -1  # 0-based index of its line among the VCF's data lines (-1: not from a VCF)


def allele_kind(ref: str, alt: str) -> str:
    """``snv`` for a substitution between A, C, G and T, else why it is not one (module docstring)."""
    if alt == ".":
        return "missing"
    if alt.startswith("<") or "[" in alt or "]" in alt or alt == "*":
        return "symbolic"
    if len(ref) != len(alt):
        return "indel"
    if len(ref) > 1:
        return "multi-base substitution"
    if ref in _BASES and alt in _BASES:
        return "snv" if ref != alt else "no change"
    return "ambiguous"


def numbered_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of a (possibly compressed) text file, read in blocks."""
    number, tail = 0, b""
    with open_input(path) as stream:
        for block in stream.blocks():
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            for raw in lines:
                number += 1
                yield number, _decode(raw, path, number)
    if tail:
        yield number + 1, _decode(tail, path, number + 1)


def _decode(raw: bytes, path, number: int) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise InputDataError(f"{path}: line {number}: not valid UTF-8 text") from None


def read_vcf(path: str | os.PathLike, genome) -> Iterator[list[Variant]]:
    """The alleles of each data line of the VCF at ``path``, as one list per line, checked against
    ``genome`` (an open :class:`genomamba.io.indexed.IndexedFasta`).

    Raises:
        InputDataError: the file, line and what is wrong (module docstring).
    """
    record = -1
    for number, text in numbered_lines(path):
        if not text.strip() or text.startswith("#"):
            continue
        record += 1
        where = f"{path}: line {number}"
        fields = text.split("\t")
        if len(fields) < len(VCF_COLUMNS):
            raise InputDataError(f"{where}: {len(fields)} tab-separated column(s); a VCF line needs "
                                 f"{' '.join(VCF_COLUMNS)}")
        chrom, pos_text, vid, ref, alts = (f.strip() for f in fields[:5])
        try:
            pos = int(pos_text)
        except ValueError:
            pos = 0
        if pos < 1:
            raise InputDataError(f"{where}: POS {pos_text!r} is not a 1-based position")
        ref = ref.upper()
        if not ref or not set(ref) <= _BASES | _IUPAC_OR_N:
            raise InputDataError(f"{where}: REF {ref!r} is not a run of bases")
        _check_reference(where, genome, chrom, pos - 1, ref)
        yield [Variant(where, chrom, pos - 1, vid, ref, alt.strip().upper(), record)
               for alt in alts.split(",")]


def _check_reference(where: str, genome, chrom: str, start: int, ref: str) -> None:
    lengths: Mapping[str, int] = genome.lengths
    if chrom not in lengths:
        hint = _name_hint(chrom, lengths)
        raise InputDataError(f"{where}: chromosome '{chrom}' is not in {genome.path}{hint}")
    if start + len(ref) > lengths[chrom]:
        raise InputDataError(f"{where}: {chrom}:{start + 1} with REF {ref} runs past the end of '{chrom}' "
                             f"({lengths[chrom]} bases)")
    found = genome.fetch(chrom, start, start + len(ref)).decode("ascii").upper()
    for want, have in zip(ref, found, strict=True):
        if want != have and want not in _IUPAC_OR_N and have not in _IUPAC_OR_N:
            raise InputDataError(f"{where}: REF {ref} at {chrom}:{start + 1} disagrees with {genome.path}, "
                                 f"which has {found} there (another genome build?)")


def _name_hint(chrom: str, lengths: Mapping[str, int]) -> str:
    """'; it has 'chr1'' when the genome names the chromosome with(out) a 'chr' prefix."""
    other = chrom[3:] if chrom.lower().startswith("chr") else "chr" + chrom
    for name in (other, other.lower(), other.upper()):
        if name in lengths:
            return f"; it has '{name}' (the names differ by a 'chr' prefix)"
    shown = ", ".join(list(lengths)[:5]) + (", ..." if len(lengths) > 5 else "")
    return f" (its records: {shown})"


class LeftOutTally:
    """ALT alleles that cannot be scored, by kind, for one summary warning per file."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def add(self, kind: str) -> None:
        self.kinds[kind] += 1

    def text(self) -> str:
        return ", ".join(f"{count} {kind}" for kind, count in sorted(self.kinds.items()))
