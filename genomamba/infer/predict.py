"""``genomamba predict``: a fine-tuned model's predictions for every FASTA record (or window).

Columns after the window ones (file, record, start, end, n_bases), by the task stored with the model:

* binary: ``p_<positive label>`` and ``predicted`` (the label with P >= 0.5);
* multiclass: ``p_<label>`` for every class and ``predicted`` (the most probable);
* multilabel: ``p_<label>`` for every label (independent probabilities);
* regression: ``value`` (``value_<i>`` for several outputs).

Each window is read alone or, with ``context="record"``, through the head from the hidden states
of its whole record (:mod:`genomamba.infer.record_context`). Predictions are made as ``genomamba
evaluate`` makes them (eval mode; PH models conjoined over both strands, PS models
reverse-complement invariant), so a labelled FASTA scored here and by evaluate gives the same
probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from genomamba.infer.runner import model_table
from genomamba.infer.tables import TRACK_FORMATS, table_format
from genomamba.runtime.log import stderr_log
from genomamba.tasks.targets import TaskSpec


def predict_fasta(
    model_dir: str | os.PathLike,
    fasta: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    track: str | None = None,
    track_out: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
    **options,
) -> dict:
    """Predict every record (or window) of the ``fasta`` files with the fine-tuned ``model_dir``.

    ``options``: windowing, batch size, device, lenient reading, ``context`` (``window`` or
    ``record``: :mod:`genomamba.infer.record_context`) and its ``stream`` settings
    (:func:`~genomamba.infer.runner.model_table`).
    ``track``: the column a track output (bedGraph ``.bedgraph``/``.bdg``, bigWig ``.bw``/``.bigwig``)
    holds; by default the one score of a binary (``p_<positive label>``) or single-output
    regression (``value``) model. ``track_out``: also write that column as a track to this path,
    in the same pass.

    Returns:
        ``{"out", "rows", "task", "labels"}``.

    Raises:
        InputDataError: an invalid FASTA file, no sequence at all, or a model without a sequence
            head (nothing is written). ModelDirectoryError: ``model_dir`` cannot be loaded.
        UnavailableError: ``cuda`` without a GPU. ValueError: an unknown output suffix, a bad
            window or stride; for a track, overlapping windows or a missing or unknown ``track``.
    """
    from genomamba.model_directory import read_config
    from genomamba.runtime.sequence_head import scores_from_logits, spec_from_config

    log = log or stderr_log
    spec = spec_from_config(read_config(model_dir))  # a model without a sequence head fails here
    if table_format(out) in TRACK_FORMATS or track_out is not None:
        track = track_column(spec, track)

    def in_record(model, ids, spans, **stream):  # --context record: the windows of one whole record
        from genomamba.model.streaming_windows import streamed_window_logits

        return scores_from_logits(spec.task, streamed_window_logits(model, ids, spans, **stream)[0])

    rows, _ = model_table(
        model_dir, fasta, out,
        lambda model, ids, mask: scores_from_logits(spec.task, model.predict(ids, mask).logits),
        lambda values: prediction_columns(spec, values),
        provenance={"command": "predict", "task": spec.task},
        record_compute=in_record, log=log,
        track=track,
        track_out=track_out,
        **options,
    )
    log(f"predict: {rows} {spec.task} predictions written to {out}"
        + (f" and the {track} track to {track_out}" if track_out is not None else ""))
    return {"out": str(out), "rows": rows, "task": spec.task,
            "labels": list(spec.labels) if spec.labels else None}


def track_column(spec: TaskSpec, requested: str | None) -> str:
    """The score column a track (bedGraph, bigWig) holds: ``requested``, or the task's only score.

    Raises:
        ValueError: no default for this task (several scores), or an unknown column; the message
            lists the choices.
    """
    numeric = [c for c in prediction_columns(spec, np.zeros((1, spec.num_outputs), dtype=np.float32))
               if c != "predicted"]
    if requested is None and len(numeric) == 1:
        return numeric[0]
    if requested in numeric:
        return requested
    wanted = "choose one with --track" if requested is None else f"--track {requested!r} is not one"
    raise ValueError(f"a track holds one score per window; {wanted} of: {', '.join(numeric)}")


def prediction_columns(spec: TaskSpec, scores: np.ndarray) -> pd.DataFrame:
    """The task's columns (module docstring) from (n, k) scores as :func:`scores_from_logits` gives."""
    if spec.task == "regression":
        names = ["value"] if scores.shape[1] == 1 else [f"value_{i}" for i in range(scores.shape[1])]
        return pd.DataFrame(scores, columns=names)
    if spec.task == "binary":
        negative, positive = spec.labels
        frame = pd.DataFrame({f"p_{positive}": scores[:, 0]})
        frame["predicted"] = np.where(scores[:, 0] >= 0.5, positive, negative)
        return frame
    frame = pd.DataFrame(scores, columns=[f"p_{label}" for label in spec.labels])
    if spec.task == "multiclass":
        frame["predicted"] = np.asarray(spec.labels, dtype=object)[scores.argmax(axis=1)]
    return frame
