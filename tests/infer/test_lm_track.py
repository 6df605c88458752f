"""``genomamba track`` in the library: per-base masked-LM scores equal the one-pass model's; the
bigWig and bedGraph tracks hold the table's values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from genomamba.alphabet import A_ID, T_ID, VOCAB_SIZE, encode
from genomamba.errors import InputDataError
from genomamba.infer.lm_track import COLUMNS, lm_track, per_base_scores
from genomamba.infer.whole_records import StreamSettings
from genomamba.io.fasta import read_fasta
from genomamba.model_directory import from_pretrained
from tests.infer.infer_cases import BINARY_HEAD, save_model

SMALL_CHUNKS = StreamSettings(device="cpu", chunk_size=70)


def test_scores_equal_the_one_pass_model_and_the_bigwig_equals_the_table(mlm_model, small_fasta, tmp_path):
    pyBigWig = pytest.importorskip("pyBigWig")
    table, track = tmp_path / "scores.tsv", tmp_path / "ref_ll.bw"
    info = lm_track(mlm_model, [small_fasta], table, track_out=track, settings=SMALL_CHUNKS,
                    log=lambda m: None)
    assert info["records"] == 3 and info["rows"] == 677 and info["score"] == "ref_ll"
    got = pd.read_csv(table, sep="\t", dtype={"record": str})
    assert tuple(got.columns) == COLUMNS
    model = from_pretrained(mlm_model)
    with pyBigWig.open(str(track)) as bw:
        assert bw.chroms() == {"a": 300, "b": 120, "c": 257}
        for record in read_fasta(small_fasta, softmask=False):
            ids = torch.from_numpy(record.ids.astype(np.int64))[None]
            with torch.inference_mode():
                log_p = torch.log_softmax(model.predict(ids).logits[0, :, A_ID : T_ID + 1], -1)
            want_ref = log_p.gather(1, ids[0, :, None] - A_ID)[:, 0].numpy()
            want_entropy = -(log_p.exp() * log_p).sum(1).numpy()
            rows = got[got["record"] == record.name]
            assert rows["start"].tolist() == list(range(len(record.ids)))
            np.testing.assert_allclose(rows["ref_ll"], want_ref, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(rows["entropy"], want_entropy, rtol=1e-5, atol=1e-5)
            sampled = np.random.default_rng(1).choice(len(record.ids), 25, replace=False)
            for position in sampled:
                value = bw.values(record.name, int(position), int(position) + 1)[0]
                assert value == pytest.approx(rows["ref_ll"].iloc[position], rel=1e-6, abs=1e-6)


def test_bedgraph_of_entropy_and_n_bases_left_out(mlm_model, tmp_path):
    fasta = tmp_path / "n.fa"
    fasta.write_text(">r\nACGTNNNNACGTRYAC\n")
    out = tmp_path / "entropy.bedgraph"
    lm_track(mlm_model, [fasta], out, score="entropy", settings=SMALL_CHUNKS, log=lambda m: None)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("track type=bedGraph") and '"entropy"' in lines[0]
    starts = [int(line.split("\t")[1]) for line in lines[1:]]
    assert starts == [0, 1, 2, 3, 8, 9, 10, 11, 14, 15]  # N and the IUPAC codes (read as N) have none
    assert all(0 <= float(line.split("\t")[3]) <= math.log(4) + 1e-6 for line in lines[1:])


def test_per_base_scores_of_known_logits():
    ids, _, _ = encode(b"ACGN")
    logits = np.zeros((4, VOCAB_SIZE), np.float32)
    logits[1, A_ID + 1] = 100.0  # C certain at position 1
    frame = per_base_scores(ids, logits)
    assert frame["start"].tolist() == [0, 1, 2] and frame["base"].tolist() == ["A", "C", "G"]
    np.testing.assert_allclose(frame["ref_ll"], [math.log(0.25), 0.0, math.log(0.25)], atol=1e-6)
    np.testing.assert_allclose(frame["entropy"], [math.log(4), 0.0, math.log(4)], atol=1e-6)


def test_a_model_without_a_masked_lm_head_is_refused(tmp_path, small_fasta):
    model = save_model(tmp_path / "binary", rc_strategy="ph", head=BINARY_HEAD)
    with pytest.raises(InputDataError, match="masked-LM head"):
        lm_track(model, [small_fasta], tmp_path / "x.bw", settings=SMALL_CHUNKS)
    assert not (tmp_path / "x.bw").exists()


def test_no_base_to_score_leaves_nothing(mlm_model, tmp_path):
    fasta = tmp_path / "n.fa"
    fasta.write_text(">r\nNNNNNNNN\n")
    with pytest.raises(InputDataError, match="no A, C, G or T"):
        lm_track(mlm_model, [fasta], tmp_path / "out.tsv", settings=SMALL_CHUNKS, log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.fa"]


def test_track_out_must_be_a_track(mlm_model, small_fasta, tmp_path):
    with pytest.raises(ValueError, match="track output"):
        lm_track(mlm_model, [small_fasta], tmp_path / "a.tsv", track_out=tmp_path / "b.tsv")
