"""``context="record"`` for embed and predict: the windowed tables' rows, each window's values from
the hidden states of its whole record.

Float32 models on CPU with chunks of 64 bases (several per record; windows cross chunk boundaries).
Tolerance rtol 2e-5, atol 2e-6 (as tests/infer/test_per_base.py): the streamed and one-pass
paths differ by float32 rounding only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genomamba.infer.embed import embed_fasta
from genomamba.infer.model_inputs import fasta_windows
from genomamba.infer.predict import predict_fasta
from genomamba.infer.tables import read_provenance
from genomamba.infer.whole_records import StreamSettings
from genomamba.model.rc import reverse_complement_ids
from genomamba.model_directory import from_pretrained
from genomamba.runtime.sequence_head import scores_from_logits

SMALL_CHUNKS = StreamSettings(chunk_size=64)
TOL = {"rtol": 2e-5, "atol": 2e-6}
CUT = {"window": 100, "stride": 60, "last": "shift"}  # overlapping windows, a shifted last one
QUIET = {"device": "cpu", "log": lambda m: None}


def _hidden_of_records(model, fasta) -> dict[str, list[torch.Tensor]]:
    """Per record: the backbone's output over all of it in one pass, and over its reverse
    complement when the model conjoins (PH)."""
    out = {}
    for record in fasta_windows([fasta]):
        ids = torch.from_numpy(record.ids.astype(np.int64))[None]
        with torch.inference_mode():
            out[record.record] = [model.backbone(ids)]
            if model.config.rc_strategy == "ph":
                rc = reverse_complement_ids(ids, torch.tensor([ids.shape[1]]), model.backbone.complement)
                out[record.record].append(model.backbone(rc))
    return out


def _over_windows(table: pd.DataFrame, hidden: dict, read) -> np.ndarray:
    """``read(rows)`` of each table row's window span in its record's one-pass hidden states (the
    reverse complement's at ``[L - end, L - start)``), averaged over the passes."""
    values = []
    for record, start, end in table[["record", "start", "end"]].itertuples(index=False):
        passes = hidden[record]
        length = passes[0].shape[1]
        with torch.inference_mode():
            got = [read(passes[0][:, start:end])]
            if len(passes) == 2:
                got.append(read(passes[1][:, length - end : length - start]))
        values.append((got[0] if len(got) == 1 else 0.5 * (got[0] + got[1]))[0].numpy())
    return np.stack(values)


def test_embeddings_pool_the_records_one_pass_hidden_states(mlm_model, small_fasta, tmp_path):
    embed_fasta(mlm_model, [small_fasta], tmp_path / "win.tsv", **CUT, **QUIET)
    summary = embed_fasta(mlm_model, [small_fasta], tmp_path / "rec.parquet", context="record",
                          stream=SMALL_CHUNKS, **CUT, **QUIET)
    windowed, table = pd.read_csv(tmp_path / "win.tsv", sep="\t"), pd.read_parquet(tmp_path / "rec.parquet")
    assert summary["rows"] == len(windowed) == 11
    # the same rows, columns and order as window context
    assert list(table.columns) == list(windowed.columns)
    pd.testing.assert_frame_equal(table.iloc[:, :5], windowed.iloc[:, :5], check_dtype=False)
    hidden = _hidden_of_records(from_pretrained(mlm_model), small_fasta)
    want = _over_windows(table, hidden, lambda rows: rows.mean(1))
    np.testing.assert_allclose(table.filter(regex="^emb_").to_numpy(), want, **TOL)
    options = read_provenance(tmp_path / "rec.parquet")["options"]
    assert options["context"] == "record" and options["chunk"] == 64


@pytest.mark.parametrize("model_name", ["binary_model", "multiclass_model"])  # PH, PS
def test_predictions_are_the_head_over_the_records_one_pass_slices(model_name, small_fasta, tmp_path,
                                                                   request):
    model_dir = request.getfixturevalue(model_name)
    predict_fasta(model_dir, [small_fasta], tmp_path / "rec.tsv", context="record", stream=SMALL_CHUNKS,
                  **CUT, **QUIET)
    table = pd.read_csv(tmp_path / "rec.tsv", sep="\t")
    model = from_pretrained(model_dir)
    task = model.config.head.problem_type

    def head(rows):
        return model.head(rows, None, torch.tensor([rows.shape[1]]))

    logits = torch.from_numpy(_over_windows(table, _hidden_of_records(model, small_fasta), head))
    want = scores_from_logits(task, logits).numpy()
    got = table.filter(regex="^p_").to_numpy()
    np.testing.assert_allclose(got, want.reshape(got.shape), **TOL)


def test_a_whole_record_window_gives_the_window_context_result(binary_model, small_fasta, tmp_path):
    """Without --window, and with a window longer than every record, each record is one window:
    record context gives what window context gives."""
    predict_fasta(binary_model, [small_fasta], tmp_path / "win.tsv", **QUIET)
    windowed = pd.read_csv(tmp_path / "win.tsv", sep="\t")
    for name, cut in (("whole", {}), ("long", {"window": 400})):
        predict_fasta(binary_model, [small_fasta], tmp_path / f"{name}.tsv", context="record",
                      stream=SMALL_CHUNKS, **cut, **QUIET)
        table = pd.read_csv(tmp_path / f"{name}.tsv", sep="\t")
        pd.testing.assert_frame_equal(table.drop(columns="p_coding"), windowed.drop(columns="p_coding"))
        np.testing.assert_allclose(table["p_coding"], windowed["p_coding"], **TOL)


def test_a_short_window_in_a_long_record_is_read_in_its_context(mlm_model, small_fasta, tmp_path):
    cut = {"window": 20, "stride": 100, "last": "drop"}
    embed_fasta(mlm_model, [small_fasta], tmp_path / "win.tsv", **cut, **QUIET)
    embed_fasta(mlm_model, [small_fasta], tmp_path / "rec.tsv", context="record", stream=SMALL_CHUNKS, **cut,
                **QUIET)
    alone, in_record = (pd.read_csv(tmp_path / f"{n}.tsv", sep="\t").filter(regex="^emb_").to_numpy()
                        for n in ("win", "rec"))
    # a window at the start of a record has context on one side only; every one of them changes
    assert np.abs(alone - in_record).max(axis=1).min() > 1e-3


def test_windows_over_max_n_fraction_are_left_out_as_in_window_context(mlm_model, tmp_path, caplog):
    fasta = tmp_path / "gap.fa"
    fasta.write_text(">r\n" + "ACGT" * 10 + "N" * 16 + "ACGT" * 10 + "\n>all_n\n" + "N" * 40 + "\n")
    cut = {"window": 16, "max_n_fraction": 0.3}
    embed_fasta(mlm_model, [fasta], tmp_path / "win.tsv", **cut, **QUIET)
    caplog.clear()
    embed_fasta(mlm_model, [fasta], tmp_path / "rec.tsv", context="record", stream=SMALL_CHUNKS, **cut,
                **QUIET)
    windowed, table = (pd.read_csv(tmp_path / f"{n}.tsv", sep="\t") for n in ("win", "rec"))
    spans = ["record", "start", "end"]
    assert table[spans].values.tolist() == windowed[spans].values.tolist()
    assert "r" in set(table["record"]) and "all_n" not in set(table["record"])
    assert "5 windows with more than 0.3 N left out (--max-n-fraction)" in caplog.text


def test_what_record_context_does_not_take_is_refused_before_any_work(mlm_model, small_fasta, demo_data,
                                                                      tmp_path):
    bed = tmp_path / "r.bed"
    bed.write_text("gi|9626243|ref|NC_001416.1|\t0\t100\n")
    with pytest.raises(ValueError, match="not --bed intervals"):
        embed_fasta(mlm_model, [], tmp_path / "e.tsv", bed=bed, genome=demo_data / "lambda_virus.fa",
                    context="record", **QUIET)
    with pytest.raises(ValueError, match="plan --context record"):
        embed_fasta(mlm_model, [small_fasta], tmp_path / "e.tsv", stream=SMALL_CHUNKS, **QUIET)
    with pytest.raises(ValueError, match="context must be one of window, record"):
        embed_fasta(mlm_model, [small_fasta], tmp_path / "e.tsv", context="genome", **QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([small_fasta.name, "r.bed"])
