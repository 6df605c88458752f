"""Scoring labelled sequences with a fine-tuned model: batching, prediction, ``genomamba evaluate``.

* :func:`pad_batch` -- right-padded ids and an attention mask for a list of token arrays;
* :func:`predict_scores` -- probabilities (or regression values) for every sequence, in input
  order; Ph models are conjoined (x and RC(x) averaged) because they run in eval mode;
* :func:`evaluate` -- a model directory on a labelled file: metrics, plots, ``metrics.json``.

Fine-tuning uses the same functions for its validation and test metrics, so ``genomamba
evaluate`` of the exported model on the test file reproduces the test metrics of the run.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from genomamba.alphabet import PAD_ID
from genomamba.errors import InputDataError
from genomamba.io.labels import LabelledData, read_labelled
from genomamba.io.targets import TaskSpec, encode_targets
from genomamba.train.scores import EVAL_BATCH_SIZE, compute_metrics, headline, write_json_atomic, write_plots

METRICS_JSON = "metrics.json"


def pad_batch(sequences: Sequence[np.ndarray], device=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(ids (b, L) long, mask (b, L) bool or None)``: right-padded with ``[PAD]`` to the longest;
    the mask is None when all sequences have the same length (the model skips masking then)."""
    lengths = [len(s) for s in sequences]
    width = max(lengths)
    ids = np.full((len(sequences), width), PAD_ID, dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
    ids_t = torch.from_numpy(ids).to(device)
    if min(lengths) == width:
        return ids_t, None
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return ids_t, mask.to(device)


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA (as pretraining), nothing on CPU (fp32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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


def predict_scores(
    model, sequences: Sequence[np.ndarray], task: str, *, batch_size: int = EVAL_BATCH_SIZE, device=None
) -> np.ndarray:
    """Scores (see :func:`scores_from_logits`) of every sequence, in order, in eval mode
    (``model.predict``: Ph models are conjoined over both strands; PS models are RC-invariant)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    parts = []
    for first in range(0, len(sequences), batch_size):
        ids, mask = pad_batch(sequences[first : first + batch_size], device)
        with autocast_for(device):
            logits = model.predict(ids, mask).logits
        parts.append(scores_from_logits(task, logits).cpu().numpy())
    return np.concatenate(parts).astype(np.float64)


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


def score_data(
    model, data: LabelledData, targets: np.ndarray, spec: TaskSpec, **kwargs
) -> tuple[dict, np.ndarray]:
    """``(metrics, scores)`` of ``model`` on ``data``; ``kwargs`` go to :func:`predict_scores`."""
    scores = predict_scores(model, data.sequences, spec.task, **kwargs)
    return compute_metrics(spec.task, spec.labels, targets, scores), scores


def write_report(
    out: Path,
    spec: TaskSpec,
    targets: np.ndarray,
    scores: np.ndarray,
    metrics: dict,
    report: dict,
    title: str,
) -> None:
    """``metrics.json`` (``report``) and the plots of one evaluated split, into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_plots(spec.task, spec.labels, targets, scores, metrics, out, title)
    write_json_atomic(out / METRICS_JSON, report)


def evaluate(
    model_dir: str | os.PathLike,
    data: str | list[str],
    *,
    out: str | os.PathLike | None = None,
    genome: str | None = None,
    split: str | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str = "auto",
    lenient: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Metrics of the model in ``model_dir`` on labelled ``data`` (the formats of
    :func:`genomamba.io.labels.read_labelled`), using the label map stored with the model.

    Args:
        split: keep only the rows whose ``split`` column says so (``train``/``val``/``test``).
        out: write ``metrics.json``, ``confusion_matrix.png`` and ``roc.png`` there (nothing is
            written when the data or the model is invalid).

    Returns:
        ``{"model", "data", "split", "task", "labels", "metrics"}`` (what ``metrics.json`` holds).

    Raises:
        InputDataError: invalid data, a label the model was never trained on, no row left after
            ``split``, a model directory that cannot be loaded or has no sequence head.
        UnavailableError: ``device='cuda'`` without a GPU.
    """
    from genomamba.checkpoint import from_pretrained, read_config
    from genomamba.train.pretrain import resolve_device

    log = log or (lambda message: print(message, file=sys.stderr))
    spec = spec_from_config(read_config(model_dir))
    table = read_labelled(data, genome=genome, lenient=lenient)
    if split is not None:
        table = table.subset([s == split for s in table.splits])
        if not len(table):
            raise InputDataError(f"{', '.join(table.files)}: no row has split {split!r}")
    targets = encode_targets(
        table, spec, known_from=f"the label map of the model {model_dir} (never trained on it)"
    )
    device_t = resolve_device(device)
    model = from_pretrained(model_dir, device=device_t)
    metrics, scores = score_data(model, table, targets, spec, batch_size=batch_size, device=device_t)
    report = {
        "model": str(model_dir),
        "data": table.files,
        "split": split,
        "task": spec.task,
        "labels": list(spec.labels) if spec.labels else None,
        "metrics": metrics,
    }
    log(f"evaluate: {headline(metrics)}")
    if out is not None:
        write_report(
            Path(out), spec, targets, scores, metrics, report, f"{Path(model_dir).name} on {split or 'data'}"
        )
    return report
