"""What a sequence head's outputs mean: the task and label map stored with a model, and scores from logits.

* :func:`spec_from_config` -- the :class:`~genomamba.tasks.targets.TaskSpec` a fine-tuned model's
  ``config.json`` describes; :func:`head_labels` -- its inverse, what ``head.labels`` stores;
* :func:`scores_from_logits` -- probabilities (or regression values) from a batch of logits.

Fine-tuning writes the head, evaluation and prediction read it back: one definition keeps the
label order of a model the same everywhere.
"""

from __future__ import annotations

import torch

from genomamba.errors import InputDataError
from genomamba.tasks.targets import TaskSpec


def scores_from_logits(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Binary: P(positive) (b,); multiclass: softmax (b, k); multilabel: sigmoid (b, k);
    regression: the value (b,)."""
    logits = logits.float()
    if task == "binary":
        return torch.sigmoid(logits[:, 0])
    if task == "multiclass":
        return torch.softmax(logits, -1)
    if task == "multilabel":
        return torch.sigmoid(logits)
    return logits[:, 0]


def spec_from_config(config_json: dict) -> TaskSpec:
    """The task and label map stored with a fine-tuned model (its ``config.json`` as a dict).

    The head's ``labels`` name its outputs: every class for multiclass and multilabel, the
    positive class for binary (one output). The full binary label map (negative, positive) is
    ``provenance.finetune.label_map``; a binary model without it gets ``("0", "1")``, or
    ``("not P", "P")`` when only the positive class P is named.

    Raises:
        InputDataError: the model has no sequence-level head (e.g. a pretrained MLM model).
    """
    head = config_json["architecture"]["head"]
    if head["task"] != "sequence":
        raise InputDataError(
            f"the model has a {head['task']!r} head, not a sequence classifier/regressor; fine-tune it "
            "first (genomamba finetune --model MODEL_DIR ...)"
        )
    problem, names = head["problem_type"], head.get("labels")
    if problem == "regression":
        return TaskSpec("regression", None)
    if problem == "binary":
        stored = config_json.get("provenance", {}).get("finetune", {}).get("label_map")
        if stored and len(stored) == 2 and (not names or names[0] == stored[1]):
            return TaskSpec("binary", tuple(stored))
        return TaskSpec("binary", (f"not {names[0]}", names[0]) if names else ("0", "1"))
    return TaskSpec(problem, tuple(names or (str(i) for i in range(head["num_labels"]))))


def head_labels(spec: TaskSpec) -> list[str] | None:
    """What ``head.labels`` stores for ``spec``: the names of the outputs (binary: the positive class)."""
    if spec.labels is None:
        return None
    return [spec.labels[1]] if spec.task == "binary" else list(spec.labels)
