"""What the FASTA reader yields: per-record statistics, sequence chunks, whole records, and the
helpers that turn a byte position inside a block of FASTA text into a line and column.

numpy only. Coordinates inside a record are 0-based; line and column numbers shown to people
are 1-based.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from genomamba.alphabet import A_ID, C_ID, G_ID, N_ID, T_ID, EncodingStats, describe_byte

_log = logging.getLogger("genomamba.io")
_BASE_IDS = (("A", A_ID), ("C", C_ID), ("G", G_ID), ("T", T_ID), ("N", N_ID))


@dataclass
class RecordStats:
    """Counts for one FASTA record, filled in while its sequence streams past.

    ``base_counts`` counts tokens after the policy was applied, so IUPAC codes and lenient
    replacements are included in ``N``. ``invalid_count``/``first_invalid`` are only used in the
    reporting mode of :class:`genomamba.io.fasta.FastaReader` (``report_invalid=True``).
    """

    name: str
    description: str
    header_line: int
    length: int = 0
    base_counts: dict[str, int] = field(default_factory=lambda: {b: 0 for b, _ in _BASE_IDS})
    encoding: EncodingStats = field(default_factory=EncodingStats)
    invalid_count: int = 0
    first_invalid: str | None = None

    def add_ids(self, ids: np.ndarray, stats: EncodingStats) -> None:
        """Count one chunk of token ids (uint8, shape ``(n,)``)."""
        self.length += int(ids.size)
        for base, token in _BASE_IDS:
            self.base_counts[base] += int(np.count_nonzero(ids == token))
        self.encoding.add(stats)

    @property
    def gc_fraction(self) -> float | None:
        """(C+G)/(A+C+G+T): N and ambiguity codes are left out; None when there is no ACGT base."""
        acgt = sum(self.base_counts[b] for b in "ACGT")
        return (self.base_counts["C"] + self.base_counts["G"]) / acgt if acgt else None

    @property
    def n_fraction(self) -> float:
        return self.base_counts["N"] / self.length if self.length else 0.0

    @property
    def softmask_fraction(self) -> float:
        return self.encoding.softmasked / self.length if self.length else 0.0

    @property
    def problems(self) -> list[str]:
        """Human-readable notes: errors (invalid characters) first, then things worth knowing."""
        notes = []
        if self.invalid_count:
            notes.append(f"{self.invalid_count} invalid character(s), first at {self.first_invalid}")
        if self.length and self.base_counts["N"] == self.length:
            notes.append("all N")
        if self.encoding.iupac_counts:
            notes.append(f"IUPAC codes read as N ({self.encoding.iupac_text()})")
        if self.encoding.lenient_replacements:
            notes.append(f"{self.encoding.lenient_replacements} invalid character(s) read as N (--lenient)")
        if self.encoding.rna_u:
            notes.append(f"{self.encoding.rna_u} U read as T (--rna)")
        return notes

    def as_dict(self) -> dict:
        """A flat JSON-ready summary (used by ``genomamba validate`` and manifests)."""
        return {
            "record": self.name,
            "description": self.description,
            "header_line": self.header_line,
            "length": self.length,
            "gc_fraction": self.gc_fraction,
            "n_fraction": self.n_fraction,
            "softmask_fraction": self.softmask_fraction,
            "base_counts": dict(self.base_counts),
            "iupac_counts": dict(sorted(self.encoding.iupac_counts.items())),
            "lenient_replacements": self.encoding.lenient_replacements,
            "rna_u": self.encoding.rna_u,
            "invalid_count": self.invalid_count,
            "problems": self.problems,
        }


@dataclass
class ReadAsNTally:
    """The bases of a file's sequences that were read as N although not written N (IUPAC
    ambiguity codes, ``--lenient`` replacements), summed so that one warning per file says so."""

    read_as_n: EncodingStats = field(default_factory=EncodingStats)
    sequences: int = 0
    with_n: int = 0

    def add(self, encoding: EncodingStats) -> None:
        """Count one sequence with what :func:`genomamba.alphabet.encode` reported for it."""
        self.sequences += 1
        if encoding.iupac_total or encoding.lenient_replacements:
            self.with_n += 1
            self.read_as_n.add(encoding)

    def warn(self, source: str, noun: str, warn: Callable[[str], None] | None = None) -> None:
        """Log '<source>: IUPAC codes (R=2,Y=1) read as N in 2 of 3 <noun>' if any was."""
        if not self.with_n:
            return
        parts = []
        if self.read_as_n.iupac_counts:
            parts.append(f"IUPAC codes ({self.read_as_n.iupac_text()})")
        if self.read_as_n.lenient_replacements:
            parts.append(f"{self.read_as_n.lenient_replacements} invalid character(s) (--lenient)")
        (warn or _log.warning)(f"{source}: {' and '.join(parts)} read as N in {self.with_n} of "
                               f"{self.sequences} {noun}")


class Chunk(NamedTuple):
    """A piece of one record's sequence: ``ids[i]`` is the token at record position ``start + i``.

    ``softmask`` is a bool array of the same shape (True = lower case in the file) or None.
    """

    start: int
    ids: np.ndarray
    softmask: np.ndarray | None


@dataclass
class FastaRecord:
    """A whole record in memory (uint8 ids, one byte per base); for small genomes and tests."""

    name: str
    description: str
    ids: np.ndarray
    softmask: np.ndarray | None
    stats: RecordStats

    @property
    def length(self) -> int:
        return int(self.ids.size)


def line_and_column(region: bytes, region_line: int, region_column: int, pos: int) -> tuple[int, int]:
    """1-based line and column of byte ``pos`` of ``region``.

    ``region`` is a slice of FASTA text whose first byte sits at ``region_line``,
    ``region_column`` (both 1-based).
    """
    line = region_line + region.count(b"\n", 0, pos)
    last_newline = region.rfind(b"\n", 0, pos)
    column = pos - last_newline if last_newline >= 0 else region_column + pos
    return line, column


def sequence_position(region: bytes, offset: int) -> int:
    """Index in ``region`` of the ``offset``-th byte that is not a line break (CR or LF)."""
    raw = np.frombuffer(region, dtype=np.uint8)
    keep = np.flatnonzero((raw != 10) & (raw != 13))
    return int(keep[offset])


_HINTS = {
    ord(" "): "whitespace inside a sequence line",
    ord("\t"): "whitespace inside a sequence line",
    ord("+"): "a '+' line: is this FASTQ?",
    ord("U"): "RNA? pass --rna to read U as T",
    ord("u"): "RNA? pass --rna to read U as T",
}


def invalid_character_message(byte: int) -> str:
    """``invalid character '*' (hint)``: the tail of the message for a byte outside the alphabet."""
    hint = _HINTS.get(byte, "pass --lenient to read it as N")
    return f"invalid character {describe_byte(byte)} ({hint})"
