"""Fuzzing the input readers with Hypothesis: FASTA, BED, VCF and labelled tables (CSV/TSV).

For each reader two properties, over a few hundred generated files (profile and knobs:
tests/io/fuzz_cases.py):

* valid files, in every compression, read back as written, after the alphabet's policy (case is the
  soft-mask track, IUPAC codes are N, U is T with ``rna``);
* damaged files (bytes flipped, cut short, lines of garbage inserted, parts deleted or repeated,
  another format's header in front, random bytes) either still read, or fail with the project's
  input error (:class:`genomamba.errors.InputDataError`, exit 65): never another exception, and
  never a hang.
"""

from __future__ import annotations

import csv
import io
import string

import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from genomamba import alphabet as ab
from genomamba.errors import EXIT_DATA, InputDataError
from genomamba.io.bed import intervals, parse_bed, standard_columns
from genomamba.io.fasta import read_fasta
from genomamba.io.indexed import IndexedFasta
from genomamba.io.labels import SPLITS, read_labelled, read_table
from genomamba.io.vcf import read_vcf
from genomamba.tasks.targets import encode_targets, infer_task
from tests.io.fuzz_cases import COMPRESSIONS, FUZZ, compress, damaged, mutations, no_hang, seeded

# -- a small genome for BED and VCF -----------------------------------------------------------------

GENOME_LENGTHS = {"chr1": 300, "chr2": 170, "track7": 90, "scaffold_1.2": 45}


def _genome_sequences() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    letters = np.frombuffer(b"ACGTacgtN", dtype=np.uint8)
    return {name: rng.choice(letters, size=n, p=[0.22] * 4 + [0.02] * 4 + [0.04]).tobytes()
            for name, n in GENOME_LENGTHS.items()}


GENOME_SEQUENCES = _genome_sequences()


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    path = tmp_path_factory.mktemp("genome") / "genome.fa"
    path.write_bytes(b"".join(b">%s\n%s\n" % (name.encode(), seq) for name, seq in GENOME_SEQUENCES.items()))
    with IndexedFasta(path) as fasta:  # builds the index once
        assert dict(fasta.lengths) == GENOME_LENGTHS
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One folder for every example's file (Hypothesis runs one test function many times)."""
    return tmp_path_factory.mktemp("fuzz")


def _only_input_errors(read) -> None:
    """Run ``read()``: success, or InputDataError; any other exception (or a hang) fails the test."""
    with no_hang():
        try:
            read()
        except InputDataError as exc:
            assert exc.exit_code == EXIT_DATA
            assert str(exc) and "\n" not in str(exc).rstrip("\n"), "an input error is one line"
            event("input error")  # the shares are shown by --hypothesis-show-statistics
        else:
            event("read")


# -- FASTA ----------------------------------------------------------------------------------------------

_NAME_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
_names = st.text(_NAME_CHARS, min_size=1, max_size=12).filter(lambda s: s.split() == [s])
_words = st.lists(st.text(_NAME_CHARS, min_size=1, max_size=8).filter(lambda s: s.split() == [s]), max_size=3)
_BASES = "ACGTN" + ab.IUPAC_AMBIGUITY_CODES
_DNA = _BASES + _BASES.lower()


@st.composite
def fasta_files(draw, rna: bool = False):
    """(file bytes, [(name, description, sequence)]) of a valid FASTA file, uncompressed."""
    names = draw(st.lists(_names, min_size=1, max_size=5, unique=True))
    letters = _DNA + ("Uu" if rna else "")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    records, parts = [], []
    if draw(st.booleans()):
        parts.append("\ufeff")  # a byte-order mark before the first '>' is stripped
    parts.append(newline * draw(st.integers(0, 2)))
    for name in names:
        description = " ".join(draw(_words))
        sequence = draw(st.text(letters, min_size=1, max_size=200))
        width = draw(st.integers(1, 90))
        lines = [sequence[i : i + width] for i in range(0, len(sequence), width)]
        parts.append(f">{name}{' ' + description if description else ''}{newline}")
        parts.append(newline.join(lines) + newline + newline * draw(st.integers(0, 2)))
        records.append((name, description, sequence))
    text = "".join(parts)
    if draw(st.booleans()):  # no newline at the end of the file
        text = text.rstrip("\r\n")
    return text.encode("utf-8"), records


_block_sizes = st.sampled_from([1, 2, 3, 7, 64, 4096, 1 << 20])


@seeded
@FUZZ
@given(data=st.data(), rna=st.booleans(), compression=st.sampled_from(COMPRESSIONS),
       block_size=_block_sizes, split=st.integers(0, 1 << 16))
def test_fasta_valid_files_read_back(folder, data, rna, compression, block_size, split):
    raw, records = data.draw(fasta_files(rna=rna))
    path = folder / "valid.fa"
    path.write_bytes(compress(raw, compression, split))
    with no_hang():
        got = list(read_fasta(path, rna=rna, block_size=block_size, warn=lambda message: None))
    assert [(r.name, r.description) for r in got] == [(name, description) for name, description, _ in records]
    for record, (_, _, sequence) in zip(got, records, strict=True):
        ids, mask, _ = ab.encode(sequence.encode(), rna=rna, want_softmask=True)
        np.testing.assert_array_equal(record.ids, ids)
        np.testing.assert_array_equal(record.softmask, mask)
        assert record.stats.length == len(sequence)
        read_as_n = "N" + ab.IUPAC_AMBIGUITY_CODES
        assert record.stats.base_counts["N"] == sum(c.upper() in read_as_n for c in sequence)


@seeded
@FUZZ
@given(data=st.data(), compression=st.sampled_from(COMPRESSIONS), damage=mutations,
       options=st.fixed_dictionaries({"lenient": st.booleans(), "strict": st.booleans(), "rna": st.booleans(),
                                      "report_invalid": st.booleans()}),
       block_size=_block_sizes)
def test_fasta_damaged_files_fail_only_with_input_errors(folder, data, compression, damage, options,
                                                         block_size):
    raw, _ = data.draw(fasta_files())
    path = folder / "damaged.fa"
    path.write_bytes(damaged(compress(raw, compression), damage))
    _only_input_errors(lambda: list(read_fasta(path, block_size=block_size, warn=lambda m: None, **options)))


# -- BED --------------------------------------------------------------------------------------------------

@st.composite
def intervals_on_genome(draw):
    chrom = draw(st.sampled_from(sorted(GENOME_LENGTHS)))
    start = draw(st.integers(0, GENOME_LENGTHS[chrom] - 1))
    end = draw(st.integers(start + 1, GENOME_LENGTHS[chrom]))
    return chrom, start, end


_field = st.text(string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=10)


@st.composite
def bed_files(draw, labelled: bool = False):
    """(file bytes, [(chrom, start, end, strand, fields by column name)]) of a valid BED file."""
    rows = draw(st.lists(intervals_on_genome(), min_size=1, max_size=8))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    header = labelled or draw(st.booleans())
    if labelled:
        names = ["chrom", "start", "end"] + draw(st.permutations(["label", "name", "strand", "split"]))
    else:
        names = list(standard_columns("x")(draw(st.integers(3, 6)), 1))
    lines = []
    if draw(st.booleans()):
        lines += ["browser position chr1:1-100", "track name=fuzz description='a test'"]
    if header:
        lines.append(("#" if draw(st.booleans()) else "") + "\t".join(names))
    expected = []
    for chrom, start, end in rows:
        fields = {"chrom": chrom, "start": str(start), "end": str(end), "name": draw(_field),
                  "score": str(draw(st.integers(0, 1000))), "strand": draw(st.sampled_from("+-.")),
                  "label": draw(_field), "split": draw(st.sampled_from(sorted(SPLITS)))}
        if draw(st.booleans()):
            lines.append("# a comment " + draw(_field))
        lines.append("\t".join(fields[n] for n in names))
        expected.append((chrom, start, end, fields["strand"] if "strand" in names else "+",
                         {n: fields[n] for n in names}))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    return text.encode(), expected


@seeded
@FUZZ
@given(data=st.data(), compression=st.sampled_from(COMPRESSIONS))
def test_bed_valid_files_read_back(folder, genome, data, compression):
    raw, expected = data.draw(bed_files())
    path = folder / "valid.bed"
    path.write_bytes(compress(raw, compression))
    with no_hang():
        parsed = parse_bed(path, required=(), headerless=standard_columns(path))
        got = list(intervals(parsed, GENOME_LENGTHS, genome))
    assert [(i.chrom, i.start, i.end, i.strand, dict(i.fields)) for i in got] == expected


@seeded
@FUZZ
@given(data=st.data(), compression=st.sampled_from(COMPRESSIONS), damage=mutations)
def test_bed_damaged_files_fail_only_with_input_errors(folder, genome, data, compression, damage):
    raw, _ = data.draw(bed_files())
    path = folder / "damaged.bed"
    path.write_bytes(damaged(compress(raw, compression), damage))

    def read():
        parsed = parse_bed(path, required=(), headerless=standard_columns(path))
        list(intervals(parsed, GENOME_LENGTHS, genome))

    _only_input_errors(read)


@seeded
@FUZZ
@given(data=st.data(), damage=st.none() | mutations, lenient=st.booleans())
def test_labelled_bed_reads_back_or_fails_with_input_errors(folder, genome, data, damage, lenient):
    """Labelled BED (genomamba.io.labels): sequences fetched from the genome, on the interval's strand."""
    raw, expected = data.draw(bed_files(labelled=True))
    path = folder / "labelled.bed"
    path.write_bytes(raw if damage is None else damaged(raw, damage))
    if damage is not None:
        _only_input_errors(lambda: read_labelled(str(path), genome=genome, lenient=lenient))
        return
    with no_hang():
        got = read_labelled(str(path), genome=genome, lenient=lenient)
    assert got.labels == [fields["label"] for *_, fields in expected]
    assert got.splits == [SPLITS[fields["split"]] for *_, fields in expected]
    for ids, (chrom, start, end, strand, _) in zip(got.sequences, expected, strict=True):
        forward = ab.encode(GENOME_SEQUENCES[chrom][start:end])[0]
        np.testing.assert_array_equal(ids, ab.reverse_complement(forward) if strand == "-" else forward)


# -- VCF ----------------------------------------------------------------------------------------------------

_ALTS = st.sampled_from(["A", "C", "G", "T", "a", "N", "AC", "TTG", ".", "*", "<DEL>", "G]chr1:5]"])


@st.composite
def vcf_files(draw):
    """(file bytes, [[(chrom, 0-based position, id, REF, ALT)] per data line]) of a valid VCF."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=300>",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    expected = []
    for _ in range(draw(st.integers(1, 8))):
        chrom = draw(st.sampled_from(sorted(GENOME_LENGTHS)))
        position = draw(st.integers(0, GENOME_LENGTHS[chrom] - 1))
        length = draw(st.integers(1, min(3, GENOME_LENGTHS[chrom] - position)))
        ref = GENOME_SEQUENCES[chrom][position : position + length].decode()
        alts = draw(st.lists(_ALTS, min_size=1, max_size=3))
        vid = draw(st.sampled_from([".", "rs1", "var_7"]))
        rest = draw(st.sampled_from([[], ["50", "PASS", "DP=3"], ["."] * 3 + ["GT", "0/1"]]))
        lines.append("\t".join([chrom, str(position + 1), vid, ref, ",".join(alts), *rest]))
        expected.append([(chrom, position, vid, ref.upper(), alt.upper()) for alt in alts])
    return (newline.join(lines) + newline).encode(), expected


@seeded
@FUZZ
@given(data=st.data(), compression=st.sampled_from(COMPRESSIONS), split=st.integers(0, 1 << 16))
def test_vcf_valid_files_read_back(folder, genome, data, compression, split):
    raw, expected = data.draw(vcf_files())
    path = folder / "valid.vcf"
    path.write_bytes(compress(raw, compression, split))
    with no_hang(), IndexedFasta(genome) as fasta:
        got = list(read_vcf(path, fasta))
    assert [[(v.chrom, v.position, v.id, v.ref, v.alt) for v in line] for line in got] == expected


@seeded
@FUZZ
@given(data=st.data(), compression=st.sampled_from(COMPRESSIONS), damage=mutations)
def test_vcf_damaged_files_fail_only_with_input_errors(folder, genome, data, compression, damage):
    raw, _ = data.draw(vcf_files())
    path = folder / "damaged.vcf"
    path.write_bytes(damaged(compress(raw, compression), damage))

    def read():
        with IndexedFasta(genome) as fasta:
            list(read_vcf(path, fasta))

    _only_input_errors(read)


# -- labelled tables (CSV / TSV) ------------------------------------------------------------------------

# no bare CR: csv.writer leaves a field holding one unquoted (with "\\n" line ends), which no reader can undo
_LABEL_CHARS = st.characters(codec="utf-8", exclude_characters="\x00\r")


@st.composite
def label_tables(draw):
    """(file bytes, delimiter, [(sequence, label, id, group, split)]) of a valid CSV or TSV table."""
    delimiter = draw(st.sampled_from([",", "\t"]))
    columns = draw(st.permutations(["sequence", "label", "id", "group", "split", "extra"]))
    columns = [c for c in columns if c in ("sequence", "label") or draw(st.booleans())]
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        sequence = draw(st.text(_DNA, min_size=1, max_size=60))
        padded = draw(st.sampled_from(["", " ", "  "])) + sequence + draw(st.sampled_from(["", " "]))
        rows.append({"sequence": padded, "label": draw(st.text(_LABEL_CHARS, max_size=12)),
                     "id": draw(st.text(_LABEL_CHARS, max_size=6)), "group": draw(_field),
                     "split": draw(st.sampled_from(["", *SPLITS, "TEST", " Val "])),
                     "extra": draw(st.text(_LABEL_CHARS, max_size=6))})
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow([draw(st.sampled_from([c, c.upper(), f" {c.title()} "])) for c in columns])
    for row in rows:
        writer.writerow([row[c] for c in columns])
    text = ("\ufeff" if draw(st.booleans()) else "") + buffer.getvalue()
    return text.encode("utf-8"), delimiter, columns, rows


@seeded
@FUZZ
@given(data=st.data(), compression=st.sampled_from(["plain", "gzip", "bgzf", "xz", "bz2"]))
def test_label_tables_read_back(folder, data, compression):
    raw, delimiter, columns, rows = data.draw(label_tables())
    suffix = {"plain": "", "gzip": ".gz", "bgzf": ".bgz", "xz": ".xz", "bz2": ".bz2"}[compression]
    path = folder / (("labels.csv" if delimiter == "," else "labels.tsv") + suffix)
    path.write_bytes(compress(raw, compression))
    with no_hang():
        got = read_labelled(str(path))
    assert got.labels == [r["label"].strip() for r in rows]
    for ids, row in zip(got.sequences, rows, strict=True):
        np.testing.assert_array_equal(ids, ab.encode(row["sequence"].strip().encode())[0])
    if "split" in columns:
        assert got.splits == [SPLITS.get(r["split"].strip().lower()) for r in rows]
    if "id" in columns:
        assert [i for i, r in zip(got.ids, rows, strict=True) if r["id"].strip()] == [
            r["id"].strip() for r in rows if r["id"].strip()
        ]


@seeded
@FUZZ
@given(data=st.data(), compression=st.sampled_from(["plain", "gzip", "xz"]), damage=mutations)
def test_label_tables_damaged_fail_only_with_input_errors(folder, data, compression, damage):
    raw, delimiter, _, _ = data.draw(label_tables())
    path = folder / ("damaged.csv" if delimiter == "," else "damaged.tsv")
    path.write_bytes(damaged(compress(raw, compression), damage))

    def read():  # the table, then what fine-tuning does with its labels
        labelled = read_table(path, delimiter=delimiter)
        encode_targets(labelled, infer_task(labelled))

    _only_input_errors(read)


@seeded
@FUZZ
@given(data=st.binary(max_size=400), kind=st.sampled_from(["fa", "bed", "vcf", "csv", "tsv"]))
def test_random_bytes_fail_only_with_input_errors(folder, genome, data, kind):
    """Whatever the bytes, every reader answers with its data or an input error."""
    assume(data)
    path = folder / f"random.{kind}"
    path.write_bytes(data)

    def read():
        if kind == "fa":
            list(read_fasta(path, warn=lambda m: None))
        elif kind == "bed":
            parsed = parse_bed(path, required=(), headerless=standard_columns(path))
            list(intervals(parsed, GENOME_LENGTHS, genome))
        elif kind == "vcf":
            with IndexedFasta(genome) as fasta:
                list(read_vcf(path, fasta))
        else:
            read_labelled(str(path))

    _only_input_errors(read)
