"""Scoring labelled sequences with a fine-tuned model: prediction, metrics, ``genomamba evaluate``.

* :func:`predict_scores` -- probabilities (or regression values) for every sequence, in input
  order; Ph models are conjoined (x and RC(x) averaged) because they run in eval mode;
* :func:`evaluate` -- a model directory on a labelled file: metrics, plots, ``metrics.json``.

Fine-tuning uses the same functions for its validation and test metrics, so ``genomamba
evaluate`` of the exported model on the test file reproduces the test metrics of the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from genomamba.errors import InputDataError
from genomamba.io.labels import LabelledData, read_labelled
from genomamba.runtime.batching import pad_batch
from genomamba.runtime.distributed import Distributed
from genomamba.runtime.log import stderr_log
from genomamba.runtime.precision import autocast_for
from genomamba.runtime.sequence_head import scores_from_logits, spec_from_config
from genomamba.tasks.targets import TaskSpec, encode_targets
from genomamba.train.data_parallel import rank_rows
from genomamba.train.scores import EVAL_BATCH_SIZE, compute_metrics, headline, write_json_atomic, write_plots

METRICS_JSON = "metrics.json"


def predict_scores(
    model, sequences: Sequence[np.ndarray], task: str, *, batch_size: int = EVAL_BATCH_SIZE, device=None
) -> np.ndarray:
    """Scores (:func:`~genomamba.runtime.sequence_head.scores_from_logits`) of every sequence, in
    order, in eval mode (``model.predict``: Ph models are conjoined over both strands; PS models are
    RC-invariant)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    parts = []
    for first in range(0, len(sequences), batch_size):
        ids, mask = pad_batch(sequences[first : first + batch_size], device)
        with autocast_for(device):
            logits = model.predict(ids, mask).logits
        parts.append(scores_from_logits(task, logits).cpu().numpy())
    return np.concatenate(parts).astype(np.float64)


def score_data(
    model, data: LabelledData, targets: np.ndarray, spec: TaskSpec, *, world: Distributed | None = None,
    **kwargs,
) -> tuple[dict, np.ndarray]:
    """``(metrics, scores)`` of ``model`` on ``data``; ``kwargs`` go to :func:`predict_scores`.

    With ``world`` of several processes every rank must call this: each scores its contiguous
    share of the rows (:func:`~genomamba.train.data_parallel.rank_rows`), the shares are gathered
    in row order, and every rank computes the same metrics from all the scores (so that all take
    the same early-stopping decision).
    """
    if world is None or not world.active:
        scores = predict_scores(model, data.sequences, spec.task, **kwargs)
    else:
        rows = rank_rows(len(data), world.rank, world.world_size)
        mine = None  # a rank without rows (fewer rows than ranks) gathers nothing
        if rows.stop > rows.start:
            mine = predict_scores(model, data.sequences[rows], spec.task, **kwargs)
        scores = np.concatenate([s for s in world.gather_objects(mine) if s is not None])
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
    from genomamba.model_directory import from_pretrained, read_config
    from genomamba.runtime.device import resolve_device

    log = log or stderr_log
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
