"""Fixtures of the inference tests: saved model directories and a FASTA file of real sequence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infer.infer_cases import BINARY_HEAD, MULTICLASS_HEAD, save_model


@pytest.fixture(scope="session")
def mlm_model(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("models") / "mlm", rc_strategy="ph")


@pytest.fixture(scope="session")
def binary_model(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("models") / "binary", rc_strategy="ph", head=BINARY_HEAD)


@pytest.fixture(scope="session")
def multiclass_model(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("models") / "multiclass"
    return save_model(directory, rc_strategy="ps", head=MULTICLASS_HEAD)


@pytest.fixture
def small_fasta(tmp_path, demo_data) -> Path:
    """Three records cut from the committed phage lambda genome (real sequence), of unequal length."""
    from genomamba.io.fasta import read_fasta

    (record,) = list(read_fasta(demo_data / "lambda_virus.fa", softmask=False))
    text = record.ids  # token ids; turn a few slices back into letters
    from genomamba.alphabet import decode

    path = tmp_path / "lambda_pieces.fa"
    pieces = {"a": (0, 300), "b": (5000, 5120), "c": (20000, 20257)}
    path.write_text("".join(f">{name} piece of lambda\n{decode(text[s:e]).decode()}\n"
                            for name, (s, e) in pieces.items()))
    return path
