"""Model directories for the inference tests: tiny seeded models, saved for real (see conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "model"))
from model_cases import make_model  # noqa: E402

from genomamba.model_directory import save_pretrained  # noqa: E402

BINARY_HEAD = {"task": "sequence", "problem_type": "binary", "num_labels": 1, "labels": ["coding"]}
MULTICLASS_HEAD = {"task": "sequence", "problem_type": "multiclass", "num_labels": 3,
                   "labels": ["exon", "intron", "intergenic"]}


def save_model(directory: Path, **overrides) -> Path:
    provenance = None
    if overrides.get("head") == BINARY_HEAD:
        provenance = {"finetune": {"label_map": ["noncoding", "coding"]}}
    return save_pretrained(make_model(dtype=torch.float32, **overrides), directory, provenance=provenance)
