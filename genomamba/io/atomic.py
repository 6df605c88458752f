"""Writing a file so that readers see the old version or the whole new one, never a partial file.

The project's rule for every output (a table, a plot, a task CSV, a metrics file): write to a
temporary sibling, rename it onto the target when complete, remove it if anything fails.

Every temporary is named after its target and the writing process's pid: ``.NAME.tmp-PID...``
(``DIR.tmp-PID`` for token-shard directories). A process killed by SIGKILL cannot remove its
temporary; the pid in the name lets the next writer of the same output recognise it as left by a
dead process and remove it (:func:`genomamba.io.locks.remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

#: The name of a temporary made here (or by ``genomamba.io.tokenize``'s directory swap):
#: NAME.tmp-PID, NAME.old-PID, .NAME.tmp-PID, .NAME.tmp-PID.<anything> or -<anything> (a suffix,
#: mkdtemp's letters, a random token). ``name`` is what the temporary becomes.
TEMPORARY_NAME = re.compile(r"^(?P<hidden>\.?)(?P<name>.+?)\.(?P<kind>tmp|old)-(?P<pid>[0-9]+)(?:[.-].*)?$")


def temporary_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """``.NAME.tmp-PID<suffix>`` beside ``path``: where this process writes ``path`` before renaming."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def temporary_directory(path: str | os.PathLike) -> Path:
    """A new, empty directory ``.NAME.tmp-PID.XXXXXXXX`` beside ``path`` (whose parent must exist),
    to fill and then rename onto ``path``; unique even when one process makes several at once."""
    path = Path(path)
    return Path(tempfile.mkdtemp(prefix=f"{temporary_sibling(path).name}.", dir=path.parent))


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new :func:`temporary_directory` beside ``path`` to fill; the block moves it into
    place (:func:`move_directory_into_place`, or file by file). Whatever is left of it when the
    block ends, normally or by an exception, is removed: a failed write leaves ``path`` as it was."""
    tmp = temporary_directory(path)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def move_directory_into_place(tmp: Path, target: Path) -> None:
    """Rename the filled directory ``tmp`` onto ``target``. An existing ``target`` is moved aside
    and removed only once the new one is in place. ``tmp`` gets the permissions a plain mkdir
    would give (the umask's), not the private mode of a temporary directory, so that a model or an
    output directory written on a shared cluster file system is readable by the group as usual."""
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    if not target.exists():
        os.replace(tmp, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on leaving the block it is renamed onto
    ``path`` (one ``os.replace``), or removed if the block raised (``path`` is then untouched)."""
    path = Path(path)
    tmp = temporary_sibling(path, path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
