"""What `make demo` produced and where: the key outputs of a pipeline run, with their sizes.

    python scripts/demo_summary.py results/demo

Standard library only, so that it runs in any Python. Exits 1 naming what is missing when a key
output is not there (the run did not finish).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# (what, glob pattern under the run folder); a folder counts with everything in it
KEY_OUTPUTS = (
    ("pretrained model", "pretrain/model"),
    ("loss curves", "pretrain/metrics.png"),
    ("fine-tuned model", "finetune/run/model"),
    ("test metrics", "finetune/evaluate/metrics.json"),
    ("embeddings", "embed/*.parquet"),
    ("predictions", "predict/*.tsv"),
    ("genome track", "predict/*.bedgraph"),
    ("variant scores", "variants/*/*.tsv"),
)


def human_size(n_bytes: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def test_metrics(run: Path) -> str:
    """The held-out AUROC and MCC of the fine-tuned model, or "" when there are none."""
    path = run / "finetune" / "evaluate" / "metrics.json"
    if not path.is_file():
        return ""
    metrics = json.loads(path.read_text())["metrics"]
    return f"held-out test: AUROC {metrics['auroc']:.3f}, MCC {metrics['mcc']:.3f}"


def main(argv: list[str]) -> int:
    run = Path(argv[0] if argv else "results/demo")
    rows, missing = [], []
    for what, pattern in KEY_OUTPUTS:
        # (pathlib's glob matches hidden names too: the temporaries of a step still running)
        found = sorted(p for p in run.glob(pattern) if not p.name.startswith("."))
        if not found:
            missing.append(f"{what} ({run / pattern})")
        for i, path in enumerate(found):
            shown = f"{path.relative_to(run)}/" if path.is_dir() else str(path.relative_to(run))
            rows.append((what if i == 0 else "", shown, human_size(size_of(path))))
    if missing:
        print(f"demo_summary: missing from {run}: {'; '.join(missing)}", file=sys.stderr)
        return 1
    width = max(len(shown) for _, shown, _ in rows)
    print(f"Done. Key outputs under {run}/:")
    for what, shown, size in rows:
        print(f"  {what:<17} {shown:<{width}}  {size:>8}")
    if summary := test_metrics(run):
        print(f"  {summary}")
    print(f"Logs of every step: {run}/logs/")
    print(f"Plots and tables: snakemake --configfile config/demo.yaml --report {run}/report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
