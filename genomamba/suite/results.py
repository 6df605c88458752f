"""A benchmark's results: one CSV row per (task, method, seed), and the summary made from them.

``results.csv`` is the record: every finished run appends its row (under a lock, rewritten
atomically, so several benchmark processes can share one OUT and a killed run loses nothing but
the run in flight). ``results.md`` and ``results.png`` are made from it: the mean and standard
deviation over seeds of one metric per task and method, the published best beside them.

numpy/pandas only; no torch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from genomamba.io.atomic import replacing
from genomamba.io.locks import output_lock

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
RESULTS_PNG = "results.png"
METRICS = ("accuracy", "mcc", "f1", "auroc")
COLUMNS = ("task", "method", "seed", *METRICS, "n_train", "n_test", "seconds")


def _locked(out: Path):
    """The lock of ``results.csv``, waited for: benchmark processes share one OUT on purpose. Held,
    it also removes the temporaries of ``results.csv`` that killed processes left."""
    out.mkdir(parents=True, exist_ok=True)
    return output_lock(out / RESULTS_CSV, wait=True)


def read_results(out: Path) -> pd.DataFrame:
    """The rows written so far (an empty table with :data:`COLUMNS` when there are none)."""
    path = Path(out) / RESULTS_CSV
    if not path.is_file():
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.read_csv(path, dtype={"task": str, "method": str})


def completed(out: Path) -> set[tuple[str, str, int]]:
    """``(task, method, seed)`` of every row already in ``results.csv`` (a rerun skips them)."""
    table = read_results(out)
    return {(t, m, int(s)) for t, m, s in zip(table["task"], table["method"], table["seed"], strict=True)}


def append_row(out: Path, row: dict) -> None:
    """Add one run's row to ``results.csv`` (replacing an earlier row of the same run)."""
    out = Path(out)
    with _locked(out):
        table = read_results(out)
        key = ["task", "method", "seed"]
        same = (table[key] == pd.Series({k: row[k] for k in key})).all(axis=1)
        new = pd.DataFrame([{c: row.get(c) for c in COLUMNS}])
        table = new if table.empty else pd.concat([table[~same], new], ignore_index=True)
        with replacing(out / RESULTS_CSV) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")


def row_of(
    task: str, method: str, seed: int, metrics: dict, n_train: int, n_test: int, seconds: float
) -> dict:
    """A ``results.csv`` row from a run's test metrics (None where a metric is undefined)."""
    return {
        "task": task, "method": method, "seed": seed, **{m: metrics.get(m) for m in METRICS},
        "n_train": n_train, "n_test": n_test, "seconds": round(seconds, 2),
    }


def summarise(table: pd.DataFrame, metric: str = "mcc") -> pd.DataFrame:
    """Per task and method: ``mean``, ``std`` (sample, 0 for one seed), ``spread`` (max - min),
    ``n`` (seeds) of ``metric`` x 100, and the mean ``seconds`` of a run."""
    if table.empty:
        return pd.DataFrame(columns=["task", "method", "mean", "std", "spread", "n", "seconds"])
    values = table.assign(value=pd.to_numeric(table[metric], errors="coerce") * 100)
    grouped = values.groupby(["task", "method"], sort=False)
    summary = grouped["value"].agg(
        mean="mean",
        std=lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        spread=lambda v: v.max() - v.min(),
        n="count",
    )
    summary["seconds"] = grouped["seconds"].mean()
    return summary.reset_index()


def markdown_table(summary: pd.DataFrame, published: dict[str, dict], metric: str = "mcc") -> str:
    """Tasks as rows, methods as columns (``mean ± std``, best mean in bold), then the published
    best for the same metric where known."""
    methods = list(dict.fromkeys(summary["method"]))
    header = ["task", *methods, f"published best ({metric} x 100)"]
    rule = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    for task, rows in summary.groupby("task", sort=True):
        by_method = rows.set_index("method")
        best = by_method["mean"].max()
        cells = [task]
        for method in methods:
            if method not in by_method.index or not math.isfinite(by_method.at[method, "mean"]):
                cells.append("")
                continue
            entry = by_method.loc[method]
            text = f"{entry['mean']:.1f} ± {entry['std']:.1f}"
            cells.append(f"**{text}**" if entry["mean"] == best else text)
        known = published.get(task)
        cells.append(
            f"{known['value']:.1f} ({known['source']})" if known and known["metric"] == metric else ""
        )
        lines.append("| " + " | ".join(cells) + " |")
    seeds = sorted(set(summary["n"].astype(int)))
    return (
        f"Test {metric} x 100, mean ± standard deviation over {'/'.join(map(str, seeds))} seed(s); "
        "best mean per task in bold.\n\n" + "\n".join(lines) + "\n"
    )


def plot_summary(summary: pd.DataFrame, published: dict[str, dict], path: Path, metric: str = "mcc") -> None:
    """Grouped bars (mean, standard deviation as error bars) per task; the published best as a
    black tick."""
    from genomamba.train.scores import _pyplot, _save_figure

    plt = _pyplot()
    tasks = sorted(set(summary["task"]))
    methods = list(dict.fromkeys(summary["method"]))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(tasks) * max(1, len(methods)) * 0.35 + 2), 4.5))
    x = np.arange(len(tasks))
    for i, method in enumerate(methods):
        rows = summary[summary["method"] == method].set_index("task")
        means = [rows.at[t, "mean"] if t in rows.index else np.nan for t in tasks]
        stds = [rows.at[t, "std"] if t in rows.index else 0.0 for t in tasks]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, label=method, capsize=2)
    for j, task in enumerate(tasks):
        known = published.get(task)
        if known and known["metric"] == metric:
            ax.plot([j - 0.42, j + 0.42], [known["value"]] * 2, color="black", lw=1.5)
    ax.set_xticks(x, tasks, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"test {metric} x 100")
    # beside the axes, so it never hides a bar or a published line
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.set_title("benchmark (black line: published best)")
    fig.tight_layout()  # room for the rotated task names and the legend
    _save_figure(fig, path)


def write_report(out: Path, published: dict[str, dict], metric: str = "mcc") -> pd.DataFrame:
    """``results.md`` and ``results.png`` from ``results.csv``; returns the summary."""
    out = Path(out)
    with _locked(out):
        summary = summarise(read_results(out), metric)
        from genomamba.train.scores import write_text_atomic

        write_text_atomic(out / RESULTS_MD, markdown_table(summary, published, metric))
        if not summary.empty:
            plot_summary(summary, published, out / RESULTS_PNG, metric)
    return summary
