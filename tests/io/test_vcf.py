"""VCF lines read against a genome: alleles, their kinds, and every rejected line by file and line."""

from __future__ import annotations

import gzip

import pytest

from genomamba.errors import InputDataError
from genomamba.io.indexed import IndexedFasta
from genomamba.io.vcf import LeftOutTally, allele_kind, read_vcf

GENOME = ">chr1 test\nACGTACGTNNacgtRY\n>chr2\nGGGG\n"
HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


@pytest.fixture
def genome(tmp_path):
    path = tmp_path / "genome.fa"
    path.write_text(GENOME)
    with IndexedFasta(path) as fasta:
        yield fasta


def _vcf(tmp_path, body: str, name: str = "v.vcf"):
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def test_alleles_one_list_per_line_with_0_based_positions(tmp_path, genome):
    path = _vcf(tmp_path, "chr1\t2\trs1\tC\tA,t\t.\tPASS\t.\nchr2\t4\t.\tg\tC\n")
    lines = list(read_vcf(path, genome))
    assert [[(v.where, v.chrom, v.position, v.id, v.ref, v.alt) for v in alleles] for alleles in lines] == [
        [(f"{path}: line 3", "chr1", 1, "rs1", "C", "A"), (f"{path}: line 3", "chr1", 1, "rs1", "C", "T")],
        [(f"{path}: line 4", "chr2", 3, ".", "G", "C")],
    ]


def test_gzip_vcf_reads_like_plain(tmp_path, genome):
    body = HEADER + "chr1\t1\t.\tA\tG\n"
    path = tmp_path / "v.vcf.gz"
    path.write_bytes(gzip.compress(body.encode()))
    assert [v.alt for alleles in read_vcf(path, genome) for v in alleles] == ["G"]


def test_lower_case_and_ambiguous_genome_bases_match(tmp_path, genome):
    # position 9 is N, 11 is lower-case a, 15 is R in the genome
    path = _vcf(tmp_path, "chr1\t9\t.\tC\tG\nchr1\t11\t.\tA\tC\nchr1\t15\t.\tG\tA\n")
    assert len(list(read_vcf(path, genome))) == 3


@pytest.mark.parametrize("ref, alt, kind", [
    ("A", "G", "snv"), ("A", "A", "no change"), ("AT", "A", "indel"), ("A", "AT", "indel"),
    ("AT", "GC", "multi-base substitution"),
    ("A", "<DEL>", "symbolic"), ("A", "G[chr2:3[", "symbolic"), ("A", "*", "symbolic"), ("A", ".", "missing"),
    ("A", "N", "ambiguous"), ("N", "A", "ambiguous"), ("A", "R", "ambiguous"),
])
def test_allele_kinds(ref, alt, kind):
    assert allele_kind(ref, alt) == kind


def test_left_out_tally_counts_by_kind():
    tally = LeftOutTally()
    for kind in ("indel", "symbolic", "indel"):
        tally.add(kind)
    assert tally.text() == "2 indel, 1 symbolic"


@pytest.mark.parametrize("line, message", [
    ("chr1\t2\t.\tC", "line 3: 4 tab-separated column(s)"),
    ("chr1\tx\t.\tC\tA", "line 3: POS 'x' is not a 1-based position"),
    ("chr1\t0\t.\tC\tA", "line 3: POS '0'"),
    ("chr1\t2\t.\tC1\tA", "line 3: REF 'C1' is not a run of bases"),
    ("chr1\t16\t.\tYA\tA", "runs past the end of 'chr1' (16 bases)"),
    ("chr1\t2\t.\tG\tA", "line 3: REF G at chr1:2 disagrees with"),
    ("1\t2\t.\tC\tA", "chromosome '1' is not in"),
    ("chrX\t2\t.\tC\tA", "(its records: chr1, chr2)"),
])
def test_bad_lines_name_file_and_line(tmp_path, genome, line, message):
    path = _vcf(tmp_path, line + "\n")
    with pytest.raises(InputDataError) as info:
        list(read_vcf(path, genome))
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_missing_chr_prefix_is_pointed_out(tmp_path, genome):
    path = _vcf(tmp_path, "1\t2\t.\tC\tA\n")
    with pytest.raises(InputDataError, match=r"it has 'chr1' \(the names differ by a 'chr' prefix\)"):
        list(read_vcf(path, genome))
