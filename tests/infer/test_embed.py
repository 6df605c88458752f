"""genomamba.infer.embed: one row per window, the model's own embeddings, atomic output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genomamba.alphabet import reverse_complement
from genomamba.errors import InputDataError
from genomamba.infer.embed import embed_fasta
from genomamba.infer.model_inputs import fasta_windows
from genomamba.model_directory import from_pretrained


def test_embeddings_equal_the_models_own_one_sequence_at_a_time(mlm_model, small_fasta, tmp_path):
    """Batching pads the shorter records; every row must still be the embedding of its record alone."""
    out = tmp_path / "emb.parquet"
    summary = embed_fasta(mlm_model, [small_fasta], out, batch_size=3, device="cpu", log=lambda m: None)
    table = pd.read_parquet(out)
    assert summary == {"out": str(out), "rows": 3, "width": 16, "pooling": "mean"}
    assert list(table.columns[:5]) == ["file", "record", "start", "end", "n_bases"]
    X = table.filter(regex="^emb_").to_numpy()
    assert X.shape == (3, 16) and X.dtype == np.float32
    model = from_pretrained(mlm_model)
    for row, window in zip(X, fasta_windows([small_fasta]), strict=True):
        with torch.inference_mode():
            alone = model.embed(torch.from_numpy(window.ids.astype(np.int64))[None], pooling="mean")
        np.testing.assert_allclose(row, alone[0].numpy(), rtol=1e-5, atol=1e-6)


def test_conjoined_embedding_is_the_same_for_the_reverse_complement(mlm_model, small_fasta, tmp_path):
    from genomamba.alphabet import decode

    (first, *_) = fasta_windows([small_fasta])
    both = tmp_path / "both.fa"
    both.write_text(f">x\n{decode(first.ids).decode()}\n>rc\n{decode(reverse_complement(first.ids)).decode()}\n")
    out = tmp_path / "both.tsv"
    embed_fasta(mlm_model, [both], out, conjoin=True, device="cpu", log=lambda m: None)
    X = pd.read_csv(out, sep="\t").filter(regex="^emb_").to_numpy()
    np.testing.assert_allclose(X[0], X[1], rtol=1e-4, atol=1e-5)
    assert not np.allclose(X[0], 0)


def test_bad_fasta_fails_before_writing_and_keeps_an_earlier_result(mlm_model, small_fasta, tmp_path):
    out = tmp_path / "emb.parquet"
    embed_fasta(mlm_model, [small_fasta], out, device="cpu", log=lambda m: None)
    before = out.read_bytes()
    bad = tmp_path / "bad.fa"
    bad.write_text(">r1\nACGT\n>r2\nAC!GT\n")
    with pytest.raises(InputDataError, match=r"bad\.fa.*line 4"):
        embed_fasta(mlm_model, [small_fasta, bad], out, device="cpu", log=lambda m: None)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_unknown_output_suffix_is_refused_before_any_work(mlm_model, small_fasta, tmp_path):
    with pytest.raises(ValueError, match=r"\.parquet, \.pq, \.tsv, \.txt, \.csv"):
        embed_fasta(mlm_model, [small_fasta], tmp_path / "emb.xlsx", device="cpu")


def test_parquet_output_records_model_digest_and_options(mlm_model, small_fasta, tmp_path):
    import hashlib

    from genomamba.infer.tables import read_provenance

    out = tmp_path / "emb.parquet"
    embed_fasta(mlm_model, [small_fasta], out, window=100, device="cpu", log=lambda m: None)
    provenance = read_provenance(out)
    weights = hashlib.sha256((mlm_model / "model.safetensors").read_bytes()).hexdigest()
    assert provenance["model_weights_sha256"] == weights and provenance["model"] == str(mlm_model)
    assert provenance["options"]["window"] == 100 and provenance["options"]["command"] == "embed"


def test_records_longer_than_the_model_is_sized_for_are_warned_about(tmp_path, small_fasta, caplog):
    from tests.infer.infer_cases import save_model

    model = save_model(tmp_path / "short", rc_strategy="ph", max_length=128)
    embed_fasta(model, [small_fasta], tmp_path / "e.tsv", device="cpu", log=lambda m: None)
    assert "record 'a' is read as 300 bases, longer than the 128" in caplog.text
    assert caplog.text.count("longer than") == 1


def test_embeddings_cannot_be_a_bedgraph_track(mlm_model, small_fasta, tmp_path):
    with pytest.raises(ValueError, match="an embedding many"):
        embed_fasta(mlm_model, [small_fasta], tmp_path / "e.bedgraph", device="cpu")
