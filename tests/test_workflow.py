"""genomamba.workflow: where the workflow files are, and `init` writing a copy of them atomically."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from genomamba import workflow

REPO_ROOT = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> dict[str, bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def test_a_source_checkout_reads_the_repository_itself():
    assert workflow.workflow_source() == REPO_ROOT
    files = {p.as_posix() for p in workflow.workflow_files(REPO_ROOT)}
    expected = {"Snakefile", "pipelines/schema/config.schema.yaml", "config/demo.yaml",
                "data_manifests/demo.yaml", "data/demo/yeast_chrI_chrII.fa", "data/demo/lambda_virus.fa.bgz",
                "profiles/slurm/config.yaml"}
    assert expected <= files
    assert {f"pipelines/{p.name}" for p in (REPO_ROOT / "pipelines").glob("*.smk")} <= files
    assert not [f for f in files if f.startswith(("results/", "genomamba/", "tests/"))]


def test_caches_and_indexes_are_left_out_and_a_missing_part_is_named(tmp_path):
    root = tmp_path / "root"
    for rel in ("Snakefile", "pipelines/a.smk", "pipelines/__pycache__/x.pyc", "config/demo.yaml",
                "data_manifests/demo.yaml", "data/demo/g.fa", "data/demo/g.fa.fai", "data/other.fa",
                "profiles/slurm/config.yaml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    listed = [p.as_posix() for p in workflow.workflow_files(root)]
    assert listed == ["Snakefile", "pipelines/a.smk", "config/demo.yaml", "data_manifests/demo.yaml",
                      "data/demo/g.fa", "profiles/slurm/config.yaml"]
    shutil.rmtree(root / "config")
    with pytest.raises(FileNotFoundError, match="config: part of the workflow, not found"):
        workflow.workflow_files(root)


def test_an_installation_without_the_checkout_uses_its_packaged_copy(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "genomamba"
    monkeypatch.setattr(workflow, "_PACKAGE", package)
    with pytest.raises(FileNotFoundError, match="has no workflow files"):
        workflow.workflow_source()
    workflow.copy_workflow(REPO_ROOT, package / workflow.PACKAGED_DIR)
    assert workflow.workflow_source() == package / workflow.PACKAGED_DIR
    workflow.init_workflow(tmp_path / "wf")
    assert _snapshot(tmp_path / "wf") == _snapshot(package / workflow.PACKAGED_DIR)


def test_init_writes_a_byte_identical_copy_and_no_temporary_folder(tmp_path):
    (tmp_path / "wf").mkdir()  # an empty folder is accepted
    files = workflow.init_workflow(tmp_path / "wf")
    copied = _snapshot(tmp_path / "wf")
    assert set(copied) == {p.as_posix() for p in files}
    assert all(copied[name] == (REPO_ROOT / name).read_bytes() for name in copied)
    assert [p.name for p in tmp_path.iterdir()] == ["wf"]
    workflow.init_workflow(tmp_path / "deeper" / "wf")  # missing parents are created
    assert (tmp_path / "deeper" / "wf" / "Snakefile").is_file()


def test_init_refuses_a_non_empty_folder_or_a_file(tmp_path):
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="folder is not empty"):
        workflow.init_workflow(tmp_path / "wf")
    assert _snapshot(tmp_path / "wf") == {"notes.txt": b"mine"}
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        workflow.init_workflow(tmp_path / "file", force=True)


def test_force_replaces_the_workflow_files_and_keeps_the_rest(tmp_path):
    wf = tmp_path / "wf"
    workflow.init_workflow(wf)
    (wf / "config" / "demo.yaml").write_text("edited")
    (wf / "config" / "mine.yaml").write_text("run: mine\n")
    (wf / "results").mkdir()
    (wf / "results" / "out.tsv").write_text("kept")
    workflow.init_workflow(wf, force=True)
    assert (wf / "config" / "demo.yaml").read_bytes() == (REPO_ROOT / "config" / "demo.yaml").read_bytes()
    assert (wf / "config" / "mine.yaml").read_text() == "run: mine\n"
    assert (wf / "results" / "out.tsv").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wf"]


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_copy_leaves_the_destination_as_it_was(tmp_path, monkeypatch, existing):
    wf = tmp_path / "wf"
    if existing:
        wf.mkdir()
        (wf / "Snakefile").write_text("old")
    calls = []
    real_copy = shutil.copy2

    def copy_then_fail(src, dst):
        calls.append(src)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return real_copy(src, dst)

    monkeypatch.setattr(workflow.shutil, "copy2", copy_then_fail)
    with pytest.raises(OSError, match="No space left"):
        workflow.init_workflow(wf, force=existing)
    assert [p.name for p in tmp_path.iterdir()] == (["wf"] if existing else [])
    if existing:
        assert _snapshot(wf) == {"Snakefile": b"old"}
