"""A VCF written back with scores (genomamba.io.vcf_output): every input record and header line kept,
the scores declared and readable with pysam, keys the input left undeclared added, nothing
written on failure."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from genomamba.errors import InputDataError, UnavailableError
from genomamba.io.compression import sniff_path
from genomamba.io.vcf_output import InfoField, annotated_vcf, vcf_mode

pysam = pytest.importorskip("pysam")

FIELDS = (InfoField("GM_LLR", "A", "Float", "llr", "llr"),
          InfoField("GM_N_BASES", "1", "Integer", "n", "n_bases"))
HEADER = (
    "##fileformat=VCFv4.2\n##source=a test\n##contig=<ID=chr1,length=1000>\n"
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2\n"
)
RECORDS = (
    "chr1\t10\trs1\tA\tg,AT,C\t50\tPASS\tDP=3\tGT\t0/1\t1/1\n"  # two SNVs and an indel
    "chr1\t20\t.\tC\tCTT\t.\t.\t.\tGT\t0/0\t0/1\n"  # no SNV: written unchanged
    "chr2\t30\t.\tG\tT\t.\tq10\tFOO=bar;FLAG\tGT:XX\t0/0:1\t0/1:2\n"  # keys and a contig not declared
)


def _scores(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["record", "chrom", "pos", "alt", "llr", "n_bases"])


SCORES = [(0, "chr1", 10, "G", -1.5, 2), (0, "chr1", 10, "C", 0.25, 2), (2, "chr2", 30, "T", 3.0, 0)]


def _write(tmp_path, name="out.vcf", records=RECORDS, frames=(SCORES[:1], SCORES[1:])):
    source = tmp_path / "in.vcf"
    source.write_text(HEADER + records)
    out = tmp_path / name
    with annotated_vcf(source, out, FIELDS, lengths={"chr1": 1000, "chr2": 500},
                       meta=["##genomamba_score_variants=version=test"]) as write:
        for rows in frames:
            write(_scores(rows))
    return source, out


@pytest.mark.parametrize("name", ["out.vcf", "out.vcf.gz", "out.bcf"])
def test_records_samples_and_header_are_kept_and_scores_added(tmp_path, name):
    source, out = _write(tmp_path, name)
    with pysam.VariantFile(str(out)) as reader:
        header = str(reader.header)
        records = list(reader)
        samples = list(reader.header.samples)
    assert samples == ["s1", "s2"]
    for line in HEADER.splitlines()[1:5] + ['##INFO=<ID=GM_LLR,Number=A,Type=Float,Description="llr">',
                                            "##genomamba_score_variants=version=test",
                                            "##contig=<ID=chr2,length=500>"]:
        assert line in header
    assert [(r.chrom, r.pos, r.ref, r.alts) for r in records] == [
        ("chr1", 10, "A", ("g", "AT", "C")), ("chr1", 20, "C", ("CTT",)), ("chr2", 30, "G", ("T",))]
    first, indel, third = records
    assert first.info["GM_LLR"] == (-1.5, None, 0.25) and first.info["GM_N_BASES"] == 2
    assert first.info["DP"] == 3 and first.samples["s2"]["GT"] == (1, 1)
    assert "GM_LLR" not in indel.info
    assert third.info["GM_LLR"] == (3.0,) and third.info["FOO"] == ("bar",) and third.info["FLAG"] is True
    assert list(third.filter) == ["q10"] and third.samples["s2"]["XX"] == ("2",)
    if name.endswith(".gz"):
        assert sniff_path(out) == "bgzf"  # ready for tabix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vcf", name]


def test_a_second_run_replaces_the_earlier_scores(tmp_path):
    _, first = _write(tmp_path)
    again = tmp_path / "again.vcf"
    with annotated_vcf(first, again, FIELDS, lengths={}) as write:
        write(_scores([(2, "chr2", 30, "T", 9.0, 7)]))
    with pysam.VariantFile(str(again)) as reader:
        assert str(reader.header).count("ID=GM_LLR,") == 1
        assert [r.info.get("GM_LLR") for r in reader] == [None, None, (9.0,)]


def test_failures_write_nothing_and_name_the_file(tmp_path, monkeypatch):
    source = tmp_path / "in.vcf"
    source.write_text(HEADER + RECORDS)
    with pytest.raises(RuntimeError, match="model failed"), \
            annotated_vcf(source, tmp_path / "out.vcf", FIELDS, lengths={}) as write:
        write(_scores(SCORES[:1]))
        raise RuntimeError("model failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vcf"]
    with pytest.raises(InputDataError, match=r"data line 1 reads as chr1:10 in htslib but chr1:11 here"):
        _write(tmp_path, frames=[[(0, "chr1", 11, "G", 1.0, 0)]])
    with pytest.raises(InputDataError, match=r"in.vcf: the record after chr1:20 cannot be read by htslib"):
        _write(tmp_path, records=RECORDS.replace("chr2", "\nchr2"))
    declared = '##INFO=<ID=GM_LLR,Number=1,Type=String,Description="x">\n'
    conflicting = HEADER.replace("##source", declared + "##source")
    (tmp_path / "in.vcf").write_text(conflicting + RECORDS)
    with pytest.raises(InputDataError, match="declares INFO GM_LLR as Number=1, Type=String"), \
            annotated_vcf(tmp_path / "in.vcf", tmp_path / "out.vcf", FIELDS, lengths={}):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vcf"]
    monkeypatch.setitem(sys.modules, "pysam", None)
    with pytest.raises(UnavailableError, match=r"pip install 'genomamba\[vcf\]'"), \
            annotated_vcf(tmp_path / "in.vcf", tmp_path / "out.vcf", FIELDS, lengths={}):
        pass


def test_a_gzip_input_is_read_through_a_temporary_copy(tmp_path):
    import gzip

    source = tmp_path / "in.vcf.gz"  # plain gzip: htslib cannot open it, the scoring reads it
    source.write_bytes(gzip.compress((HEADER + RECORDS).encode()))
    out = tmp_path / "sub" / "out.vcf"
    with annotated_vcf(source, out, FIELDS, lengths={}) as write:
        write(_scores(SCORES))
    with pysam.VariantFile(str(out)) as reader:
        assert [r.info.get("GM_LLR") for r in reader] == [(-1.5, None, 0.25), None, (3.0,)]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["out.vcf"]


def test_output_names():
    assert [vcf_mode(n) for n in ("a.vcf", "a.VCF.gz", "a.vcf.bgz", "a.bcf", "a.tsv", "a.vcf.xz")] == [
        "w", "wz", "wz", "wb", None, None]
