"""Evaluation (genomamba.train.evaluate, genomamba.train.scores): metrics, predictions in any batch, and
`evaluate` reproducing the test metrics of a fine-tuning run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from finetune_cases import quiet, trained_demo_run

from genomamba import alphabet as ab
from genomamba.errors import InputDataError
from genomamba.model import build_model
from genomamba.train.evaluate import evaluate, predict_scores
from genomamba.train.scores import compute_metrics


def test_binary_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2])
    m = compute_metrics("binary", ("neg", "pos"), y, p)
    # predictions 0 1 1 0 1 0: TP 2, TN 2, FP 1, FN 1
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    assert m["mcc"] == pytest.approx((2 * 2 - 1 * 1) / np.sqrt(3 * 3 * 3 * 3))
    assert m["f1"] == pytest.approx(2 / 3) and m["precision"] == pytest.approx(2 / 3)
    # AUROC: of the 9 (pos, neg) pairs, only (0.4 vs 0.6) is mis-ordered
    assert m["auroc"] == pytest.approx(8 / 9)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["per_class"]["pos"] == {
        "n": 3, "predicted": 3, "correct": 2, "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3),
    }  # fmt: skip
    expected_loss = -np.mean(np.where(y == 1, np.log(p), np.log(1 - p)))
    assert m["loss"] == pytest.approx(expected_loss)
    one_class = compute_metrics("binary", ("neg", "pos"), np.ones(3), np.array([0.2, 0.7, 0.9]))
    assert one_class["auroc"] is None and one_class["auprc"] is None and one_class["accuracy"] == 2 / 3


def test_multiclass_multilabel_and_regression_metrics():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    m = compute_metrics("multiclass", ("a", "b", "c"), y, probs)
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert m["f1"] == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))  # macro
    assert {k: v["n"] for k, v in m["per_class"].items()} == {"a": 1, "b": 1, "c": 2}
    assert m["auroc"] == pytest.approx(1.0)  # every class outranks the others by its own score

    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], dtype=np.float32)
    s = np.array([[0.9, 0.2], [0.8, 0.3], [0.1, 0.1], [0.6, 0.7]])
    m = compute_metrics("multilabel", ("x", "y"), y, s)
    assert m["accuracy"] == 0.5 and m["label_accuracy"] == 0.75  # rows 1 and 3 have one wrong label
    assert m["per_class"]["y"]["n"] == 2 and m["per_class"]["y"]["predicted"] == 1
    assert "confusion_matrix" not in m

    truth = np.array([1.0, 2.0, 3.0, 4.0])
    m = compute_metrics("regression", None, truth, truth * 2)
    assert m["mse"] == pytest.approx(7.5) and m["pearson"] == pytest.approx(1.0)
    assert m["spearman"] == pytest.approx(1.0) and m["r2"] == pytest.approx(1 - 30 / 5)


def test_predictions_do_not_depend_on_batching():
    seqs = [np.array([5, 6, 7], np.uint8), np.array([8], np.uint8), np.array([5, 5, 6, 9, 7], np.uint8)]
    torch.manual_seed(0)
    model = build_model("tiny", head={"task": "sequence", "problem_type": "multiclass", "num_labels": 3})
    together = predict_scores(model, seqs, "multiclass", batch_size=3)
    alone = predict_scores(model, seqs, "multiclass", batch_size=1)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together.sum(1), 1.0, atol=1e-6)


def test_ph_models_are_conjoined_and_ps_models_invariant():
    rng = np.random.default_rng(1)
    seqs = [rng.integers(5, 9, size=n).astype(np.uint8) for n in (30, 17)]
    both = seqs + [ab.reverse_complement(s) for s in seqs]
    for rc in ("ph", "ps"):
        torch.manual_seed(0)
        model = build_model("tiny", rc_strategy=rc, head={"task": "sequence", "problem_type": "binary"})
        scores = predict_scores(model, both, "binary", batch_size=4)
        np.testing.assert_allclose(scores[:2], scores[2:], atol=1e-5)


@pytest.mark.slow  # fine-tunes on the demo task first (trained_demo_run, ~18 s on 2 cores)
def test_evaluate_reproduces_the_finetune_test_metrics(tmp_path_factory, tmp_path):
    csv, run = trained_demo_run(tmp_path_factory)
    report = evaluate(run.model_dir, str(csv), split="test", out=tmp_path / "eval", device="cpu", log=quiet)
    assert report["labels"] == ["intergenic", "coding"] and report["task"] == "binary"
    ours, theirs = report["metrics"], run.report["test"]
    assert ours["per_class"] == theirs["per_class"] and ours["confusion_matrix"] == theirs["confusion_matrix"]
    for key in ("accuracy", "mcc", "f1", "auroc", "auprc", "loss"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]["n"] == 576
    for png in ("confusion_matrix.png", "roc.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # fine-tunes on the demo task first (trained_demo_run, ~18 s on 2 cores)
def test_evaluate_rejects_a_label_the_model_never_saw(tmp_path_factory, tmp_path):
    _, run = trained_demo_run(tmp_path_factory)
    data = tmp_path / "held_out.csv"
    data.write_text("sequence,label\nACGTACGT,coding\nACGTTTTT,promoter\n")
    with pytest.raises(InputDataError) as info:
        evaluate(run.model_dir, str(data), out=tmp_path / "eval", log=quiet)
    message = str(info.value)
    assert message.startswith(f"{data}: line 3: label 'promoter' is not in the label map of the model")
    assert "(known labels: intergenic, coding)" in message
    assert not (tmp_path / "eval").exists()
    with pytest.raises(InputDataError, match="no row has split 'val'"):
        evaluate(run.model_dir, str(data), split="val", log=quiet)
