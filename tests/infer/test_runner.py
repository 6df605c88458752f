"""genomamba.infer.runner: outputs written chunk by chunk equal one whole pass, and a failure in a
later file after chunks were written still leaves the output untouched."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from genomamba.errors import InputDataError
from genomamba.infer import runner
from genomamba.infer.embed import embed_fasta


def _embed(model, fasta, out, **options):
    return embed_fasta(model, fasta, out, window=64, device="cpu", log=lambda m: None, **options)


def test_chunked_output_equals_one_chunk(mlm_model, small_fasta, tmp_path, monkeypatch):
    whole = tmp_path / "whole.parquet"
    _embed(mlm_model, [small_fasta], whole)
    monkeypatch.setattr(runner, "ROWS_PER_CHUNK", 3)
    chunked = tmp_path / "chunked.parquet"
    summary = _embed(mlm_model, [small_fasta], chunked, batch_size=2)
    # records of 300, 120 and 257 bases in 64-base windows, the last one of each kept: 5 + 2 + 5
    assert summary["rows"] == 12 and pq.ParquetFile(chunked).num_row_groups == 3
    pd.testing.assert_frame_equal(pd.read_parquet(chunked), pd.read_parquet(whole), rtol=1e-5, atol=1e-6)


def test_invalid_record_after_written_chunks_leaves_the_output_untouched(mlm_model, small_fasta, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(runner, "ROWS_PER_CHUNK", 1)
    out = tmp_path / "emb.tsv"
    _embed(mlm_model, [small_fasta], out)
    before = out.read_bytes()
    bad = tmp_path / "bad.fa"
    bad.write_text(">r1\n" + "ACGT" * 40 + "\n>r2\nAC!GT\n")
    with pytest.raises(InputDataError, match=r"bad\.fa.*line 4"):
        _embed(mlm_model, [small_fasta, bad], out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_every_row_counts_its_n_bases(mlm_model, tmp_path):
    fasta = tmp_path / "n.fa"
    fasta.write_text(">r\n" + "ACGT" * 4 + "NNRY" + "acgt" * 3 + "\n")
    out = tmp_path / "n.tsv"
    embed_fasta(mlm_model, [fasta], out, window=16, device="cpu", log=lambda m: None)
    table = pd.read_csv(out, sep="\t")
    assert list(table["n_bases"]) == [0, 4] and list(table["end"] - table["start"]) == [16, 16]


def test_progress_receives_every_base(mlm_model, small_fasta, tmp_path):
    done = []
    embed_fasta(mlm_model, [small_fasta], tmp_path / "e.tsv", batch_size=2, device="cpu", log=lambda m: None,
                progress=done.append)
    assert sum(done) == 300 + 120 + 257 and len(done) == 2  # two batches of whole records


def test_windows_over_max_n_fraction_are_left_out_and_counted(mlm_model, tmp_path, caplog):
    fasta = tmp_path / "gap.fa"
    fasta.write_text(">r\n" + "ACGT" * 4 + "N" * 16 + "ACGTNNNNACGTACGT" + "\n")
    out = tmp_path / "n.tsv"
    embed_fasta(mlm_model, [fasta], out, window=16, max_n_fraction=0.3, device="cpu", log=lambda m: None)
    table = pd.read_csv(out, sep="\t")
    assert list(table["start"]) == [0, 32] and list(table["n_bases"]) == [0, 4]  # 16 N left out, 4 kept
    assert "1 windows with more than 0.3 N left out (--max-n-fraction)" in caplog.text
    gap = tmp_path / "all_n.fa"
    gap.write_text(">g\n" + "N" * 40 + "\n")
    with pytest.raises(InputDataError, match="over --max-n-fraction"):
        embed_fasta(mlm_model, [gap], out, window=16, max_n_fraction=0.5, device="cpu", log=lambda m: None)
    assert list(pd.read_csv(out, sep="\t")["start"]) == [0, 32]  # the earlier table is untouched
