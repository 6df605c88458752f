"""Token shards for the training tests, made by the library function `genomamba tokenize` uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from genomamba.io.tokenize import TokenizeOptions, tokenize_files


@pytest.fixture(scope="session")
def all_n_shards(tmp_path_factory) -> Path:
    """Two records of nothing but N."""
    root = tmp_path_factory.mktemp("alln")
    fasta = root / "n.fa"
    fasta.write_text(">a\n" + "N" * 700 + "\n>b\n" + "n" * 300 + "\n")
    tokenize_files([fasta], root / "shards", TokenizeOptions(window=256))
    return root / "shards"
