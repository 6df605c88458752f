"""Shared inputs of the fine-tuning tests: small random tables and configs, the real demo task
and one run trained on it.

The demo task is what `make demo` fine-tunes on (genomamba.tasks.coding on data/demo): yeast
windows labelled coding / intergenic, chrI held out as the test split. Here the windows are
200 bases and 300 per class and split, so a tiny model trains in seconds on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genomamba.tasks.coding import coding_task, write_task_csv
from genomamba.train.finetune import FinetuneConfig, finetune

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "data" / "demo"
_CACHE: dict[str, object] = {}


def quiet(message: str) -> None:
    pass


def random_table(path, n=48, length=40, seed=0, label=None, extra=""):
    """A CSV of random sequences; ``label(seq, i)`` gives each row's label (default: GC-rich or not)."""
    rng = np.random.default_rng(seed)
    lines = ["sequence,label,group" + extra]
    for i in range(n):
        seq = "".join(rng.choice(list("ACGT"), size=int(rng.integers(length // 2, length + 1))))
        text = (
            label(seq, i) if label else ("gc" if (seq.count("G") + seq.count("C")) / len(seq) > 0.5 else "at")
        )
        lines.append(f"{seq},{text},g{i % 8}")
    path.write_text("\n".join(lines) + "\n")
    return path


def small_config(train, out, **changes) -> FinetuneConfig:
    """One epoch of the tiny preset in batches of 8, a quarter of the groups held out."""
    values = dict(train=[str(train)], out=str(out), preset="tiny", epochs=1, batch_size=8, val_fraction=0.25)
    return FinetuneConfig(**{**values, **changes})


def demo_task_csv(folder: Path) -> Path:
    """The demo coding-vs-intergenic task (200-base windows, 300 per class and split) as CSV."""
    rows = coding_task(
        DEMO / "yeast_chrI_chrII.fa",
        DEMO / "yeast_chrI_chrII.gff3",
        window=200,
        per_class=300,
        test_chroms=("chrI",),
        group_size=50_000,
    )
    return write_task_csv(rows, folder / "coding.csv")


def demo_config(train: Path, out: Path, **changes) -> FinetuneConfig:
    """The measured recipe: tiny preset from scratch, 3 epochs of batches of 32, lr 5e-3, 25% of
    the 50-kb groups of chrII held out for validation."""
    values = dict(
        train=[str(train)],
        out=str(out),
        preset="tiny",
        epochs=3,
        batch_size=32,
        lr=5e-3,
        val_fraction=0.25,
        positive="coding",
        patience=0,
        seed=1,
    )
    return FinetuneConfig(**{**values, **changes})


def trained_demo_run(tmp_path_factory):
    """One fine-tuning run on the demo task, shared by the tests of this folder (trained once)."""
    if "run" not in _CACHE:
        folder = tmp_path_factory.mktemp("demo_finetune")
        csv = demo_task_csv(folder)
        _CACHE["run"] = (csv, finetune(demo_config(csv, folder / "out"), log=quiet))
    return _CACHE["run"]
