"""The Python API (genomamba.load) and the scikit-learn embedder, on tiny models on CPU."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import genomamba
from genomamba.errors import InputDataError
from genomamba.model import build_model
from genomamba.model_directory import save_pretrained

SEQS = ["ACGTACGTTAGC", "GGGCCATTA", "acgtnnACGT"]


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    torch.manual_seed(0)
    return save_pretrained(build_model("tiny"), tmp_path_factory.mktemp("api") / "mlm")


def test_importing_genomamba_does_not_import_torch():
    code = "import sys, genomamba; assert 'torch' not in sys.modules; assert callable(genomamba.load)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_embed_in_three_lines_matches_the_model(mlm_dir):
    model = genomamba.load(mlm_dir, device="cpu")
    X = model.embed(SEQS)
    assert X.shape == (3, model.config.d_model) and X.dtype == np.float32
    # the same as the model's own embed of each sequence alone (padding changes nothing)
    from genomamba.api import encode_sequences

    for row, ids in zip(X, encode_sequences(SEQS), strict=True):
        with torch.inference_mode():
            alone = model.model.embed(torch.as_tensor(ids[None].astype(np.int64)), pooling="mean")
        np.testing.assert_allclose(row, alone[0].numpy(), rtol=1e-5, atol=1e-6)
    per_base = model.embed(SEQS, pooling=None)
    assert [p.shape[0] for p in per_base] == [12, 9, 10]
    np.testing.assert_allclose(per_base[1].mean(0), X[1], rtol=1e-4, atol=1e-5)
    assert not torch.is_grad_enabled() or all(p.grad is None for p in model.model.parameters())


def test_bad_sequences_name_the_sequence_and_position(mlm_dir):
    model = genomamba.load(mlm_dir, device="cpu")
    with pytest.raises(InputDataError, match=r"sequence 1, position 3: invalid character 'X'"):
        model.embed(["ACGT", "ACXT"])
    with pytest.raises(InputDataError, match="sequence 0: empty sequence"):
        model.embed([""])
    assert model.embed(["ACXT"], lenient=True).shape[0] == 1


def test_log_likelihood_is_a_pseudo_log_likelihood(mlm_dir):
    model = genomamba.load(mlm_dir, device="cpu")
    ll = model.log_likelihood(["ACGTAC", "ACNNAC"])
    assert ll.shape == (2,) and np.all(ll < 0)
    # by hand: mask each A/C/G/T position in turn, sum log P(true base); the N positions are skipped
    assert ll[0] == pytest.approx(_pll_by_hand(model, "ACGTAC", [0, 1, 2, 3, 4, 5]), rel=1e-5)
    assert ll[1] == pytest.approx(_pll_by_hand(model, "ACNNAC", [0, 1, 4, 5]), rel=1e-5)


def _pll_by_hand(model, text: str, positions: list[int]) -> float:
    from genomamba.alphabet import MASK_ID
    from genomamba.api import encode_sequences

    ids = torch.as_tensor(encode_sequences([text])[0].astype(np.int64))
    total = 0.0
    for i in positions:
        masked = ids.clone()
        masked[i] = MASK_ID
        logits = model.model.predict(masked[None]).logits[0, i]
        total += torch.log_softmax(logits.float(), -1)[ids[i]].item()
    return total


def test_predict_needs_a_sequence_head_and_gives_the_cli_columns(mlm_dir, tmp_path):
    with pytest.raises(InputDataError, match="fine-tune"):
        genomamba.load(mlm_dir, device="cpu").predict(SEQS)
    torch.manual_seed(1)
    head = {"task": "sequence", "problem_type": "multiclass", "num_labels": 3, "labels": ["a", "b", "c"]}
    clf = save_pretrained(build_model("tiny", head=head), tmp_path / "clf")
    table = genomamba.load(clf, device="cpu").predict(SEQS)
    assert table.columns.tolist() == ["p_a", "p_b", "p_c", "predicted"]
    np.testing.assert_allclose(table[["p_a", "p_b", "p_c"]].sum(axis=1), 1.0, rtol=1e-5)


def test_sklearn_embedder_in_a_grouped_cross_validation(mlm_dir):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    from genomamba.sklearn import GenomambaEmbedder

    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 30)) for _ in range(24)]
    labels = np.array([i % 2 for i in range(24)])
    groups = np.repeat(np.arange(6), 4)
    embedder = GenomambaEmbedder(str(mlm_dir), device="cpu")
    pipe = make_pipeline(embedder, LogisticRegression(max_iter=500))
    scores = cross_val_score(pipe, seqs, labels, groups=groups, cv=GroupKFold(3))
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    fitted = clone(embedder).fit(seqs)
    direct = genomamba.load(mlm_dir, device="cpu").embed(seqs[:2])
    np.testing.assert_array_equal(fitted.transform(seqs[:2]), direct)
    assert len(fitted.get_feature_names_out()) == fitted.n_features_out_
    restored = pickle.loads(pickle.dumps(fitted))
    assert "_model" not in restored.__dict__
    np.testing.assert_array_equal(restored.transform(seqs[:2]), fitted.transform(seqs[:2]))


def test_embed_any_layer(mlm_dir, tmp_path):
    from click.testing import CliRunner

    from genomamba.cli import main

    model = genomamba.load(mlm_dir, device="cpu")
    n = model.config.n_layer
    np.testing.assert_array_equal(model.embed(SEQS, layer=n), model.embed(SEQS))
    first = model.embed(SEQS, layer=1)
    assert first.shape == (3, model.config.d_model) and not np.allclose(first, model.embed(SEQS))
    # padding changes nothing at an intermediate layer either
    np.testing.assert_allclose(first[1], model.embed(SEQS[1:2], layer=1)[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=f"layer must be 1..{n}"):
        model.embed(SEQS, layer=n + 1)
    fasta = tmp_path / "s.fa"
    fasta.write_text(">a\nACGTACGTTAGC\n>b\nGGGCCATTA\n")
    out = tmp_path / "e.tsv"
    result = CliRunner().invoke(main, ["embed", str(mlm_dir), str(fasta), "-o", str(out), "--layer", "1"])
    assert result.exit_code == 0, result.output
    import pandas as pd

    table = pd.read_csv(out, sep="\t")
    np.testing.assert_allclose(table.filter(regex="^emb_").to_numpy(), first[:2], rtol=1e-4, atol=1e-5)
    bad = CliRunner().invoke(main, ["embed", str(mlm_dir), str(fasta), "-o", str(out), "--layer", str(n + 1)])
    assert bad.exit_code == 2 and f"--layer must be 1..{n}" in bad.output
