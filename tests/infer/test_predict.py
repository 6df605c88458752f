"""genomamba.infer.predict: the columns of each task, the same probabilities as evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genomamba.errors import InputDataError
from genomamba.infer.model_inputs import fasta_windows
from genomamba.infer.predict import predict_fasta
from genomamba.model_directory import from_pretrained
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


def test_bedgraph_track_holds_the_binary_score_per_window(binary_model, small_fasta, tmp_path):
    table_out, track_out = tmp_path / "pred.tsv", tmp_path / "pred.bedgraph"
    for out in (table_out, track_out):
        predict_fasta(binary_model, [small_fasta], out, window=100, device="cpu", log=lambda m: None)
    lines = track_out.read_text().splitlines()
    assert lines[0].startswith('track type=bedGraph name="p_coding"')
    track = pd.read_csv(track_out, sep="\t", skiprows=1, header=None, names=["record", "start", "end", "p"])
    table = pd.read_csv(table_out, sep="\t")
    assert track[["record", "start", "end"]].equals(table[["record", "start", "end"]])
    np.testing.assert_allclose(track["p"], table["p_coding"], rtol=1e-6)
    # sorted within each record and never overlapping, as genome browsers require
    for _, rows in track.groupby("record"):
        assert (rows["start"].to_numpy()[1:] >= rows["end"].to_numpy()[:-1]).all()


def test_bedgraph_needs_one_column_and_windows_that_do_not_overlap(multiclass_model, binary_model,
                                                                    small_fasta, tmp_path):
    out = tmp_path / "t.bdg"
    with pytest.raises(ValueError, match="choose one with --track of: p_exon, p_intron, p_intergenic"):
        predict_fasta(multiclass_model, [small_fasta], out, window=100, device="cpu")
    with pytest.raises(ValueError, match="'p_x' is not one of"):
        predict_fasta(multiclass_model, [small_fasta], out, window=100, track="p_x", device="cpu")
    with pytest.raises(ValueError, match="cannot hold overlapping windows"):
        predict_fasta(binary_model, [small_fasta], out, window=100, stride=50, device="cpu")
    with pytest.raises(ValueError, match="cannot hold overlapping windows"):
        predict_fasta(binary_model, [small_fasta], out, window=100, last="shift", device="cpu")
    assert not out.exists()
    predict_fasta(multiclass_model, [small_fasta], out, window=100, track="p_intron", device="cpu",
                  log=lambda m: None)
    assert out.read_text().startswith('track type=bedGraph name="p_intron"')


def test_track_out_writes_table_and_track_in_one_pass(binary_model, small_fasta, tmp_path):
    table_out, track_out = tmp_path / "pred.tsv", tmp_path / "pred.bedgraph.gz"
    summary = predict_fasta(binary_model, [small_fasta], table_out, window=100, track_out=track_out,
                            device="cpu", log=lambda m: None)
    track = pd.read_csv(track_out, sep="\t", skiprows=1, header=None, names=["record", "start", "end", "p"])
    table = pd.read_csv(table_out, sep="\t")
    assert summary["rows"] == len(table) == len(track)
    np.testing.assert_allclose(track["p"], table["p_coding"], rtol=1e-6)
    with pytest.raises(ValueError, match="must end in .bedgraph"):
        predict_fasta(binary_model, [small_fasta], table_out, window=100, track_out=tmp_path / "x.tsv",
                      device="cpu")
