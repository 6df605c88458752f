"""Shared pytest configuration: markers, GPU skipping, and paths to the demo data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# Without CUDA the Triton kernels run in Triton's interpreter. The variable is read when a kernel
# is decorated, so it must be set before anything imports genomamba.kernels.
if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
DEMO_DATA = REPO_ROOT / "data" / "demo"


@pytest.fixture(autouse=True, scope="session")
def _genome_cache_outside_home(tmp_path_factory):
    """Genome indexes and BGZF copies that genomamba keeps per user (genomamba.io.genome_cache) go to a
    temporary folder, for this process and the commands it starts, never to the user's ~/.cache."""
    os.environ["GENOMAMBA_CACHE_DIR"] = str(tmp_path_factory.mktemp("genomamba-cache"))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_slow = pytest.mark.skip(reason="slow; run with --runslow")
    has_cuda = _cuda_available()
    run_slow = config.getoption("--runslow") or os.environ.get("GENOMAMBA_RUN_SLOW") == "1"
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def _scan_case_seeds(request):
    """Each test's random scan cases get seeds of its own (tests/ops/scan_cases.py), whatever ran before.

    Only when the test module uses scan cases at all, so that other tests do not import torch for it.
    """
    cases = sys.modules.get("tests.ops.scan_cases")
    if cases is not None:
        cases.reseed_for_test(request.node.nodeid)


@pytest.fixture(scope="session")
def demo_data() -> Path:
    """Folder holding the committed demo genomes (see docs/data.md for provenance)."""
    return DEMO_DATA


@pytest.fixture(scope="session")
def lambda_shards(tmp_path_factory, demo_data) -> Path:
    """Token shards of the lambda phage genome (48.5 kb) in 512-base windows (pretraining tests)."""
    from genomamba.io.tokenize import TokenizeOptions, tokenize_files

    out = tmp_path_factory.mktemp("shards") / "lambda"
    tokenize_files([demo_data / "lambda_virus.fa"], out, TokenizeOptions(window=512))
    return out
