"""Tasks and targets of labelled data: which problem the labels pose, and their numeric form.

numpy only. Rules of :func:`infer_task` (every one overridable by naming the task): labels
holding ``;`` anywhere -> multilabel; all labels numbers and at least one not an integer ->
regression; else two distinct labels -> binary, more -> multiclass. Classes are sorted
(numerically when all are integers); for binary the second is the positive class unless
``positive`` names it. The class list is the label map stored with a fine-tuned model
(``head.labels`` of its config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from genomamba.errors import InputDataError
from genomamba.io.labels import LabelledData

TASKS = ("binary", "multiclass", "multilabel", "regression")
MULTILABEL_SEPARATOR = ";"


@dataclass(frozen=True)
class TaskSpec:
    """What is predicted. ``labels``: class names, index = class id (binary: negative, positive);
    None for regression."""

    task: str
    labels: tuple[str, ...] | None

    @property
    def num_outputs(self) -> int:
        return 1 if self.task in ("binary", "regression") else len(self.labels)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _class_order(labels: set[str]) -> list[str]:
    if all(_number(v) is not None and float(v).is_integer() for v in labels):
        return sorted(labels, key=lambda v: (float(v), v))
    return sorted(labels)


#: labels that spreadsheets, R and pandas write for a missing or non-finite value; read as a class
#: they silently turned a regression into a many-class task, or a binary task into a three-class
#: one. ("none" and "null" are left alone: they are real class names too, e.g. no site.)
MISSING_LABELS = frozenset(
    {"nan", "na", "n/a", "inf", "+inf", "-inf", "infinity", "-infinity"}
)


def _reject_missing(data: LabelledData) -> None:
    for index, label in enumerate(data.labels):
        if label.strip().lower() in MISSING_LABELS:
            raise InputDataError(
                f"{data.sources[index]}: label {label!r} reads as a missing or non-finite value; remove "
                "the row, or give the class a name"
            )


def infer_task(data: LabelledData, task: str | None = None, positive: str | None = None) -> TaskSpec:
    """The task and label map of training data (see the module docstring for the rules).

    Raises:
        InputDataError: fewer than two classes, more than two for ``task='binary'``, ``positive``
            not a label, a regression label that is not a number, a label such as ``nan`` or
            ``NA`` that reads as a missing value (file and line).
    """
    name = data.files[0] if data.files else "training data"
    labels = data.labels
    _reject_missing(data)
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if task is None:
        numbers = [_number(v) for v in labels]
        if any(MULTILABEL_SEPARATOR in v for v in labels):
            task = "multilabel"
        elif all(x is not None for x in numbers) and any(not x.is_integer() for x in numbers):
            task = "regression"
    if task == "regression":
        encode_targets(data, TaskSpec("regression", None), known_from="")  # raises on a bad value
        return TaskSpec("regression", None)
    if task == "multilabel":
        classes = {p.strip() for v in labels for p in v.split(MULTILABEL_SEPARATOR) if p.strip()}
        if not classes:
            raise InputDataError(f"{name}: no labels in the training data")
        return TaskSpec("multilabel", tuple(_class_order(classes)))
    classes = set(labels)
    if "" in classes:
        raise InputDataError(f"{data.sources[labels.index('')]}: empty label")
    order = _class_order(classes)
    if len(order) < 2:
        raise InputDataError(
            f"{name}: the training data has a single label {order[0]!r}; a classifier needs at least two"
        )
    task = task or ("binary" if len(order) == 2 else "multiclass")
    if task == "binary" and len(order) != 2:
        raise InputDataError(
            f"{name}: a binary task needs exactly two labels, the training data has {len(order)}"
        )
    if positive is not None:
        if positive not in order:
            raise InputDataError(
                f"{name}: --positive {positive!r} is not a label of the training data ({', '.join(order)})"
            )
        if task != "binary":
            raise ValueError("--positive applies to binary tasks only")
        order = [v for v in order if v != positive] + [positive]
    return TaskSpec(task, tuple(order))


def encode_targets(
    data: LabelledData, spec: TaskSpec, *, known_from: str = "the training data"
) -> np.ndarray:
    """Targets for the model's loss: binary (n,) float32 0/1; multiclass (n,) int64 class ids;
    multilabel (n, k) float32 0/1; regression (n,) float32.

    Raises:
        InputDataError: a label not in ``spec.labels`` (naming its file and line and
            ``known_from``), an empty label, a regression label that is not a finite number.
    """
    n = len(data)
    if spec.task == "regression":
        out = np.empty(n, dtype=np.float32)
        for i, text in enumerate(data.labels):
            value = _number(text)
            if value is None:
                raise InputDataError(f"{data.sources[i]}: regression label {text!r} is not a finite number")
            out[i] = value
        return out
    index = {label: i for i, label in enumerate(spec.labels)}

    def lookup(label: str, i: int) -> int:
        if label not in index:
            what = "empty label" if not label else f"label {label!r} is not in {known_from}"
            raise InputDataError(f"{data.sources[i]}: {what} (known labels: {', '.join(spec.labels)})")
        return index[label]

    if spec.task == "multilabel":
        out = np.zeros((n, len(spec.labels)), dtype=np.float32)
        for i, text in enumerate(data.labels):
            for part in text.split(MULTILABEL_SEPARATOR):
                if part.strip():
                    out[i, lookup(part.strip(), i)] = 1.0
        return out
    ids = np.array([lookup(label, i) for i, label in enumerate(data.labels)], dtype=np.int64)
    return ids.astype(np.float32) if spec.task == "binary" else ids
