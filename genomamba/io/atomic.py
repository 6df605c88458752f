"""Writing a file so that readers see the old version or the whole new one, never a partial file.

The project's rule for every output (a table, a plot, a task CSV, a metrics file): write to a
temporary sibling, rename it onto the target when complete, remove it if anything fails.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on leaving the block it is renamed onto
    ``path`` (one ``os.replace``), or removed if the block raised (``path`` is then untouched)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
