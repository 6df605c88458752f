"""The cheap check of a samtools index (genomamba.io.fai): indexes pyfaidx builds pass it, and
each kind of wrong index is named."""

from __future__ import annotations

import struct

import pyfaidx
import pytest
from Bio import bgzf

from genomamba.io import fai as fai_module
from genomamba.io.fai import FaiEntry, index_problem, read_fai, read_gzi

FASTA = b">chr1 first\nACGTACGTAC\nacgtnnRYAC\nGG\n>chr2\nTTTTCCCCAA\nA\n"
GOOD = "chr1\t22\t12\t10\t11\nchr2\t11\t43\t10\t11\n"  # what samtools faidx writes for FASTA


def built_index(tmp_path, data: bytes, name: str = "g.fa", bgzip: bool = False):
    """``data`` written (BGZF-compressed when ``bgzip``) and indexed by pyfaidx: (fasta, fai, gzi)."""
    path = tmp_path / name
    if bgzip:
        writer = bgzf.BgzfWriter(str(path), "wb")
        writer.write(data)
        writer.close()
    else:
        path.write_bytes(data)
    pyfaidx.Faidx(str(path)).close()
    return str(path), str(path) + ".fai", str(path) + ".gzi" if bgzip else None


@pytest.mark.parametrize(
    "data",
    [
        FASTA,
        b">a x\r\nACGT\r\nAC\r\n>b\r\nGG\r\n",  # Windows line ends
        b">a\n>b\nACGT\nA\n",  # an empty record
        b">a\nACGT\nAC",  # no line end at the end of the file
        b">a\nACGTAC\n>b\nAAAAAAAAAA\n\n",  # one line each, a blank line at the end
    ],
)
@pytest.mark.parametrize("bgzip", [False, True])
def test_indexes_pyfaidx_builds_pass(tmp_path, data, bgzip):
    fasta, fai, gzi = built_index(tmp_path, data, "g.fa.gz" if bgzip else "g.fa", bgzip)
    assert index_problem(fasta, fai, gzi) is None


def test_samtools_layout_is_what_pyfaidx_builds(tmp_path):
    _, fai, _ = built_index(tmp_path, FASTA)
    assert open(fai).read() == GOOD
    assert read_fai(fai) == [FaiEntry("chr1", 22, 12, 10, 11), FaiEntry("chr2", 11, 43, 10, 11)]
    assert [e.end for e in read_fai(fai)] == [36, 55]  # just past 'GG' and past the last 'A'


@pytest.mark.parametrize(
    "fai_text, expected",
    [
        ("", "lists no records"),
        ("chr1\t22\t12\t10\n", "cannot be read as a .fai (line 1: expected 5 tab-separated fields, found 4)"),
        ("chr1\t22\tx\t10\t11\n", "cannot be read as a .fai (line 1: the four numbers must be integers)"),
        ("chr1\t22\t12\t10\t9\n", "a line narrower than its bases"),
        (GOOD + "chr1\t1\t60\t1\t2\n", "lists record 'chr1' twice"),
        ("chr1\t22\t12\t10\t11\nchr2\t11\t30\t10\t11\n", "record 'chr2' starts at byte 30, inside 'chr1'"),
        ("chr1\t22\t12\t10\t11\nchr2\t13\t43\t10\t11\n", "record 'chr2' ends at byte 57, past the end"),
        (GOOD.replace("\t43\t", "\t44\t"), "record 'chr2' does not start after a header line (byte 44)"),
        (GOOD.replace("chr2", "chrX"), "record 'chrX' is not preceded by its header line '>chrX'"),
        (GOOD.replace("\t10\t11\nchr2", "\t11\t12\nchr2"), "record 'chr1' does not have 11 bases on its"),
        (GOOD.replace("chr1\t22", "chr1\t21"), "record 'chr1' does not end after 21 bases"),
        (GOOD.replace("chr1\t22", "chr1\t20"), "record 'chr1' has more than 20 bases"),
    ],
)
def test_each_wrong_index_is_named(tmp_path, fai_text, expected):
    fasta = tmp_path / "g.fa"
    fasta.write_bytes(FASTA)
    fai = tmp_path / "g.fa.fai"
    fai.write_text(fai_text)
    problem = index_problem(str(fasta), str(fai), None)
    assert problem is not None and expected in problem, problem
    assert str(fai) in problem  # names the file


def test_a_damaged_gzi_is_named(tmp_path):
    records = b"".join(b">r%d\n%s\n" % (i, b"ACGTTGCA" * 8) for i in range(4000))  # a few BGZF blocks
    fasta, fai, gzi = built_index(tmp_path, records, "g.fa.gz", bgzip=True)
    blocks = read_gzi(gzi)
    assert len(blocks) > 2 and blocks[0] == (0, 0)
    with open(gzi, "ab") as handle:
        handle.write(b"\0")
    assert "cannot be read as a .gzi" in index_problem(fasta, fai, gzi)
    (c1, u1), (c2, u2) = blocks[1], blocks[2]
    with open(gzi, "wb") as handle:  # two blocks swapped
        handle.write(struct.pack("<5Q", 2, c2, u2, c1, u1))
    assert "does not describe the BGZF blocks" in index_problem(fasta, fai, gzi)


def test_the_fai_of_another_bgzf_file_is_caught(tmp_path):
    fasta, fai, gzi = built_index(tmp_path, FASTA, "g.fa.gz", bgzip=True)
    other = tmp_path / "other.fa.gz"
    writer = bgzf.BgzfWriter(str(other), "wb")
    writer.write(FASTA.replace(b">chr2\n", b">chr2 a longer header\n"))
    writer.close()
    assert "record 'chr2' does not start after a header line" in index_problem(str(other), fai, gzi)


def test_many_records_are_sampled_first_and_last_included(tmp_path, monkeypatch):
    monkeypatch.setattr(fai_module, "SAMPLED_RECORDS", 8)
    records = b"".join(b">r%d\nACGT\n" % i for i in range(100))
    fasta, fai, _ = built_index(tmp_path, records)
    looked_at = []
    real = fai_module._record_problem
    monkeypatch.setattr(fai_module, "_record_problem", lambda e, rd: looked_at.append(e.name) or real(e, rd))
    assert index_problem(fasta, fai, None) is None
    assert len(looked_at) == 8 and looked_at[0] == "r0" and looked_at[-1] == "r99"
