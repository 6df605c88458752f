"""genomamba.infer.predict: the columns of each task, the same probabilities as evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genomamba.checkpoint import from_pretrained
from genomamba.errors import InputDataError
from genomamba.infer.predict import predict_fasta
from genomamba.infer.windows import fasta_windows
from genomamba.train.evaluate import predict_scores


def test_binary_predictions_match_evaluation_scores(binary_model, small_fasta, tmp_path):
    out = tmp_path / "pred.tsv"
    summary = predict_fasta(binary_model, [small_fasta], out, batch_size=2, device="cpu", log=lambda m: None)
    table = pd.read_csv(out, sep="\t")
    assert summary["task"] == "binary" and summary["labels"] == ["noncoding", "coding"]
    assert list(table.columns) == ["file", "record", "start", "end", "n_bases", "p_coding", "predicted"]
    expected = predict_scores(from_pretrained(binary_model), [w.ids for w in fasta_windows([small_fasta])],
                              "binary", batch_size=1)
    np.testing.assert_allclose(table["p_coding"], expected, rtol=1e-5, atol=1e-6)
    assert list(table["predicted"]) == ["coding" if p >= 0.5 else "noncoding" for p in table["p_coding"]]


def test_multiclass_windows_give_a_distribution_and_the_argmax(multiclass_model, small_fasta, tmp_path):
    out = tmp_path / "pred.parquet"
    predict_fasta(multiclass_model, [small_fasta], out, window=100, stride=100, last="drop", device="cpu",
                  log=lambda m: None)
    table = pd.read_parquet(out)
    assert list(table["end"] - table["start"]) == [100] * len(table) and len(table) == 3 + 1 + 2
    probs = table[["p_exon", "p_intron", "p_intergenic"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert list(table["predicted"]) == [["exon", "intron", "intergenic"][i] for i in probs.argmax(axis=1)]


def test_a_model_without_a_sequence_head_is_refused(mlm_model, small_fasta, tmp_path):
    out = tmp_path / "pred.tsv"
    with pytest.raises(InputDataError, match="not a sequence classifier"):
        predict_fasta(mlm_model, [small_fasta], out, device="cpu")
    assert not out.exists()
