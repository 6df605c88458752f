"""benchmarks/zero_shot_codons.py and its helper codon_snvs.py: codon annotation of hand-made genes
(plus and minus strand, two exons with a phase, start and stop codons, a 5'-partial CDS), the skips,
the VCF the scoring reads, and a CPU smoke run on the demo yeast genome with a tiny random model.

The hand-made genes, gene sense:
  g_plus  chr1:3-14 (+)   ATG AAA TGG TAA   M K W *
  g_minus chr1:17-25 (-)  ATG GCT TGA       M A *     (the genome holds TCAAGCCAT)
  g_exons chr2:3-9, 23-30 (+), phases 0 and 2: ATGGCAT | GGAAATAA = ATG GCA TGG AAA TAA
  g_rc    chr4: the same two exons on the reverse complement of chr2 (-)
  g_part  chr3:1-10 (+), phase 1: G|ATG AAA TAA (the frame starts at the second base)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import codon_snvs  # noqa: E402
import zero_shot_codons  # noqa: E402

from genomamba.alphabet import encode  # noqa: E402
from genomamba.errors import InputDataError  # noqa: E402

_COMPLEMENT = str.maketrans("ACGT", "TGCA")
CHR2 = "GG" + "ATGGCAT" + "GTAAGTTTTTTAG" + "GGAAATAA" + "CC"
GENOME = {
    "chr1": "CC" + "ATGAAATGGTAA" + "GG" + "TCAAGCCAT" + "AA",
    "chr2": CHR2,
    "chr3": "GATGAAATAA" + "CCCC",
    "chr4": CHR2.translate(_COMPLEMENT)[::-1],
    # the skips: 10 bases, an N, a stop in frame before the last codon, phases that disagree
    "chr5": "ATGAAATAAC" + "GG" + "ATGNAATAA" + "GG" + "ATGTAAAAATAA" + "GG" + "ATGAAAGGGTTTTAA",
}
_L4 = len(CHR2)
GFF3 = [
    ("chr1", 3, 14, "+", 0, "g_plus"), ("chr1", 17, 25, "-", 0, "g_minus"),
    ("chr2", 3, 9, "+", 0, "g_exons"), ("chr2", 23, 30, "+", 2, "g_exons"),
    # listed 5' to 3' on the genome, i.e. last exon first in reading order: read_cds sorts them
    ("chr4", _L4 - 29, _L4 - 22, "-", 2, "g_rc"), ("chr4", _L4 - 8, _L4 - 2, "-", 0, "g_rc"),
    ("chr3", 1, 10, "+", 1, "g_part"),
    ("chr5", 1, 10, "+", 0, "bad_length"), ("chr5", 13, 21, "+", 0, "bad_base"),
    ("chr5", 24, 35, "+", 0, "bad_stop"),
    ("chr5", 38, 43, "+", 0, "bad_phase"), ("chr5", 44, 52, "+", 1, "bad_phase"),
]


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("codons")
    gff3 = tmp / "genes.gff3"
    gff3.write_text("##gff-version 3\n" + "".join(
        f"{chrom}\ttest\tgene\t{start}\t{end}\t.\t{strand}\t.\tID={name}\n"
        f"{chrom}\ttest\tCDS\t{start}\t{end}\t.\t{strand}\t{phase}\tParent={name};Name={name}\n"
        for chrom, start, end, strand, phase, name in GFF3))
    genome = {name: encode(seq.encode())[0] for name, seq in GENOME.items()}
    table, skipped = codon_snvs.annotate(codon_snvs.read_cds(gff3), genome)
    return table, skipped, tmp


def _snv(table, transcript, pos, alt):
    chosen = (table.transcript == transcript) & (table.pos == pos) & (table.alt == alt)
    (row,) = table[chosen].to_dict("records")
    return row


def test_plus_strand_codons_and_classes(annotated):
    table, _, _ = annotated
    start = _snv(table, "g_plus", 3, "C")
    assert (start["ref"], start["strand"], start["codon_index"], start["codon_pos"], start["ref_codon"],
            start["alt_codon"], start["ref_aa"], start["alt_aa"], start["effect"]) == \
        ("A", "+", 1, 1, "ATG", "CTG", "M", "L", "start_lost")
    assert (_snv(table, "g_plus", 8, "G")["alt_codon"], _snv(table, "g_plus", 8, "G")["effect"]) == \
        ("AAG", "synonymous")
    assert _snv(table, "g_plus", 8, "T")["effect"] == "missense"  # AAT: K -> N
    assert (_snv(table, "g_plus", 11, "A")["codon_pos"], _snv(table, "g_plus", 11, "A")["effect"]) == \
        (3, "nonsense")  # TGG -> TGA
    assert _snv(table, "g_plus", 10, "A")["effect"] == "nonsense"  # TGG -> TAG
    assert _snv(table, "g_plus", 14, "G")["effect"] == "synonymous"  # TAA -> TAG: still a stop
    stop_lost = _snv(table, "g_plus", 12, "C")
    assert (stop_lost["alt_codon"], stop_lost["alt_aa"], stop_lost["effect"]) == ("CAA", "Q", "stop_lost")


def test_minus_strand_counts_positions_on_the_reverse_complement(annotated):
    table, _, _ = annotated
    start = _snv(table, "g_minus", 25, "C")  # forward T->C is the gene's A->G at its first base
    assert (start["ref"], start["codon_index"], start["codon_pos"], start["ref_codon"], start["alt_codon"],
            start["effect"]) == ("T", 1, 1, "ATG", "GTG", "start_lost")
    last = _snv(table, "g_minus", 17, "C")  # TGA -> TGG
    assert (last["codon_index"], last["codon_pos"], last["alt_aa"], last["effect"]) == \
        (3, 3, "W", "stop_lost")
    synonymous = _snv(table, "g_minus", 20, "G")  # GCT -> GCC
    assert (synonymous["ref"], synonymous["codon_pos"], synonymous["alt_codon"], synonymous["effect"]) == \
        ("A", 3, "GCC", "synonymous")


def test_two_exons_join_in_frame_across_the_intron(annotated):
    table, _, _ = annotated
    exons = table[table.transcript == "g_exons"]
    assert len(exons) == 15 * 3 and not exons.pos.between(10, 22).any()  # no intron base
    sites = exons.drop_duplicates("pos").set_index("pos")
    # codon 3 (TGG) is the last base of exon 1 and the first two of exon 2
    codons = [tuple(sites.loc[p, ["codon_index", "codon_pos"]]) for p in (9, 23, 24)]
    assert codons == [(3, 1), (3, 2), (3, 3)]
    assert _snv(table, "g_exons", 24, "A")["effect"] == "nonsense"  # TGG -> TGA
    # the same gene on the minus strand, its exons listed in genome order, reads the same codons
    rc = table[table.transcript == "g_rc"]
    key = ["codon_index", "codon_pos", "alt_codon"]
    for column in ("ref_codon", "alt_aa", "effect"):
        assert rc.sort_values(key)[column].tolist() == exons.sort_values(key)[column].tolist()


def test_a_phase_skips_bases_before_the_first_codon(annotated):
    table, _, _ = annotated
    partial = table[table.transcript == "g_part"]
    assert len(partial) == 9 * 3 and partial.pos.min() == 2
    # ATG is not known to be the start of a 5'-partial CDS: its changes are missense
    assert _snv(table, "g_part", 2, "C")["effect"] == "missense"


def test_enumeration_and_skips(annotated):
    table, skipped, _ = annotated
    plus = table[table.transcript == "g_plus"]
    assert len(plus) == 12 * 3 and plus.pos.nunique() == 12
    assert (plus.ref != plus.alt).all() and plus.groupby("pos").alt.nunique().eq(3).all()
    assert plus.codon_pos.value_counts().to_dict() == {1: 12, 2: 12, 3: 12}
    assert dict(skipped) == {"length_not_multiple_of_3": 1, "non_acgt_base": 1, "internal_stop": 1,
                             "phase_missing_or_inconsistent": 1}
    assert set(table.transcript) == {"g_plus", "g_minus", "g_exons", "g_rc", "g_part"}


def test_vcf_is_sorted_and_agrees_with_the_genome(annotated):
    from genomamba.io.indexed import IndexedFasta
    from genomamba.io.vcf import read_vcf

    table, _, tmp = annotated
    fasta = tmp / "genome.fa"
    fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in GENOME.items()))
    vcf = codon_snvs.write_vcf(table, {name: len(seq) for name, seq in GENOME.items()}, tmp / "snvs.vcf")
    with IndexedFasta(fasta) as genome:  # read_vcf checks every REF against the genome
        lines = list(read_vcf(vcf, genome))
    assert len(lines) == len(table) // 3
    keys = [(list(GENOME).index(site[0].chrom), site[0].position) for site in lines]
    assert keys == sorted(keys) and all(len(site) == 3 for site in lines)
    first = vcf.read_text().splitlines()[-len(lines)]
    assert first.startswith("chr1\t3\t.\tA\tC,G,T\t.\t.\tTX=g_plus;STRAND=+;CODON_INDEX=1;CODON_POS=1;")
    assert first.endswith("EFFECT=start_lost,start_lost,start_lost")


def test_bases_coding_in_two_cds_are_marked():
    assert codon_snvs.snv_table([]).empty
    one = codon_snvs.Transcript("a", "c", "+", [(0, 6, 0)])
    two = codon_snvs.Transcript("b", "c", "-", [(3, 9, 0)])
    coded = [(one, None, np.arange(0, 6)), (two, None, np.arange(8, 2, -1))]
    assert codon_snvs.shared_bases(coded)["c"].tolist() == [4, 5, 6]  # 1-based
    frame = pd.DataFrame({"chrom": ["c", "c", "c", "d"], "pos": [3, 4, 6, 4]})
    assert codon_snvs.mark_overlaps(frame, {"c": np.array([4, 5, 6])}).overlap.tolist() == \
        [False, True, True, False]


def test_smaller_is_a_one_sided_test_with_an_effect_size():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0, 0.5, 400), rng.normal(0, 2.0, 400)
    shifted = zero_shot_codons.smaller(small, large, 0.01)
    assert shifted["holds"] and shifted["p_value"] < 1e-6 and 0.4 < shifted["rank_biserial"] <= 1
    same = zero_shot_codons.smaller(large, -large, 0.01)  # equal |values|: no effect either way
    assert not same["holds"] and same["rank_biserial"] == pytest.approx(0) and same["p_value"] > 0.4
    assert zero_shot_codons.smaller(small, np.zeros(0), 0.01)["holds"] is None


def test_a_malformed_cds_line_names_its_file_and_line(tmp_path):
    gff3 = tmp_path / "bad.gff3"
    gff3.write_text("##gff-version 3\nchrI\tSGD\tCDS\t10\t30\t.\t+\t3\tParent=a\n")
    with pytest.raises(InputDataError, match=r"bad.gff3: line 2: phase \(column 8\) must be 0, 1, 2"):
        codon_snvs.read_cds(gff3)
    gff3.write_text("chrI\tSGD\tgene\t10\t30\t.\t+\t.\tID=a\n")
    with pytest.raises(InputDataError, match="no CDS line"):
        codon_snvs.read_cds(gff3)


def test_a_region_on_an_unknown_record_is_an_input_error():
    with pytest.raises(InputDataError, match="no record 'chrX'"):
        zero_shot_codons.in_regions([], ["chrX:1-10"], {"chrI": 100})


def test_smoke_run_on_the_yeast_genome_with_a_random_model(tmp_path, capsys):
    import torch

    from genomamba.model.config import preset
    from genomamba.model.model import GenomambaModel
    from genomamba.model_directory import save_pretrained

    torch.manual_seed(1)  # not the control's seed (0): the two models must differ
    model = save_pretrained(GenomambaModel(preset("tiny")), tmp_path / "tiny")
    demo = REPO / "data" / "demo"
    report = zero_shot_codons.main([
        str(model), str(demo / "yeast_chrI_chrII.fa"), str(demo / "yeast_chrI_chrII.gff3"),
        "--region", "chrI", "--max-cds", "3", "--sample", "100", "--window", "64", "--batch-size", "32",
        "--device", "cpu", "--json", str(tmp_path / "report.json"), "--vcf", str(tmp_path / "snvs.vcf"),
        "--table", str(tmp_path / "snvs.parquet")])
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(report))
    info = report["info"]
    assert (info["cds_used"], info["snvs_scored"]) == (3, 300)
    assert info["cds_in_regions"] < info["cds_in_gff3"] and sum(info["cds_skipped"].values()) == 0
    assert sum(info["effects_scored"].values()) == 300
    assert set(report["results"]) == {"model", "control (untrained)"}
    for result in report["results"].values():
        positions = [result["groups"][f"codon position {p}"] for p in (1, 2, 3)]
        assert sum(g["n"] for g in positions) == 300
        assert all(g["q10_abs_llr"] <= g["median_abs_llr"] <= g["q90_abs_llr"] for g in positions)
        assert set(result["comparisons"]) == {name for name, _, _ in zero_shot_codons.COMPARISONS}
        for comparison in result["comparisons"].values():
            assert 0 <= comparison["p_value"] <= 1 and -1 <= comparison["rank_biserial"] <= 1
    assert set(report["verdict"]) == {"model_meets_criterion", "control_meets_criterion", "learned"}
    table = pd.read_parquet(tmp_path / "snvs.parquet")
    assert len(table) == 300 and table[["llr", "llr_control"]].notna().all().all()
    assert not np.allclose(table.llr, table.llr_control)  # the control is another model
    assert not table.overlap.any()
    assert (tmp_path / "snvs.vcf").read_text().count("\nchrI\t") == 100
    assert "| codon position 3 |" in capsys.readouterr().out
