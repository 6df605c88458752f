"""Fetch the files of a data manifest and prove they are the bytes the manifest names.

For each file of a genome (see :mod:`genomamba.io.manifest`) the sources are tried in order:
the local ``path`` first, then each URL (http, https, ftp or file, through urllib). The bytes
are streamed into a hidden temporary file next to the target while sha256 (and, when a
published md5 list is named, md5) is computed in the same pass; only a file whose digest
matches is renamed onto ``DIR/<genome>/<file>`` (an atomic rename on one file system).
A mismatch removes the temporary file, so a failed fetch leaves nothing behind.
When the entry names a ``deb_member``, the source is a Debian package: it is checked against
``deb_sha256``/``deb_size``, the member is unpacked beside the target
(:mod:`genomamba.io.debian`) and the package is deleted; the member's digest is then checked
as any file's.

Which digest a download must match:

1. the manifest's ``sha256`` when it has one;
2. otherwise (``verify: required-on-first-fetch``) the sha256 recorded in the lock file
   ``DIR/genomamba-fetch.lock.tsv`` by an earlier fetch; the first fetch also checks the
   published md5 list (``md5sums_url``) when one is named and reachable, and then records its
   sha256 there (trust on first use: later fetches, and re-runs, are held to it).

A target that already exists with the expected digest is left alone (re-running is a no-op).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import http.client
import logging
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from genomamba import __version__
from genomamba.errors import InputDataError, UnavailableError
from genomamba.io.compression import sha256_file
from genomamba.io.debian import iter_deb_member
from genomamba.io.directories import made_directories
from genomamba.io.locks import output_lock
from genomamba.io.manifest import FileEntry, Manifest

log = logging.getLogger(__name__)

LOCK_NAME = "genomamba-fetch.lock.tsv"
LOCK_COLUMNS = ("genome", "file", "sha256", "size", "source", "recorded_utc")
CHUNK_BYTES = 1 << 20
_URL_RE = re.compile(r"^(https?|ftp|file)://", re.IGNORECASE)


@dataclass(frozen=True)
class FetchResult:
    """What happened to one file.

    ``status`` is ``fetched`` or ``up-to-date``; ``verified_by`` says which digest it matched:
    ``manifest`` (its sha256), ``lock`` (a sha256 recorded by an earlier fetch), ``md5sums``
    (the published md5 list, first fetch) or ``first-fetch`` (nothing to check against yet:
    recorded now, checked from now on).
    """

    genome: str
    name: str
    path: Path
    sha256: str
    size: int
    status: str
    verified_by: str
    source: str


class _SourceError(Exception):
    """A source could not be read; ``remote`` tells an unreachable URL from a missing local file."""

    def __init__(self, message: str, *, remote: bool):
        super().__init__(message)
        self.remote = remote


def fetch_manifest(
    manifest: Manifest,
    out_dir: str | Path,
    *,
    genomes: Iterable[str] | None = None,
    files: Iterable[str] | None = None,
    lock_path: str | Path | None = None,
    progress: bool = False,
    timeout: float = 60.0,
) -> list[FetchResult]:
    """Fetch the files of ``genomes`` (default: all) into ``out_dir/<genome>/<file>``.

    Args:
        files: only these file names (each must exist in at least one selected genome).
        lock_path: the lock file (default ``out_dir/genomamba-fetch.lock.tsv``).
        progress: show a byte progress bar on stderr.
        timeout: seconds before a silent network connection is given up.

    Raises:
        InputDataError (exit 65): unknown genome or file name, a digest or size mismatch on
            every source, or a missing local file; nothing is left at the target in either case.
        UnavailableError (exit 69): no source could be reached and none gave wrong bytes.
    """
    out_dir = Path(out_dir)
    selected = [manifest.genome(g) for g in genomes] if genomes else list(manifest.genomes.values())
    wanted = set(files) if files else None
    if wanted is not None:
        available = {f.name for g in selected for f in g.files}
        unknown = sorted(wanted - available)
        if unknown:
            raise InputDataError(
                f"{manifest.path}: no file named {unknown} in genome(s) {[g.name for g in selected]}"
            )
    lock = FetchLock(Path(lock_path) if lock_path else out_dir / LOCK_NAME)
    results = []
    for genome in selected:
        for entry in genome.files:
            if wanted is None or entry.name in wanted:
                results.append(fetch_file(entry, out_dir, lock=lock, progress=progress, timeout=timeout))
    return results


def fetch_file(
    entry: FileEntry, out_dir: Path, *, lock: FetchLock, progress: bool = False, timeout: float = 60.0
) -> FetchResult:
    """Fetch one manifest file into ``out_dir/<genome>/<name>``; see :func:`fetch_manifest`."""
    target = out_dir / entry.genome / entry.name
    recorded = lock.get(entry.genome, entry.name)
    if entry.sha256 is not None:
        expected, basis = entry.sha256, "manifest"
    elif recorded is not None:
        expected, basis = recorded, "lock"
    else:
        expected, basis = None, "first-fetch"

    stale = ""
    if target.exists() and expected is not None:
        actual = sha256_file(target)
        if actual == expected:
            log.info("%s/%s is up to date (sha256 %s)", entry.genome, entry.name, actual)
            return FetchResult(
                entry.genome, entry.name, target, actual, target.stat().st_size, "up-to-date", basis, ""
            )
        log.warning("%s has sha256 %s, expected %s: fetching it again", target, actual, expected)
        stale = f" (the existing {target}, sha256 {actual}, was left as it was)"

    md5 = _published_md5(entry, timeout) if expected is None and entry.md5sums_url else None
    # DIR/<genome>/ (and DIR) made here are removed again if the fetch fails: no empty folder is left
    with made_directories(target.parent):
        return _fetch_from_sources(
            entry, target, lock, expected, basis, recorded, md5, stale, progress, timeout
        )


def _fetch_from_sources(
    entry: FileEntry, target: Path, lock: FetchLock, expected: str | None, basis: str,
    recorded: str | None, md5: str | None, stale: str, progress: bool, timeout: float,
) -> FetchResult:
    """Try the sources in order; the first whose bytes check out is renamed onto ``target``."""
    mismatches: list[str] = []
    unreadable: list[_SourceError] = []
    for source in entry.sources:
        try:
            tmp, sha256, md5_actual, size = _download(source, target, progress=progress, timeout=timeout)
        except _SourceError as exc:
            log.warning("%s: %s", entry.name, exc)
            unreadable.append(exc)
            continue
        if entry.deb_member is not None:  # the source was a package: unpack the file out of it
            unpacked, problem = _unpack_member(entry, tmp, sha256, size, target)
            if unpacked is None:
                log.warning("%s from %s: %s", entry.name, source, problem)
                mismatches.append(f"{source}: {problem}")
                continue
            tmp, sha256, md5_actual, size = unpacked
        problem = _compare(entry, expected, md5, sha256, md5_actual, size)
        if problem:
            tmp.unlink(missing_ok=True)
            log.warning("%s from %s: %s", entry.name, source, problem)
            mismatches.append(f"{source}: {problem}")
            continue
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        if basis == "first-fetch" and md5 is not None:
            basis = "md5sums"
        if entry.sha256 is None and recorded != sha256:
            lock.record(entry.genome, entry.name, sha256, size, source)
        log.info("fetched %s/%s from %s (sha256 %s, %s)", entry.genome, entry.name, source, sha256, basis)
        return FetchResult(entry.genome, entry.name, target, sha256, size, "fetched", basis, source)

    attempts = mismatches + [str(exc) for exc in unreadable]
    detail = "; ".join(attempts)
    if mismatches:
        raise InputDataError(
            f"checksum mismatch for {entry.genome}/{entry.name}: {detail}; nothing was written{stale}"
        )
    if all(exc.remote for exc in unreadable):
        raise UnavailableError(f"could not fetch {entry.genome}/{entry.name} from any source: {detail}")
    raise InputDataError(f"could not fetch {entry.genome}/{entry.name}: {detail}")


def _compare(
    entry: FileEntry, expected: str | None, md5: str | None, sha256: str, md5_actual: str, size: int
) -> str | None:
    """Describe why the downloaded bytes are wrong, or return None when they are right."""
    if entry.size is not None and size != entry.size:
        return f"size {size} bytes, expected {entry.size} (sha256 {sha256})"
    if expected is not None and sha256 != expected:
        return f"expected sha256 {expected}, got {sha256}"
    if md5 is not None and md5_actual != md5:
        return f"expected md5 {md5} (from {entry.md5sums_url}), got {md5_actual}"
    return None


def _download(source: str, target: Path, *, progress: bool, timeout: float) -> tuple[Path, str, str, int]:
    """Stream ``source`` into a temporary file beside ``target``; return (tmp, sha256, md5, size).

    The temporary file is removed on every failure, including KeyboardInterrupt.
    """
    with _open_source(source, timeout) as (stream, total):
        bar = _progress_bar(total, target.name, progress)
        try:
            tmp, sha256, md5, size = _write_temp(_read_chunks(stream, source, bar), target)
        finally:
            bar.close()
    if total is not None and size != total:
        tmp.unlink(missing_ok=True)
        raise _SourceError(f"{source}: truncated: got {size} of {total} bytes", remote=True)
    return tmp, sha256, md5, size


def _read_chunks(stream: BinaryIO, source: str, bar) -> Iterator[bytes]:
    size = 0
    try:
        while chunk := stream.read(CHUNK_BYTES):
            size += len(chunk)
            bar.update(len(chunk))
            yield chunk
    except (OSError, http.client.HTTPException) as exc:
        remote = bool(_URL_RE.match(source))
        raise _SourceError(f"{source}: read failed after {size} bytes: {exc}", remote=remote) from exc


def _write_temp(chunks: Iterable[bytes], target: Path) -> tuple[Path, str, str, int]:
    """Write ``chunks`` into a new hidden file beside ``target``, hashing them on the way;
    return (tmp, sha256, md5, size). The file is removed on every failure."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                sha256.update(chunk)
                md5.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, sha256.hexdigest(), md5.hexdigest(), size


def _unpack_member(
    entry: FileEntry, deb: Path, deb_sha256: str, deb_size: int, target: Path
) -> tuple[tuple[Path, str, str, int] | None, str | None]:
    """Check the downloaded package ``deb`` against ``entry.deb_sha256``/``deb_size`` and unpack
    ``entry.deb_member`` beside ``target``: ((tmp, sha256, md5, size), None), or (None, what is
    wrong). ``deb`` is removed either way."""
    try:
        if entry.deb_size is not None and deb_size != entry.deb_size:
            return None, f"package size {deb_size} bytes, expected {entry.deb_size} (sha256 {deb_sha256})"
        if entry.deb_sha256 is not None and deb_sha256 != entry.deb_sha256:
            return None, f"expected package sha256 {entry.deb_sha256}, got {deb_sha256}"
        assert entry.deb_member is not None
        try:
            return _write_temp(iter_deb_member(deb, entry.deb_member, CHUNK_BYTES), target), None
        except InputDataError as exc:
            return None, str(exc)
    finally:
        deb.unlink(missing_ok=True)


@contextlib.contextmanager
def _open_source(source: str, timeout: float) -> Iterator[tuple[BinaryIO, int | None]]:
    """Yield (binary stream, size in bytes or None) for a local path or a URL."""
    if _URL_RE.match(source):
        request = urllib.request.Request(source, headers={"User-Agent": f"genomamba/{__version__}"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _SourceError(f"{source}: {exc}", remote=True) from exc
        with response:
            length = response.headers.get("Content-Length")
            yield response, int(length) if length and length.isdigit() else None
    else:
        try:
            handle = open(source, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise _SourceError(f"{source}: {exc.strerror or exc}", remote=False) from exc
        with handle:
            yield handle, os.fstat(handle.fileno()).st_size


def _published_md5(entry: FileEntry, timeout: float) -> str | None:
    """The md5 that ``entry.md5sums_url`` publishes for this file, or None (with a warning).

    Accepts md5sum output (``<md5>  name``, ``<md5> *name``, ``<md5>  ./name``) and BSD
    ``MD5 (name) = <md5>``. The name looked up is the last path part of the first URL.
    """
    assert entry.md5sums_url is not None
    member = entry.urls[0].rstrip("/").rsplit("/", 1)[-1] if entry.urls else entry.name
    try:
        with _open_source(entry.md5sums_url, timeout) as (stream, _):
            text = stream.read(16 << 20).decode("utf-8", errors="replace")
    except _SourceError as exc:
        log.warning("cannot read the published checksums (%s); %s is checked on first use only", exc, member)
        return None
    for line in text.splitlines():
        gnu = re.match(r"^([0-9a-fA-F]{32})\s+[*]?(?:\./)?(\S+)\s*$", line)
        bsd = re.match(r"^MD5 \((?:\./)?(.+)\) = ([0-9a-fA-F]{32})\s*$", line)
        if gnu and gnu.group(2) == member:
            return gnu.group(1).lower()
        if bsd and bsd.group(1) == member:
            return bsd.group(2).lower()
    log.warning("%s lists no md5 for %s; it is checked on first use only", entry.md5sums_url, member)
    return None


def _progress_bar(total: int | None, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not (enabled and sys.stderr.isatty()),
    )


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class FetchLock:
    """The lock file: sha256 digests recorded by first fetches (TSV, columns ``LOCK_COLUMNS``).

    Several fetches may share one lock (Snakemake runs one job per file), so every update
    re-reads the file under its lock (:func:`genomamba.io.locks.output_lock`, waited for) and
    replaces it atomically.
    """

    def __init__(self, path: Path):
        self.path = path

    def get(self, genome: str, name: str) -> str | None:
        """The recorded sha256 of ``genome/name``, or None."""
        row = self._read().get((genome, name))
        return row["sha256"] if row else None

    def record(self, genome: str, name: str, sha256: str, size: int, source: str) -> None:
        """Record (or replace) the digest of ``genome/name``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with output_lock(self.path, wait=True, clean=False):
            rows = self._read()
            rows[(genome, name)] = {
                "genome": genome,
                "file": name,
                "sha256": sha256,
                "size": str(size),
                "source": source,
                "recorded_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "w", newline="") as out:
                    writer = csv.DictWriter(out, fieldnames=LOCK_COLUMNS, delimiter="\t", lineterminator="\n")
                    writer.writeheader()
                    writer.writerows(rows[key] for key in sorted(rows))
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def _read(self) -> dict[tuple[str, str], dict[str, str]]:
        try:
            with open(self.path, newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t")
                if reader.fieldnames is None or tuple(reader.fieldnames) != LOCK_COLUMNS:
                    raise InputDataError(f"{self.path}: not a genomamba fetch lock (columns {LOCK_COLUMNS})")
                return {(row["genome"], row["file"]): row for row in reader}
        except FileNotFoundError:
            return {}

