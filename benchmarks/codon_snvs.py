"""Every SNV of a genome's annotated coding sequence, with its codon position and effect class.

The helper of ``benchmarks/zero_shot_codons.py`` (numpy and pandas, no torch):

* :func:`read_cds` reads the ``CDS`` lines of a GFF3 file (seqid, 1-based inclusive start and end,
  strand, phase, ``Parent``) and joins the segments of one parent (transcript) in reading order:
  ascending on ``+``, descending on ``-``. genomamba.tasks.coding.read_gff3_intervals keeps only
  each feature type's spans (no strand, phase or parent), which a reading frame needs, hence this
  reader.
* :func:`annotate` turns each transcript into its coding bases and every substitution of each: 3
  alternative bases per coding base. The frame starts ``phase`` bases into the first segment (GFF3:
  the bases to remove to reach the first complete codon); every later segment's phase must agree
  with the bases before it. Codon positions 1, 2, 3 are counted in the gene's reading direction
  (on the minus strand, on the reverse complement), codons and amino acids are the gene's (the
  standard genetic code, which is also the yeast nuclear code). A transcript is left out, and the
  reason counted, when its coding length is not a multiple of 3, it holds a base other than
  A/C/G/T, its phases disagree or lack, it spans records or strands, or it has an in-frame stop
  codon before its last codon (pseudogenes, read-through: their "stop lost" would mean nothing).
* Effect classes (:data:`CLASSES`), first match wins: ``start_lost`` (any change of the first codon
  when it is ATG and the frame starts at the segment's first base), ``stop_lost`` (a stop codon
  becomes a sense codon), ``nonsense`` (a sense codon becomes a stop), ``synonymous`` (same amino
  acid, stop to stop included), ``missense``.
* :func:`write_vcf` writes the sites as a sorted VCF 4.2, one line per coding base with its three
  ALT alleles (they share one masked forward pass in score-variants) and the annotation in INFO.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd

from genomamba.alphabet import A_ID, C_ID, G_ID, T_ID
from genomamba.errors import InputDataError
from genomamba.io.atomic import replacing
from genomamba.io.compression import open_input

BASES = "ACGT"
#: The standard genetic code, codons in TCAG order (NCBI translation table 1).
_CODE = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
_TCAG = "TCAG"
#: Amino acid (one letter, ``*`` for stop) of codon number 16*b1 + 4*b2 + b3, bases coded A0 C1 G2 T3.
AMINO_ACIDS = np.array([_CODE[16 * _TCAG.index(a) + 4 * _TCAG.index(b) + _TCAG.index(c)]
                        for a in BASES for b in BASES for c in BASES])
CODONS = np.array([a + b + c for a in BASES for b in BASES for c in BASES])
_ATG = 16 * 0 + 4 * 3 + 2
CLASSES = ("synonymous", "missense", "nonsense", "stop_lost", "start_lost")
#: Why a transcript was left out, in report order.
SKIPS = ("length_not_multiple_of_3", "non_acgt_base", "phase_missing_or_inconsistent",
         "spans_records_or_strands", "internal_stop", "record_not_in_fasta")
#: Token id -> base code 0..3 (A C G T); every other id (N) -> -1.
_CODE_OF_ID = np.full(256, -1, dtype=np.int8)
_CODE_OF_ID[[A_ID, C_ID, G_ID, T_ID]] = [0, 1, 2, 3]


@dataclass
class Transcript:
    """The CDS segments of one parent: ``segments`` are (start, end, phase), 0-based half-open,
    in reading order (phase None where the GFF3 has ``.``)."""

    id: str
    chrom: str
    strand: str
    segments: list[tuple[int, int, int | None]] = field(default_factory=list)
    where: str = ""  # "FILE: line N" of its first CDS line, for messages
    mixed: bool = False  # segments on several records or strands

    @property
    def span(self) -> tuple[int, int]:
        return min(s for s, _, _ in self.segments), max(e for _, e, _ in self.segments)


def _attributes(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.strip().strip(";").split(";") if "=" in item)
    return {key.strip(): unquote(value.strip()) for key, value in pairs}


def read_cds(path: str | os.PathLike) -> list[Transcript]:
    """The transcripts of the ``CDS`` lines of a GFF3 file, in the order they first appear.

    Segments are grouped by ``Parent`` (its first value), else ``ID``, else each line alone.

    Raises:
        InputDataError: a CDS line without 9 tab-separated columns, a coordinate that is not an
            integer or is inverted, a strand other than ``+``/``-``, a phase other than 0, 1, 2, ``.``
            (naming file and line); no CDS line at all.
    """
    with open_input(path) as stream:
        text = b"".join(stream.blocks()).decode("utf-8", "replace")
    transcripts: dict[str, Transcript] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("##FASTA"):
            break
        fields = line.split("\t")
        if line.startswith("#") or len(fields) < 3 or fields[2] != "CDS":
            continue
        where = f"{path}: line {number}"
        if len(fields) != 9:
            raise InputDataError(f"{where}: a GFF3 CDS line has 9 tab-separated columns, found {len(fields)}")
        try:
            start, end = int(fields[3]), int(fields[4])
        except ValueError:
            raise InputDataError(f"{where}: start/end (columns 4-5) must be integers, got {fields[3]!r}, "
                                 f"{fields[4]!r}") from None
        if start < 1 or end < start:
            raise InputDataError(f"{where}: need 1 <= start <= end, got {start}, {end}")
        strand, phase = fields[6], fields[7]
        if strand not in "+-" or len(strand) != 1:
            raise InputDataError(f"{where}: a CDS needs strand + or - (column 7), got {strand!r}")
        if phase not in ("0", "1", "2", "."):
            raise InputDataError(f"{where}: phase (column 8) must be 0, 1, 2 or '.', got {phase!r}")
        attributes = _attributes(fields[8])
        key = (attributes.get("Parent") or "").split(",")[0] or attributes.get("ID") or f"line{number}"
        found = transcripts.setdefault(key, Transcript(key, fields[0], strand, where=where))
        found.mixed |= (found.chrom, found.strand) != (fields[0], strand)
        found.segments.append((start - 1, end, None if phase == "." else int(phase)))
    if not transcripts:
        raise InputDataError(f"{path}: no CDS line (column 3 'CDS'); nothing to annotate")
    for found in transcripts.values():  # reading order: 5' to 3' of the gene
        found.segments.sort(key=lambda s: s[0], reverse=found.strand == "-")
    return list(transcripts.values())


def coding_positions(transcript: Transcript) -> np.ndarray | None:
    """0-based genome positions of the coding bases in reading order, from the first complete
    codon on (the first segment's phase skipped); None when a phase is missing or disagrees."""
    parts, before = [], 0
    for index, (start, end, phase) in enumerate(transcript.segments):
        if phase is None:
            return None
        # GFF3 phase: bases of this segment that finish the previous segment's last codon
        if index and phase != (3 - before % 3) % 3:
            return None
        positions = np.arange(start, end) if transcript.strand == "+" else np.arange(end - 1, start - 1, -1)
        parts.append(positions[phase:] if index == 0 else positions)
        before += len(parts[-1])
    return np.concatenate(parts)


#: A usable transcript: (transcript, gene-sense base codes 0..3, genome positions in reading order).
Coded = tuple[Transcript, np.ndarray, np.ndarray]
COLUMNS = ("chrom", "pos", "ref", "alt", "transcript", "strand", "codon_index", "codon_pos", "ref_codon",
           "alt_codon", "ref_aa", "alt_aa", "effect")


def coding_sequences(transcripts: Sequence[Transcript],
                     genome: Mapping[str, np.ndarray]) -> tuple[list[Coded], Counter]:
    """The usable transcripts with their coding bases, and those left out by reason (:data:`SKIPS`).

    ``genome``: record name -> token ids (genomamba.io.fasta.read_fasta ``ids``).
    """
    usable, skipped = [], Counter()
    for transcript in transcripts:
        reason, codes, positions = _coding_sequence(transcript, genome)
        if reason:
            skipped[reason] += 1
        else:
            usable.append((transcript, codes, positions))
    return usable, skipped


def snv_table(coded: Sequence[Coded]) -> pd.DataFrame:
    """One row per SNV (3 per coding base) of the transcripts: ``chrom``, ``pos`` (1-based), ``ref``,
    ``alt`` (forward-strand bases, as in a VCF), ``transcript``, ``strand``, ``codon_index`` (1-based
    codon number), ``codon_pos`` (1, 2, 3), ``ref_codon``, ``alt_codon``, ``ref_aa``, ``alt_aa`` (gene
    sense), ``effect`` (:data:`CLASSES`)."""
    frames = [_snvs(transcript, positions, codes) for transcript, codes, positions in coded]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))


def annotate(transcripts: Sequence[Transcript],
             genome: Mapping[str, np.ndarray]) -> tuple[pd.DataFrame, Counter]:
    """:func:`snv_table` of every usable transcript, and the Counter of those left out."""
    coded, skipped = coding_sequences(transcripts, genome)
    return snv_table(coded), skipped


def _coding_sequence(transcript: Transcript, genome) -> tuple[str | None, np.ndarray, np.ndarray]:
    """(skip reason or None, gene-sense base codes 0..3, genome positions) of a transcript."""
    empty = np.zeros(0, dtype=np.int64)
    if transcript.mixed:
        return "spans_records_or_strands", empty, empty
    if transcript.chrom not in genome:
        return "record_not_in_fasta", empty, empty
    positions = coding_positions(transcript)
    if positions is None:
        return "phase_missing_or_inconsistent", empty, empty
    ids = genome[transcript.chrom]
    if positions.size % 3 or positions.size == 0 or positions.max() >= ids.size:
        return "length_not_multiple_of_3", empty, empty
    codes = _CODE_OF_ID[ids[positions]].astype(np.int64)
    if (codes < 0).any():
        return "non_acgt_base", empty, empty
    if transcript.strand == "-":
        codes = 3 - codes  # complement: A0<->T3, C1<->G2
    amino = AMINO_ACIDS[_codon_numbers(codes.reshape(-1, 3))]
    if (amino[:-1] == "*").any():
        return "internal_stop", empty, empty
    return None, codes, positions


def _codon_numbers(codons: np.ndarray) -> np.ndarray:
    return 16 * codons[..., 0] + 4 * codons[..., 1] + codons[..., 2]


def _snvs(transcript: Transcript, positions: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    """The 3 SNVs of every coding base of one transcript (vectorised over bases)."""
    n = codes.size
    base = np.arange(n)
    codon_index, codon_pos = base // 3, base % 3
    ref_codons = codes.reshape(-1, 3)[codon_index]  # (n, 3): each base's codon
    alt_bases = (codes[:, None] + np.arange(1, 4)[None, :]) % 4  # (n, 3): the 3 other bases
    alt_codons = np.repeat(ref_codons[:, None, :], 3, axis=1)  # (n, 3 alts, 3 codon bases)
    alt_codons[base, :, codon_pos] = alt_bases
    ref_number = np.repeat(_codon_numbers(ref_codons), 3)
    alt_number = _codon_numbers(alt_codons).reshape(-1)
    ref_aa, alt_aa = AMINO_ACIDS[ref_number], AMINO_ACIDS[alt_number]
    effect = np.where(ref_aa == alt_aa, "synonymous", "missense").astype(object)
    effect[(ref_aa != "*") & (alt_aa == "*")] = "nonsense"
    effect[(ref_aa == "*") & (alt_aa != "*")] = "stop_lost"
    # the start codon: only where the frame begins at the segment's first base (phase 0)
    if transcript.segments[0][2] == 0 and ref_number[0] == _ATG:
        effect[:9] = "start_lost"
    minus = transcript.strand == "-"
    ref_fwd = np.repeat(3 - codes if minus else codes, 3)
    alt_fwd = 3 - alt_bases.reshape(-1) if minus else alt_bases.reshape(-1)
    letters = np.array(list(BASES))
    return pd.DataFrame({
        "chrom": transcript.chrom,
        "pos": np.repeat(positions + 1, 3),
        "ref": letters[ref_fwd],
        "alt": letters[alt_fwd],
        "transcript": transcript.id,
        "strand": transcript.strand,
        "codon_index": np.repeat(codon_index + 1, 3),
        "codon_pos": np.repeat(codon_pos + 1, 3),
        "ref_codon": CODONS[ref_number],
        "alt_codon": CODONS[alt_number],
        "ref_aa": ref_aa,
        "alt_aa": alt_aa,
        "effect": effect,
    })


def shared_bases(coded: Sequence[Coded]) -> dict[str, np.ndarray]:
    """Per record, the sorted 1-based positions coding in more than one of the transcripts."""
    by_record: dict[str, list[np.ndarray]] = defaultdict(list)
    for transcript, _, positions in coded:
        by_record[transcript.chrom].append(positions)
    shared = {}
    for chrom, parts in by_record.items():
        counts = np.bincount(np.concatenate(parts))
        shared[chrom] = np.flatnonzero(counts > 1) + 1
    return shared


def mark_overlaps(table: pd.DataFrame, shared: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """``table`` with a boolean ``overlap`` column: the base is among ``shared`` (coding in more than
    one transcript: its codon position and effect are not one thing, so the statistics leave it out)."""
    overlap = np.zeros(len(table), dtype=bool)
    for chrom, positions in shared.items():
        rows = (table["chrom"] == chrom).to_numpy()
        overlap[rows] = np.isin(table["pos"].to_numpy()[rows], positions)
    return table.assign(overlap=overlap)


_INFO = (
    ("TX", "1", "String", "CDS parent (transcript) in the GFF3"),
    ("STRAND", "1", "String", "strand of the CDS"),
    ("CODON_INDEX", "1", "Integer", "1-based codon number in the CDS"),
    ("CODON_POS", "1", "Integer", "position in the codon (1, 2, 3) in the gene's reading direction"),
    ("REF_CODON", "1", "String", "reference codon, gene sense"),
    ("REF_AA", "1", "String", "reference amino acid (one letter, * for stop; standard code)"),
    ("ALT_CODON", "A", "String", "alternative codon, gene sense"),
    ("ALT_AA", "A", "String", "alternative amino acid (one letter, * for stop)"),
    ("EFFECT", "A", "String", "synonymous, missense, nonsense, stop_lost or start_lost"),
)

#: The columns of a site's VCF line: one value per site, then one per ALT allele.
_SITE_COLUMNS = ("chrom", "pos", "ref", "transcript", "strand", "codon_index", "codon_pos", "ref_codon",
                 "ref_aa")
_ALLELE_COLUMNS = ("alt", "alt_codon", "alt_aa", "effect")


def write_vcf(table: pd.DataFrame, lengths: Mapping[str, int], path: str | os.PathLike) -> Path:
    """Write the SNVs of ``table`` (3 rows per site, one transcript per site: drop overlaps first)
    as a VCF sorted by record (in ``lengths`` order) and position, one line per site with its
    three ALT alleles in A, C, G, T order. Written through a temporary file renamed into place.

    Raises:
        ValueError: a site without exactly three rows.
    """
    order = {name: i for i, name in enumerate(lengths)}
    rows = table.assign(_rec=table["chrom"].map(order)).sort_values(["_rec", "pos", "alt"], kind="stable")
    key = rows["_rec"].to_numpy() * (1 << 40) + rows["pos"].to_numpy()
    if len(rows) % 3 or not (key[0::3] == key[2::3]).all() or len(np.unique(key)) * 3 != len(key):
        raise ValueError("write_vcf needs the three SNVs of every site, and one transcript per site")
    site = [rows[c].to_numpy()[0::3] for c in _SITE_COLUMNS]
    allele = [rows[c].to_numpy().reshape(-1, 3) for c in _ALLELE_COLUMNS]
    header = ["##fileformat=VCFv4.2", "##source=genomamba benchmarks/zero_shot_codons.py"]
    header += [f"##contig=<ID={name},length={length}>" for name, length in lengths.items()]
    header += [f'##INFO=<ID={key},Number={num},Type={kind},Description="{text}">'
               for key, num, kind, text in _INFO]
    header.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    lines = [
        f"{chrom}\t{pos}\t.\t{ref}\t{','.join(alt)}\t.\t.\tTX={tx};STRAND={strand};CODON_INDEX={index};"
        f"CODON_POS={cpos};REF_CODON={rc};REF_AA={ra};ALT_CODON={','.join(ac)};ALT_AA={','.join(aa)};"
        f"EFFECT={','.join(eff)}"
        for chrom, pos, ref, tx, strand, index, cpos, rc, ra, alt, ac, aa, eff
        in zip(*site, *allele, strict=True)
    ]
    path = Path(path)
    with replacing(path) as tmp:
        tmp.write_text("\n".join(header + lines) + "\n", encoding="ascii")
    return path


def effect_counts(table: pd.DataFrame) -> dict[str, int]:
    """SNVs of each of :data:`CLASSES` in ``table`` (zeros included), for reports."""
    counts = defaultdict(int, table["effect"].value_counts().to_dict())
    return {name: int(counts[name]) for name in CLASSES}
