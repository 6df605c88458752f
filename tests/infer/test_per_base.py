"""``embed --per-base`` in the library: a directory of .npy arrays equal to the one-pass model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from genomamba.errors import InputDataError
from genomamba.infer.per_base import INDEX_COLUMNS, embed_per_base, read_per_base
from genomamba.infer.whole_records import StreamSettings
from genomamba.io.fasta import read_fasta
from genomamba.model_directory import from_pretrained

SMALL_CHUNKS = StreamSettings(device="cpu", chunk_size=64)  # several chunks per record


def _one_pass(model_dir, fasta, **kw) -> dict[str, np.ndarray]:
    model = from_pretrained(model_dir)
    out = {}
    for record in read_fasta(fasta, softmask=False):
        ids = torch.from_numpy(record.ids.astype(np.int64))[None]
        with torch.inference_mode():
            out[record.name] = model.embed(ids, **kw)[0].numpy()
    return out


def test_per_base_embeddings_equal_the_one_pass_model(mlm_model, small_fasta, tmp_path):
    out = tmp_path / "deep" / "per_base"
    info = embed_per_base(mlm_model, [small_fasta], out, layer=1, settings=SMALL_CHUNKS, log=lambda m: None)
    assert info == {"out": str(out), "records": 3, "bases": 677, "width": 16, "dtype": "float32"}
    index = pd.read_csv(out / "index.tsv", sep="\t")
    assert tuple(index.columns) == INDEX_COLUMNS
    assert index[["record", "start", "end", "row"]].values.tolist() == [
        ["a", 0, 300, 0], ["b", 0, 120, 0], ["c", 0, 257, 0]]
    assert sorted(p.name for p in out.iterdir()) == sorted([*index["npy"], "index.tsv", "manifest.json"])
    expected = _one_pass(mlm_model, small_fasta, layer=1)
    for name, want in expected.items():
        got = read_per_base(out, name)
        assert got.shape == want.shape and got.dtype == np.float32
        rows = np.random.default_rng(0).choice(len(want), 20, replace=False)
        np.testing.assert_allclose(got[rows], want[rows], rtol=2e-5, atol=2e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["width"] == 16 and manifest["options"]["layer"] == 1
    assert manifest["options"]["dtype"] == "float32" and len(manifest["model_weights_sha256"]) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", small_fasta.name]  # no temporary left


def test_float16_on_disk_residual_and_no_conjoin(mlm_model, small_fasta, tmp_path):
    settings = StreamSettings(device="cpu", chunk_size=50, residual_store="disk")
    embed_per_base(mlm_model, [small_fasta], tmp_path / "h", dtype="float16", conjoin=False,
                   settings=settings, log=lambda m: None)
    expected = _one_pass(mlm_model, small_fasta, conjoin=False)
    got = read_per_base(tmp_path / "h", "c", mmap=False)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), expected["c"], rtol=2e-3, atol=2e-3)


def test_an_existing_directory_is_never_replaced(mlm_model, small_fasta, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists"):
        embed_per_base(mlm_model, [small_fasta], tmp_path / "out", settings=SMALL_CHUNKS)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_a_bad_record_late_in_the_file_leaves_nothing(mlm_model, tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">ok\n" + "ACGT" * 40 + "\n>bad\nACGU\n")
    with pytest.raises(InputDataError, match="line 4"):
        embed_per_base(mlm_model, [bad], tmp_path / "out", settings=SMALL_CHUNKS, log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa"]


def test_a_layer_the_model_does_not_have_is_refused_before_any_work(mlm_model, small_fasta, tmp_path):
    with pytest.raises(ValueError, match="--layer must be 1..2"):
        embed_per_base(mlm_model, [small_fasta], tmp_path / "out", layer=3, settings=SMALL_CHUNKS)
    assert not (tmp_path / "out").exists()
