"""The per-user cache of what random access to a genome needs when it cannot sit beside the genome:
its index when the genome's folder cannot be written, and a BGZF copy of a plain-gzip genome.

Where: ``$GENOMAMBA_CACHE_DIR/fai``, else ``$XDG_CACHE_HOME/genomamba/fai``, else
``~/.cache/genomamba/fai``. One folder per version of each genome, named after the file and a key:
the SHA-256 of its absolute path (symbolic links resolved) and of its :func:`fingerprint` (size,
modification time and the SHA-256 of its first and last MiB). A changed genome gets a new folder;
the old one stays until the cache is deleted, which is safe at any time (it is rebuilt on demand).

Why not a checksum of the whole file: the key is computed on every open, before anything is known,
and hashing a mammalian genome (3 GB) would add seconds to every command. A new download, a
different assembly, a truncation or an appended record changes the size, the edges or the
modification time; an edit in the middle that keeps the size is still a new modification time.

Everything is written to a temporary file and renamed into place (:mod:`genomamba.io.atomic`)
while holding the file's lock (:mod:`genomamba.io.locks`): a second process making the same copy
waits for the first and then uses its result, and a reader never sees half a file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from genomamba.errors import EXIT_CANTCREAT, GenomambaError, format_bytes
from genomamba.io.atomic import replacing
from genomamba.io.compression import BGZF_EOF, open_input
from genomamba.io.locks import output_lock

#: Bytes hashed at each end of a file by :func:`fingerprint`.
EDGE_BYTES = 1 << 20
#: Name of the BGZF copy inside a genome's cache folder.
BGZF_COPY = "bgzf.fa.gz"
#: zlib level of the copy: level 1 compresses DNA about ten times faster than level 6 for a copy
#: about 10% larger, and this copy exists for speed, not to save space.
COPY_LEVEL = 1
#: errno values of a place that cannot be written.
NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})

_log = logging.getLogger("genomamba.io")


class CacheUnwritableError(GenomambaError):
    """The cache folder cannot be written either (exit 73, like any output that cannot be created)."""

    exit_code = EXIT_CANTCREAT


def cache_root() -> Path:
    """The folder holding one subfolder per cached genome (see the module docstring)."""
    if os.environ.get("GENOMAMBA_CACHE_DIR"):
        return Path(os.environ["GENOMAMBA_CACHE_DIR"]) / "fai"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "genomamba" / "fai"


def fingerprint(path: str | os.PathLike) -> dict:
    """``{"size", "mtime_ns", "edges_sha256"}`` of a file: what tells one version of it from another
    without reading all of it (the SHA-256 covers the first and last :data:`EDGE_BYTES` and the size)."""
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        digest = hashlib.sha256(str(stat.st_size).encode())
        digest.update(handle.read(EDGE_BYTES))
        if stat.st_size > EDGE_BYTES:
            handle.seek(max(EDGE_BYTES, stat.st_size - EDGE_BYTES))
            digest.update(handle.read(EDGE_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "edges_sha256": digest.hexdigest()}


def cache_folder(path: str | os.PathLike) -> Path:
    """The cache folder of this version of ``path`` (not created here)."""
    real = os.path.realpath(path)
    key = json.dumps({"path": real, **fingerprint(real)}, sort_keys=True)
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(real))[:60]
    return cache_root() / f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def cannot_write_cache(shown: str, folder: Path, exc: OSError) -> CacheUnwritableError:
    """The error for a cache folder that cannot be written, saying how to choose another."""
    return CacheUnwritableError(
        f"{shown}: cannot keep its index in the cache {folder}: {exc.strerror or exc}; set "
        "GENOMAMBA_CACHE_DIR to a writable folder"
    )


def bgzf_copy(path: str | os.PathLike, *, note: Callable[[str], None] | None = None) -> str:
    """The cached BGZF copy of the plain-gzip file ``path`` (random access needs BGZF), made on
    first use with one line to ``note`` (default: the ``genomamba.io`` logger's warning) saying
    where, how big, and that recompressing the input with ``bgzip`` avoids the copy.

    Raises:
        InputDataError: truncated or corrupt gzip data (no copy is left behind).
        CacheUnwritableError: the cache folder cannot be written.
        OSError: writing failed otherwise (a full disk); nothing partial is left.
    """
    shown = str(path)
    note = note or _log.warning
    folder = cache_folder(path)
    target = folder / BGZF_COPY
    if _complete(target):
        return str(target)
    try:
        with output_lock(target, wait=True, note=note):
            if _complete(target):  # made by another process while this one waited
                return str(target)
            folder.mkdir(parents=True, exist_ok=True)
            size = format_bytes(os.path.getsize(path))  # the copy's, within ~15% (level 1 vs gzip's 6)
            stem = shown.removesuffix(".gz")
            note(
                f"{shown}: plain gzip cannot be read at random positions; making a BGZF copy of it "
                f"(about {size}, once) in {folder}. Recompressing it with bgzip avoids the copy: "
                f"zcat {shown} | bgzip > {stem}.bgz"
            )
            _write_bgzf(path, target)
    except OSError as exc:
        if exc.errno in NOT_WRITABLE:
            raise cannot_write_cache(shown, folder, exc) from exc
        raise
    return str(target)


def _complete(copy: Path) -> bool:
    """Whether ``copy`` is there and ends with BGZF's end-of-file block (as every whole one does)."""
    try:
        with open(copy, "rb") as handle:
            handle.seek(-len(BGZF_EOF), os.SEEK_END)
            return handle.read() == BGZF_EOF
    except OSError:
        return False


def _write_bgzf(source: str | os.PathLike, target: Path) -> None:
    from Bio import bgzf

    with replacing(target) as tmp, open_input(source) as stream:
        writer = bgzf.BgzfWriter(str(tmp), "wb", compresslevel=COPY_LEVEL)
        try:
            for block in stream.blocks():
                writer.write(block)
        finally:
            writer.close()  # writes the end-of-file block; on failure `replacing` removes the file
