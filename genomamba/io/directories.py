"""Folders made for an output, and removed again when the output could not be written.

A command that fails must leave the file system as it found it: no half-written file (that is
:mod:`genomamba.io.atomic`'s job), no empty folder it made on the way (``-o new/sub/out.tsv``
makes ``new/`` and ``new/sub/``), and no half-filled run directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path


def missing_directories(directory: str | os.PathLike) -> list[Path]:
    """``directory`` and those of its parents that do not exist, deepest first."""
    directory = Path(directory)
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


def make_directories(directory: str | os.PathLike) -> list[Path]:
    """``mkdir -p directory``; returns the folders it created, deepest first."""
    missing = missing_directories(directory)
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            path.mkdir()
    return missing


def remove_empty(directories: list[Path]) -> None:
    """Remove ``directories`` (deepest first) while they are empty; stops at the first that is not."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def made_directories(directory: str | os.PathLike) -> Iterator[Path]:
    """Make ``directory`` and its missing parents for the block; if the block raises, the folders
    made here are removed again as far as they are empty (what the block wrote into them is its
    own to remove)."""
    created = make_directories(directory)
    try:
        yield Path(directory)
    except BaseException:
        remove_empty(created)
        raise


@contextlib.contextmanager
def fresh_directory(directory: str | os.PathLike, keep: Callable[[], bool] | None = None) -> Iterator[Path]:
    """For a block that fills the run directory ``directory`` (made by the block, or by this
    function's caller): if the block raises and ``directory`` was absent or empty before, what the
    block wrote there is removed and so are the folders made for it -- unless ``keep()`` says the
    partial output is worth keeping (a checkpoint to resume from). A directory that held files
    before is left alone. Run it under the output's lock (:mod:`genomamba.io.locks`), so that
    nothing but the block wrote into ``directory`` meanwhile."""
    directory = Path(directory)
    missing = missing_directories(directory)
    fresh = bool(missing) or (directory.is_dir() and not any(directory.iterdir()))
    try:
        yield directory
    except BaseException:
        if fresh and not (keep is not None and keep()):
            if directory.is_dir() and not directory.is_symlink():
                for entry in list(directory.iterdir()):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            remove_empty(missing)
        raise
