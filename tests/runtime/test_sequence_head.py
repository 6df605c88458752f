"""genomamba.runtime.sequence_head: the label map stored with a model, and scores from logits."""

from __future__ import annotations

import pytest
import torch

from genomamba.errors import InputDataError
from genomamba.model import build_model
from genomamba.model_directory import read_config, save_pretrained
from genomamba.runtime.sequence_head import head_labels, scores_from_logits, spec_from_config
from genomamba.tasks.targets import TaskSpec


def test_label_map_of_a_model(tmp_path):
    head = {"task": "sequence", "problem_type": "binary", "num_labels": 1, "labels": ["pos"]}
    config = {"architecture": {"head": head}, "provenance": {"finetune": {"label_map": ["neg", "pos"]}}}
    assert spec_from_config(config) == TaskSpec("binary", ("neg", "pos"))
    assert spec_from_config({"architecture": {"head": head}}) == TaskSpec("binary", ("not pos", "pos"))
    multi = {"task": "sequence", "problem_type": "multilabel", "num_labels": 2, "labels": None}
    assert spec_from_config({"architecture": {"head": multi}}) == TaskSpec("multilabel", ("0", "1"))
    mlm = save_pretrained(build_model("tiny"), tmp_path / "mlm")
    with pytest.raises(InputDataError, match="has a 'mlm' head, not a sequence classifier"):
        spec_from_config(read_config(mlm))


SPECS = [
    TaskSpec("binary", ("neg", "pos")),
    TaskSpec("multiclass", ("a", "b", "c")),
    TaskSpec("regression", None),
]


@pytest.mark.parametrize("spec", SPECS)
def test_head_labels_read_back_as_the_same_spec(spec):
    labels = head_labels(spec)
    head = {"task": "sequence", "problem_type": spec.task, "num_labels": len(labels or [0]), "labels": labels}
    provenance = {"finetune": {"label_map": list(spec.labels)}} if spec.task == "binary" else {}
    assert spec_from_config({"architecture": {"head": head}, "provenance": provenance}) == spec


def test_scores_of_each_task():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    torch.testing.assert_close(scores_from_logits("binary", logits), torch.sigmoid(logits[:, 0]))
    torch.testing.assert_close(scores_from_logits("multiclass", logits).sum(-1), torch.ones(2))
    torch.testing.assert_close(scores_from_logits("multilabel", logits), torch.sigmoid(logits))
    torch.testing.assert_close(scores_from_logits("regression", logits), logits[:, 0])
