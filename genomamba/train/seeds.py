"""Several fine-tuning seeds and their summary, as published DNA-model tables report them.

``finetune_seeds(config, seeds)`` runs :func:`genomamba.train.finetune.finetune` once per seed into
``OUT/seed-N/`` (the data are read and checked once, before anything is written) and then writes

* ``OUT/summary.json``: per split (``test`` when there is test data, and ``val``) and scalar metric:
  ``mean``, ``std`` (sample standard deviation, n-1; 0 for one seed), ``spread`` (max - min),
  ``min``, ``max`` and the per-seed ``values`` (None where a metric was undefined for a seed:
  those seeds are left out of the statistics and counted in ``n``);
* ``OUT/summary.md``: the same as a Markdown table, ``mean ± std`` and the spread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from genomamba.runtime.log import stderr_log
from genomamba.train.finetune import check_out_dir, finetune
from genomamba.train.finetune_data import FinetuneConfig, Prepared, load_data
from genomamba.train.scores import write_json_atomic, write_text_atomic

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
_SCALARS = (
    "accuracy",
    "label_accuracy",
    "mcc",
    "f1",
    "precision",
    "recall",
    "auroc",
    "auprc",
    "loss",
    "mse",
    "rmse",
    "mae",
    "r2",
    "pearson",
    "spearman",
)


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``; also ranges ``"1-5"``. Raises ValueError on anything else,
    a negative seed or a repeated one."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            low, high = part.split("-", 1)
            seeds.extend(range(int(low), int(high) + 1))
        elif part:
            seeds.append(int(part))
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {text!r}")
    return seeds


def summarise(reports: dict[int, dict]) -> dict:
    """Statistics over seeds of the scalar metrics of each split; ``reports``: seed -> metrics.json."""
    seeds = sorted(reports)
    first = reports[seeds[0]]
    summary = {"task": first["task"], "labels": first["labels"], "seeds": seeds, "splits": {}}
    for split in ("test", "val"):
        blocks = [reports[s].get(split) for s in seeds]
        if any(b is None for b in blocks):
            continue
        table = {}
        for key in _SCALARS:
            if key not in blocks[0]:
                continue
            values = [b.get(key) for b in blocks]
            defined = np.array([v for v in values if v is not None], dtype=np.float64)
            if not defined.size:
                continue
            table[key] = {
                "mean": float(defined.mean()),
                "std": float(defined.std(ddof=1)) if defined.size > 1 else 0.0,
                "spread": float(defined.max() - defined.min()),
                "min": float(defined.min()),
                "max": float(defined.max()),
                "n": int(defined.size),
                "values": values,
            }
        summary["splits"][split] = {"n_examples": blocks[0]["n"], "metrics": table}
    summary["best_epochs"] = [reports[s]["best_epoch"] for s in seeds]
    return summary


def summary_markdown(summary: dict) -> str:
    """``summary.md``: one table per split, mean ± std, spread, min-max."""
    seeds = ", ".join(map(str, summary["seeds"]))
    lines = [
        f"# Fine-tuning over {len(summary['seeds'])} seeds ({seeds})",
        "",
        f"Task: {summary['task']}" + (f" ({', '.join(summary['labels'])})" if summary["labels"] else ""),
        "",
        "Mean ± sample standard deviation over seeds; spread = max − min.",
    ]
    for split, block in summary["splits"].items():
        lines += [
            "",
            f"## {split} ({block['n_examples']} examples)",
            "",
            "| metric | mean ± std | spread | min | max | per seed |",
            "|---|---|---|---|---|---|",
        ]
        for key, s in block["metrics"].items():
            per_seed = ", ".join("–" if v is None else f"{v:.4f}" for v in s["values"])
            lines.append(
                f"| {key} | {s['mean']:.4f} ± {s['std']:.4f} | {s['spread']:.4f} | {s['min']:.4f} "
                f"| {s['max']:.4f} | {per_seed} |"
            )
    return "\n".join(lines) + "\n"


def finetune_seeds(
    config: FinetuneConfig,
    seeds: Sequence[int],
    *,
    prepared: Prepared | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """One fine-tuning run per seed into ``OUT/seed-N``, then ``summary.json``/``summary.md``.

    ``prepared``: data from :func:`~genomamba.train.finetune.load_data` (read here when None).
    Returns the summary. Raises as :func:`~genomamba.train.finetune.finetune`.
    """
    log = log or stderr_log
    out = Path(config.out)
    check_out_dir(out, config.overwrite)
    prepared = prepared or load_data(config)
    reports = {}
    for seed in seeds:
        log(f"--- seed {seed} ---")
        run = config.replace(seed=seed, out=str(out / f"seed-{seed}"))
        reports[seed] = finetune(run, prepared=prepared, progress=progress, log=log).report
    summary = summarise(reports)
    write_json_atomic(out / SUMMARY_JSON, summary)
    write_text_atomic(out / SUMMARY_MD, summary_markdown(summary))
    split = next(iter(summary["splits"]), None)
    if split is not None:
        shown = {
            k: v for k, v in summary["splits"][split]["metrics"].items() if k in ("accuracy", "mcc", "auroc")
        }
        log(
            f"{split} over seeds: "
            + ", ".join(
                f"{k} {v['mean']:.4f} ± {v['std']:.4f} (spread {v['spread']:.4f})" for k, v in shown.items()
            )
        )
    return summary
