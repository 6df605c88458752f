"""Metrics of a fine-tuned model's predictions, their plots, and atomic output files (no torch).

:func:`compute_metrics` takes targets in the form of :func:`genomamba.tasks.targets.encode_targets`
and scores from the model (binary: P(positive) (n,); multiclass: class probabilities (n, k);
multilabel: per-label probabilities (n, k); regression: predictions (n,)) and returns a JSON-ready
dict. Metrics come from scikit-learn. Predicted classes: binary and multilabel at probability
0.5, multiclass the most probable class.

Keys (classification): ``n``, ``loss`` (cross-entropy, nats), ``accuracy`` (multilabel: every
label right; ``label_accuracy`` is per label), ``mcc`` (Matthews; macro mean over labels for
multilabel), ``f1`` (positive class for binary, macro otherwise), ``precision``, ``recall``
(same averaging), ``auroc``, ``auprc`` (average precision; one-vs-rest macro means over the
classes that have both positives and negatives; None where undefined), ``per_class``
({label: {n, predicted, correct, precision, recall, f1}}; multilabel: positives per label) and
``confusion_matrix`` (rows true, columns predicted, label order; binary and multiclass).
Regression: ``n``, ``loss`` (MSE), ``mse``, ``rmse``, ``mae``, ``r2``, ``pearson``, ``spearman``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from genomamba.io.atomic import replacing

#: sequences per forward pass when scoring (fine-tuning's evaluations and `genomamba evaluate`)
EVAL_BATCH_SIZE = 64
#: metrics where lower is better (early stopping minimises them)
LOWER_IS_BETTER = frozenset({"loss", "mse", "rmse", "mae"})
_EPS = 1e-7


def _float(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def compute_metrics(
    task: str, labels: tuple[str, ...] | None, y_true: np.ndarray, scores: np.ndarray
) -> dict:
    """See the module docstring. ``labels`` is the label map (None for regression)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on undefined precision/MCC; they are 0 here
        if task == "regression":
            return _regression(np.asarray(y_true, dtype=np.float64), np.asarray(scores, dtype=np.float64))
        if task == "multilabel":
            return _multilabel(labels, np.asarray(y_true) > 0.5, np.asarray(scores, dtype=np.float64))
        return _single_label(
            task, labels, np.asarray(y_true).astype(np.int64), np.asarray(scores, np.float64)
        )


def _ranking(y_true: np.ndarray, score: np.ndarray) -> tuple[float | None, float | None]:
    """AUROC and average precision of one binary problem; None when only one class is present."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if y_true.min() == y_true.max():
        return None, None
    return _float(roc_auc_score(y_true, score)), _float(average_precision_score(y_true, score))


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _single_label(task: str, labels, y_true: np.ndarray, scores: np.ndarray) -> dict:
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        matthews_corrcoef,
        precision_recall_fscore_support,
    )

    k = len(labels)
    if task == "binary":
        p = np.clip(scores, _EPS, 1 - _EPS)
        y_pred = (scores >= 0.5).astype(np.int64)
        loss = -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
        auroc, auprc = _ranking(y_true, scores)
        average = "binary"
    else:
        y_pred = scores.argmax(1)
        loss = -np.mean(np.log(np.clip(scores[np.arange(len(y_true)), y_true], _EPS, 1.0)))
        pairs = [_ranking((y_true == c).astype(np.int64), scores[:, c]) for c in range(k)]
        auroc, auprc = _mean([a for a, _ in pairs]), _mean([b for _, b in pairs])
        average = "macro"
    classes = list(range(k))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=classes if average == "macro" else None, average=average, zero_division=0
    )
    per_p, per_r, per_f, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average=None, zero_division=0
    )
    matrix = confusion_matrix(y_true, y_pred, labels=classes)
    return {
        "n": int(len(y_true)),
        "loss": _float(loss),
        "accuracy": _float(accuracy_score(y_true, y_pred)),
        "mcc": _float(matthews_corrcoef(y_true, y_pred)),
        "f1": _float(f1),
        "precision": _float(precision),
        "recall": _float(recall),
        "auroc": auroc,
        "auprc": auprc,
        "per_class": {
            label: {
                "n": int(support[c]),
                "predicted": int(matrix[:, c].sum()),
                "correct": int(matrix[c, c]),
                "precision": _float(per_p[c]),
                "recall": _float(per_r[c]),
                "f1": _float(per_f[c]),
            }
            for c, label in enumerate(labels)
        },
        "confusion_matrix": matrix.tolist(),
    }


def _multilabel(labels, y_true: np.ndarray, scores: np.ndarray) -> dict:
    from sklearn.metrics import matthews_corrcoef, precision_recall_fscore_support

    y_pred = scores >= 0.5
    p = np.clip(scores, _EPS, 1 - _EPS)
    loss = -np.mean(y_true * np.log(p) + (~y_true) * np.log(1 - p))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    per_p, per_r, per_f, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    pairs = [_ranking(y_true[:, c].astype(np.int64), scores[:, c]) for c in range(len(labels))]
    mcc = [_float(matthews_corrcoef(y_true[:, c], y_pred[:, c])) for c in range(len(labels))]
    return {
        "n": int(len(y_true)),
        "loss": _float(loss),
        "accuracy": _float(np.mean((y_true == y_pred).all(1))),
        "label_accuracy": _float(np.mean(y_true == y_pred)),
        "mcc": _mean(mcc),
        "f1": _float(f1),
        "precision": _float(precision),
        "recall": _float(recall),
        "auroc": _mean([a for a, _ in pairs]),
        "auprc": _mean([b for _, b in pairs]),
        "per_class": {
            label: {
                "n": int(support[c]),
                "predicted": int(y_pred[:, c].sum()),
                "correct": int((y_pred[:, c] & y_true[:, c]).sum()),
                "precision": _float(per_p[c]),
                "recall": _float(per_r[c]),
                "f1": _float(per_f[c]),
                "mcc": mcc[c],
                "auroc": pairs[c][0],
            }
            for c, label in enumerate(labels)
        },
    }


def _regression(y_true: np.ndarray, pred: np.ndarray) -> dict:
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    mse = mean_squared_error(y_true, pred)
    constant = len(y_true) < 2 or y_true.std() == 0 or pred.std() == 0
    return {
        "n": int(len(y_true)),
        "loss": _float(mse),
        "mse": _float(mse),
        "rmse": _float(math.sqrt(mse)),
        "mae": _float(mean_absolute_error(y_true, pred)),
        "r2": _float(r2_score(y_true, pred)) if len(y_true) > 1 else None,
        "pearson": None if constant else _float(pearsonr(y_true, pred)[0]),
        "spearman": None if constant else _float(spearmanr(y_true, pred)[0]),
    }


def headline(metrics: dict) -> str:
    """One line for a log: the scalar metrics that are defined."""
    keys = ("n", "accuracy", "mcc", "f1", "auroc", "auprc", "r2", "pearson", "mse", "loss")
    return ", ".join(
        f"{k} {metrics[k]:.4g}" if isinstance(metrics[k], float) else f"{k} {metrics[k]}"
        for k in keys
        if metrics.get(k) is not None
    )


# -- files ----------------------------------------------------------------------------------------
def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary sibling, then rename it onto ``path``."""
    path = Path(path)
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def write_json_atomic(path: str | os.PathLike, data) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, records: list[dict]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def _save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: list[list[int]], labels, path: str | os.PathLike, title: str = "") -> Path:
    """The confusion matrix (rows true, columns predicted) as a PNG, counts written in the cells."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    size = 2.5 + 0.5 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels=labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    fig.tight_layout()
    return _save_figure(fig, Path(path))


def plot_roc(task: str, labels, y_true: np.ndarray, scores: np.ndarray, path, title: str = "") -> Path | None:
    """ROC curves as a PNG: the positive class (binary) or one curve per label (multilabel).
    None (nothing written) when no curve is defined (a single class in ``y_true``)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    if task == "binary":
        curves = [(labels[1], np.asarray(y_true), np.asarray(scores))]
    elif task == "multilabel":
        curves = [
            (label, np.asarray(y_true)[:, c], np.asarray(scores)[:, c]) for c, label in enumerate(labels)
        ]
    else:
        return None
    curves = [(name, y, s) for name, y, s in curves if y.min() != y.max()]
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, y, s in curves:
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, lw=1.2, label=f"{name} (AUROC {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return _save_figure(fig, Path(path))


def write_plots(task, labels, y_true, scores, metrics: dict, out: Path, title: str) -> list[Path]:
    """``confusion_matrix.png`` (binary, multiclass) and ``roc.png`` (binary, multilabel) in ``out``."""
    written = []
    if "confusion_matrix" in metrics:
        written.append(
            plot_confusion(metrics["confusion_matrix"], labels, out / "confusion_matrix.png", title)
        )
    roc = plot_roc(task, labels, y_true, scores, out / "roc.png", title)
    if roc is not None:
        written.append(roc)
    return written
