"""Small benchmark suites for the suite tests: hand-made tasks, and slices of the development suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genomamba.alphabet import encode

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The development suite (ten GUE tasks) beside the checkout; tests read a few rows of it.
SHARED_SUITE = REPO_ROOT.parent / "shared" / "benchmarks"


def write_task(folder: Path, train: str, test: str, dev: str | None = None) -> Path:
    """A task folder with the given CSV texts."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text(train)
    (folder / "test.csv").write_text(test)
    if dev is not None:
        (folder / "dev.csv").write_text(dev)
    return folder


def slice_task(source: Path, folder: Path, n_train: int, n_test: int) -> Path:
    """The first rows of a development-suite task (header kept), as a new task folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", n_train), ("test.csv", n_test)):
        lines = (source / name).read_text().splitlines(keepends=True)
        (folder / name).write_text("".join(lines[: rows + 1]))
    return folder


def gue_slice(folder: Path) -> Path:
    """Two real tasks of the development suite, 160 training and 60 test rows each, under
    ``folder``; skips the calling test when the suite is not beside the checkout."""
    import pytest

    if not SHARED_SUITE.is_dir():
        pytest.skip(f"the development suite is not at {SHARED_SUITE} (it sits beside a project checkout)")
    for name in ("GUE_prom_300_tata", "GUE_splice_reconstructed"):
        slice_task(SHARED_SUITE / name, folder / name, 160, 60)
    return folder


def ids(text: str) -> np.ndarray:
    return encode(text.encode())[0]


def motif_task(n: int, seed: int, length: int = 60, motif: str = "TATAAA", at: int = 20):
    """Random ACGT sequences; class 1 (half of them) carries ``motif`` at ``at``."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], rng.integers(0, 2, size=n)
    for label in labels:
        chars = list(rng.choice(list("ACGT"), size=length))
        if label:
            chars[at : at + len(motif)] = motif
        seqs.append(ids("".join(chars)))
    return seqs, labels.astype(np.int64)
