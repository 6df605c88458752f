"""Fixtures of the pipeline tests: a fresh copy of the workflow, and one demo run for the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.workflow_runs import copy_workflow_into, run_snakemake


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    return copy_workflow_into(tmp_path / "wf")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A workflow copy in which the demo config (what `make demo` runs) has run to the end; the tests
    that read its outputs share it, since the run takes minutes."""
    workdir = copy_workflow_into(tmp_path_factory.mktemp("demo") / "wf")
    result = run_snakemake(workdir, "--cores", "2", "--configfile", "config/demo.yaml", timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"the demo run failed:\n{result.stderr[-4000:]}")
    return workdir
