"""bigWig tracks of predict (genomamba.infer.bigwig): read back with pyBigWig, the header's
chromosome sizes, ordering checks before any work, and nothing written on failure."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genomamba.errors import InputDataError, UnavailableError
from genomamba.infer.bigwig import track_chromosomes
from genomamba.infer.predict import predict_fasta
from genomamba.infer.tables import streaming_table

pyBigWig = pytest.importorskip("pyBigWig")
PLASMID = Path(__file__).resolve().parents[1] / "data" / "NC_007719.gbk.gz"


def _intervals(path) -> dict[str, list[tuple[int, int, float]]]:
    bw = pyBigWig.open(str(path))
    try:
        assert bw.isBigWig()
        return {"chroms": bw.chroms(), **{c: list(bw.intervals(c) or ()) for c in bw.chroms()}}
    finally:
        bw.close()


def _hidden(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_a_bigwig_holds_the_tables_scores_and_the_records_lengths(binary_model, small_fasta, tmp_path):
    table_out, track_out = tmp_path / "pred.tsv", tmp_path / "pred.bw"
    predict_fasta(binary_model, [small_fasta], table_out, window=100, last="drop", track_out=track_out,
                  device="cpu", log=lambda m: None)
    table = pd.read_csv(table_out, sep="\t")
    track = _intervals(track_out)
    # the header has each record's whole length, though --last drop left its tail without a window
    assert track.pop("chroms") == {"a": 300, "b": 120, "c": 257}
    rows = list(table[["record", "start", "end", "p_coding"]].itertuples(index=False, name=None))
    read = [(chrom, s, e, v) for chrom, values in track.items() for s, e, v in values]
    assert [row[:3] for row in read] == [row[:3] for row in rows] == [
        ("a", 0, 100), ("a", 100, 200), ("a", 200, 300), ("b", 0, 100), ("c", 0, 100), ("c", 100, 200)]
    # bigWig stores float32
    np.testing.assert_allclose([v for *_, v in read], table["p_coding"].astype(np.float32), rtol=1e-7)
    bw = pyBigWig.open(str(track_out))
    assert bw.values("c", 150, 152) == pytest.approx([table["p_coding"].iloc[5]] * 2, rel=1e-6)
    assert np.isnan(bw.values("c", 250, 251)[0])  # no window there
    bw.close()


def test_a_genbank_input_gives_its_records_length(binary_model, small_fasta, tmp_path):
    assert track_chromosomes([PLASMID]) == [("NC_007719.1", 5104)]
    from Bio import SeqIO

    genbank = tmp_path / "pieces.gbk"
    SeqIO.convert(small_fasta, "fasta", genbank, "genbank", molecule_type="DNA")
    out = tmp_path / "pieces.bigwig"
    predict_fasta(binary_model, [genbank], out, window=200, device="cpu", log=lambda m: None)
    track = _intervals(out)
    assert track["chroms"] == {"a": 300, "b": 120, "c": 257}
    assert [(s, e) for s, e, _ in track["a"]] == [(0, 200), (200, 300)]


def test_bed_intervals_must_be_sorted_and_apart(binary_model, tmp_path, demo_data):
    import shutil

    genome = shutil.copy(demo_data / "yeast_chrI_chrII.fa", tmp_path)
    out = tmp_path / "t.bw"
    bed = tmp_path / "r.bed"
    for text, where in [
        ("chrII\t100\t300\nchrII\t200\t400\n", "line 2: chrII:200-400 comes after chrII:100-300 (line 1)"),
        ("chrII\t100\t300\nchrI\t0\t50\nchrII\t500\t600\n", "line 3: chrII:500-600 comes after chrI:0-50"),
    ]:
        bed.write_text(text)
        with pytest.raises(InputDataError, match=rf"r.bed: {re.escape(where)}.*sort -k1,1 -k2,2n"):
            predict_fasta(binary_model, [], out, bed=bed, genome=genome, device="cpu", log=lambda m: None)
        assert not out.exists()
    bed.write_text("chrII\t100\t300\nchrII\t300\t420\nchrI\t0\t50\n")
    assert track_chromosomes([], bed=bed, genome=genome) == [("chrII", 813_178), ("chrI", 230_208)]
    predict_fasta(binary_model, [], out, bed=bed, genome=genome, device="cpu", log=lambda m: None)
    track = _intervals(out)
    assert [(s, e) for s, e, _ in track["chrII"]] == [(100, 300), (300, 420)]
    assert [(s, e) for s, e, _ in track["chrI"]] == [(0, 50)]


def test_refusals_come_before_any_work(binary_model, small_fasta, tmp_path, monkeypatch):
    out = tmp_path / "t.bw"
    with pytest.raises(ValueError, match="cannot hold overlapping windows"):
        predict_fasta(binary_model, [small_fasta], out, window=100, stride=50, device="cpu")
    with pytest.raises(ValueError, match="bigWig compresses its data itself; drop the .gz"):
        predict_fasta(binary_model, [small_fasta], tmp_path / "t.bw.gz", device="cpu")
    with pytest.raises(InputDataError, match="record 'a' is in both .* holds each chromosome once"):
        predict_fasta(binary_model, [small_fasta, small_fasta], out, device="cpu")
    monkeypatch.setitem(sys.modules, "pyBigWig", None)  # as if it were not installed
    with pytest.raises(UnavailableError, match=r"pip install 'genomamba\[tracks\]'"):
        predict_fasta(binary_model, [small_fasta], out, device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lambda_pieces.fa"]


def test_a_failure_leaves_no_bigwig(tmp_path):
    out = tmp_path / "t.bw"
    chunk = pd.DataFrame({"record": ["a"], "start": [0], "end": [10], "v": [0.5]})
    with pytest.raises(RuntimeError, match="reader failed"), \
            streaming_table(out, track="v", chromosomes=[("a", 100)]) as append:
        append(chunk)
        raise RuntimeError("reader failed")
    assert not out.exists() and _hidden(tmp_path) == []
    with pytest.raises(ValueError, match="needs the chromosomes"), streaming_table(out, track="v"):
        pass
