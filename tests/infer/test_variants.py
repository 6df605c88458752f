"""Variant scores of a masked-LM: the llr the model's own logits give, strand symmetry, padding,
and runs that write nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genomamba.alphabet import ACGT_IDS, MASK_ID, decode, encode, reverse_complement
from genomamba.errors import InputDataError
from genomamba.infer.variants import centred_window, score_variants
from genomamba.model_directory import from_pretrained

COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _other(base: str, shift: int) -> str:
    """Another base than ``base`` (shift 1-3 along ACGT)."""
    return "ACGT"[("ACGT".index(base) + shift) % 4]


@pytest.fixture
def genome(tmp_path, demo_data):
    """2,000 bases of phage lambda as record 'fwd', their reverse complement as 'rev', and the first
    300 of them again as 'short'."""
    from genomamba.io.fasta import read_fasta

    (record,) = list(read_fasta(demo_data / "lambda_virus.fa", softmask=False))
    piece = record.ids[10_000:12_000]
    path = tmp_path / "genome.fa"
    path.write_text(f">fwd\n{decode(piece).decode()}\n>rev\n{decode(reverse_complement(piece)).decode()}\n"
                    f">short\n{decode(piece[:300]).decode()}\n")
    return path, decode(piece).decode()


def _vcf(tmp_path, rows) -> str:
    path = tmp_path / "v.vcf"
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT"]
    lines += ["\t".join(str(x) for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("position, length, window, expected", [
    (500, 2000, 101, (450, 551)), (3, 2000, 101, (0, 101)), (1998, 2000, 101, (1899, 2000)),
    (5, 60, 101, (0, 60)), (10, 2000, 1, (10, 11)), (10, 2000, 2, (9, 11)),
])
def test_centred_window(position, length, window, expected):
    start, end = centred_window(position, length, window)
    assert (start, end) == expected and start <= position < end


def test_llr_is_the_models_masked_log_probability_ratio(tmp_path, genome, mlm_model):
    path, seq = genome
    alt = seq[700].translate(COMPLEMENT)  # any base other than the reference
    vcf = _vcf(tmp_path, [("fwd", 701, "v1", seq[700], alt)])
    out = tmp_path / "scores.tsv"
    score_variants(mlm_model, vcf, path, out, window=101, device="cpu", log=lambda m: None)
    row = pd.read_csv(out, sep="\t").iloc[0]
    assert (row["window_start"], row["window_end"]) == (650, 751)

    ids, _, _ = encode(seq[650:751].encode())
    ids[50] = MASK_ID
    model = from_pretrained(mlm_model, device=torch.device("cpu"))
    logits = model.predict(torch.from_numpy(ids.astype(np.int64))[None]).logits[0, 50]
    log_p = torch.log_softmax(logits[torch.from_numpy(ACGT_IDS).long()].float(), dim=-1)
    want = {b: log_p["ACGT".index(b)].item() for b in "ACGT"}
    assert row["log_p_ref"] == pytest.approx(want[seq[700]], abs=1e-5)
    assert row["log_p_alt"] == pytest.approx(want[alt], abs=1e-5)
    assert row["llr"] == pytest.approx(want[alt] - want[seq[700]], abs=1e-5)


def test_a_variant_scores_the_same_read_from_the_other_strand(tmp_path, genome, mlm_model):
    """PH models are conjoined over both strands: the mirrored variant on the reverse-complement
    record (odd window, so its window is the mirrored one) gets the same scores."""
    path, seq = genome
    rows = []
    for i, p in enumerate((300, 1001, 1700)):
        ref, alt = seq[p], _other(seq[p], 1)
        rows.append(("fwd", p + 1, f"f{i}", ref, alt))
        rows.append(("rev", 2000 - p, f"r{i}", ref.translate(COMPLEMENT), alt.translate(COMPLEMENT)))
    out = tmp_path / "scores.parquet"
    result = score_variants(mlm_model, _vcf(tmp_path, rows), path, out, window=201, device="cpu",
                            log=lambda m: None)
    assert result["rows"] == 6
    table = pd.read_parquet(out)
    fwd, rev = table[table.chrom == "fwd"], table[table.chrom == "rev"]
    np.testing.assert_allclose(fwd["llr"].to_numpy(), rev["llr"].to_numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fwd["log_p_ref"].to_numpy(), rev["log_p_ref"].to_numpy(), rtol=1e-4, atol=1e-5)


def test_batches_and_padding_change_no_score_and_order_is_the_vcf_order(tmp_path, genome, mlm_model):
    path, seq = genome
    # windows of unequal length (ends of the record) in one batch; a multi-allelic line; an indel
    positions = (1995, 40, 1000, 3, 600)
    rows = [("fwd", p + 1, f"v{p}", seq[p], _other(seq[p], 2)) for p in positions]
    rows.insert(2, ("fwd", 501, "multi", seq[500], ",".join(b for b in "ACGT" if b != seq[500])))
    rows.insert(4, ("short", 101, "short", seq[100], _other(seq[100], 1)))
    rows.append(("fwd", 800, "del", seq[799:801], seq[799]))
    vcf = _vcf(tmp_path, rows)
    tables = []
    for batch_size in (1, 4):
        out = tmp_path / f"b{batch_size}.tsv"
        result = score_variants(mlm_model, vcf, path, out, window=1500, batch_size=batch_size, device="cpu",
                                log=lambda m: None)
        assert result["left_out"] == {"indel": 1}
        tables.append(pd.read_csv(out, sep="\t"))
    one, four = tables
    assert list(one["id"]) == ["v1995", "v40", "multi", "multi", "multi", "v1000", "short", "v3", "v600"]
    assert (one["window_end"] - one["window_start"]).tolist() == [1500] * 6 + [300] + [1500] * 2
    np.testing.assert_allclose(one["llr"], four["llr"], rtol=1e-4, atol=1e-5)


def test_a_model_without_an_mlm_head_is_refused_and_nothing_is_written(tmp_path, genome, binary_model):
    path, seq = genome
    out = tmp_path / "scores.tsv"
    with pytest.raises(InputDataError, match="needs? the masked-language model|variant scores need"):
        score_variants(binary_model, _vcf(tmp_path, [("fwd", 10, ".", seq[9], "N")]), path, out,
                       device="cpu")
    assert not out.exists()


def test_no_snv_at_all_is_an_error_and_writes_nothing(tmp_path, genome, mlm_model):
    path, seq = genome
    vcf = _vcf(tmp_path, [("fwd", 10, ".", seq[9], "<DEL>"), ("fwd", 20, ".", seq[19:21], seq[19])])
    out = tmp_path / "scores.parquet"
    with pytest.raises(InputDataError, match=r"no single-base substitution to score \(left out: 1 indel, "
                                             r"1 symbolic\)"):
        score_variants(mlm_model, vcf, path, out, device="cpu", log=lambda m: None)
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_a_bad_line_after_good_ones_leaves_no_output(tmp_path, genome, mlm_model):
    path, seq = genome
    wrong = _other(seq[99], 1)
    rows = [("fwd", 50, ".", seq[49], _other(seq[49], 1)), ("fwd", 100, ".", wrong, seq[99])]
    out = tmp_path / "scores.tsv"
    with pytest.raises(InputDataError, match=r"v.vcf: line 4: REF .* at fwd:100 disagrees"):
        score_variants(mlm_model, _vcf(tmp_path, rows), path, out, device="cpu", log=lambda m: None)
    assert not out.exists()


def test_a_region_scores_like_a_vcf_of_all_its_substitutions(tmp_path, genome, mlm_model):
    path, seq = genome
    rows = [("fwd", p + 1, ".", seq[p], ",".join(b for b in "ACGT" if b != seq[p])) for p in range(99, 104)]
    from_vcf, from_region = tmp_path / "vcf.tsv", tmp_path / "region.tsv"
    quiet = dict(window=101, device="cpu", log=lambda m: None)
    score_variants(mlm_model, _vcf(tmp_path, rows), path, from_vcf, **quiet)
    result = score_variants(mlm_model, None, path, from_region, regions=["fwd:100-104"], **quiet)
    assert result["rows"] == 15
    pd.testing.assert_frame_equal(pd.read_csv(from_vcf, sep="\t"), pd.read_csv(from_region, sep="\t"))


def test_a_vcf_and_regions_together_are_refused(tmp_path, genome, mlm_model):
    path, seq = genome
    with pytest.raises(ValueError, match="not both"):
        score_variants(mlm_model, _vcf(tmp_path, [("fwd", 1, ".", seq[0], "N")]), path, tmp_path / "x.tsv",
                       regions=["fwd:1-2"])
    with pytest.raises(ValueError, match="not both"):
        score_variants(mlm_model, None, path, tmp_path / "x.tsv")


def test_a_vcf_output_carries_the_tables_scores_in_info_fields(tmp_path, genome, mlm_model):
    """The same run written as a table and as a VCF: read back with pysam, every record of the input
    is there in order, with each SNV allele's scores and '.' for the others. htslib writes floats
    with 6 significant digits; the Parquet table keeps them whole."""
    pysam = pytest.importorskip("pysam")
    path, seq = genome
    rows = [("fwd", 301, "a", seq[300], _other(seq[300], 1)),
            ("fwd", 501, "multi", seq[500], f"{_other(seq[500], 1)},{seq[500]}TT,{_other(seq[500], 2)}"),
            ("fwd", 800, "del", seq[799:801], seq[799]),
            ("short", 101, "b", seq[100], _other(seq[100], 3))]
    vcf = tmp_path / "full.vcf"  # htslib needs the eight VCF columns
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "".join("\t".join(map(str, row)) + "\t.\t.\t.\n" for row in rows))
    table_out, vcf_out = tmp_path / "scores.parquet", tmp_path / "scores.vcf.gz"
    for out in (table_out, vcf_out):
        score_variants(mlm_model, vcf, path, out, window=101, device="cpu", log=lambda m: None)
    table = pd.read_parquet(table_out)
    with pysam.VariantFile(str(vcf_out)) as reader:
        assert "##genomamba_score_variants=version=" in str(reader.header)
        records = list(reader)
    assert [(r.chrom, r.pos, r.id) for r in records] == [(c, p, i) for c, p, i, *_ in rows]
    assert "GM_LLR" not in records[2].info  # the deletion's line: kept, not scored
    assert records[1].info["GM_LLR"][1] is None  # the insertion allele of the multi-allelic line
    for row in table.itertuples(index=False):
        record = next(r for r in records if (r.chrom, r.pos) == (row.chrom, row.pos))
        allele = record.alts.index(row.alt)
        assert record.info["GM_LLR"][allele] == pytest.approx(row.llr, rel=1e-5, abs=1e-6)
        assert record.info["GM_LOG_P_ALT"][allele] == pytest.approx(row.log_p_alt, rel=1e-5, abs=1e-6)
        assert record.info["GM_LOG_P_REF"] == pytest.approx(row.log_p_ref, rel=1e-5, abs=1e-6)
        assert (record.info["GM_WINDOW_START"], record.info["GM_WINDOW_END"], record.info["GM_N_BASES"]) == (
            row.window_start, row.window_end, row.n_bases)
    assert len(table) == 4
    with pytest.raises(ValueError, match="with --region write .parquet"):
        score_variants(mlm_model, None, path, tmp_path / "ism.vcf", regions=["fwd:1-2"])
