"""Where the Snakemake workflow's files are, and copying them into a folder (`genomamba workflow init`).

The workflow (the Snakefile, pipelines/, config/, data_manifests/ and the demo data) lives at the top
of the source repository, where `snakemake` runs it from a clone. A wheel carries a copy of the same
files under ``genomamba/workflow_files/``: setup.py's build step copies them there, using the list
below, so the repository keeps the only copy. From a source checkout (editable install, or the
repository on sys.path) the files are read from the repository itself.

Standard library only, and no genomamba imports: setup.py loads this file by path while building,
when genomamba is not importable yet.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
import shutil
from pathlib import Path

# What makes a runnable copy of the workflow, relative to the repository root: the data manifests
# say where the genomes are, relative to themselves, so the layout is kept as it is. profiles/ holds
# the SLURM profile, so an installed workflow runs on a cluster as a clone does.
WORKFLOW_PARTS = ("Snakefile", "pipelines", "config", "data_manifests", "data/demo", "profiles")
# The folder inside the installed package that holds the copy the wheel carries.
PACKAGED_DIR = "workflow_files"
# Never copied: caches, and FASTA indexes that tools write beside the demo genomes when run in place.
IGNORED = ("__pycache__", "*.pyc", ".snakemake", "*.fai", "*.gzi")

_PACKAGE = Path(__file__).resolve().parent


def _is_workflow_root(folder: Path) -> bool:
    return all((folder / part).exists() for part in WORKFLOW_PARTS)


def workflow_source() -> Path:
    """The folder holding WORKFLOW_PARTS: the repository root when genomamba runs from a source
    checkout, else the copy installed with the package.

    Raises FileNotFoundError when neither is there (a build that skipped setup.py's step).
    """
    checkout = _PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and _is_workflow_root(checkout):
        return checkout
    packaged = _PACKAGE / PACKAGED_DIR
    if _is_workflow_root(packaged):
        return packaged
    raise FileNotFoundError(
        f"this genomamba installation has no workflow files (looked in {checkout} and {packaged}); "
        "install a wheel built from the repository (pip wheel .) or run from a clone"
    )


def workflow_files(root: str | os.PathLike) -> list[Path]:
    """Every file of WORKFLOW_PARTS under ``root``, relative to it and sorted, IGNORED left out.

    Raises FileNotFoundError naming a part that ``root`` lacks.
    """
    root = Path(root)
    files: list[Path] = []
    for part in WORKFLOW_PARTS:
        path = root / part
        if path.is_file():
            files.append(Path(part))
        elif path.is_dir():
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not _ignored(d))
                files += [Path(folder, n).relative_to(root) for n in sorted(names) if not _ignored(n)]
        else:
            raise FileNotFoundError(f"{path}: part of the workflow, not found")
    return files


def copy_workflow(root: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Copy the workflow files of ``root`` into ``dest`` (created if needed), keeping the layout.

    Returns the copied files, relative to ``dest``.
    """
    files = workflow_files(root)
    for rel in files:
        target = Path(dest, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(root, rel), target)
    return files


def init_workflow(dest: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write a runnable copy of the workflow into ``dest``; returns the files written (relative).

    The files are copied into a temporary folder beside ``dest`` first, so a failure while copying
    leaves ``dest`` as it was. A new or empty ``dest`` then becomes that folder by one rename. With
    ``force``, a non-empty ``dest`` gets the workflow's files replaced one by one (each by a rename)
    and keeps everything else (results/, a user's own configs).

    Raises FileExistsError if ``dest`` is a file, or a non-empty folder without ``force``.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest}: exists and is not a folder")
    occupied = dest.is_dir() and any(dest.iterdir())
    if occupied and not force:
        raise FileExistsError(
            f"{dest}: folder is not empty (--force replaces the workflow's files in it, keeps the rest)"
        )
    source = workflow_source()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()  # mkdir honours the umask, so the renamed folder gets the usual permissions
    try:
        files = copy_workflow(source, staging)
        if not occupied:
            if dest.is_dir():
                dest.rmdir()
            staging.rename(dest)
        else:
            for rel in files:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / rel, dest / rel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED)
