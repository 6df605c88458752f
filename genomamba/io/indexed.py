"""Random access to FASTA through pyfaidx, with an index that is checked before it is used and
kept where it can be written.

Which index :func:`ensure_index` gives for a FASTA (plain or BGZF; gzip: see below):

1. The one beside it (``FILE.fai``, and ``FILE.gzi`` for BGZF), as ``samtools faidx`` writes it,
   when it passes the checks of :func:`genomamba.io.fai.index_problem` (it parses, fits the file,
   and sampled records are where it says) and is current. Current means, for an index genomamba
   built (its sidecar ``FILE.fai.genomamba.json`` holds the SHA-256 of the index files): the FASTA
   still has the :func:`~genomamba.io.genome_cache.fingerprint` (size, modification time, SHA-256
   of its first and last MiB) recorded when it was built; for any other index (samtools', say):
   its files are not older than the FASTA. Nothing is written then.
2. Otherwise a fresh index, built in a temporary folder and renamed into place under the index's
   lock (:mod:`genomamba.io.locks`): beside the FASTA when its folder can be written and nothing
   but genomamba's own index would be replaced; else in the per-user cache
   (:mod:`genomamba.io.genome_cache`). An index genomamba did not write is never replaced (it may
   serve other tools): the fresh one goes to the cache, and a note says what is wrong with it.

"Can be written" is asked of ``os.access`` first, and a write that still fails with EACCES, EPERM
or EROFS (root ignores permission bits; network file systems and ACLs can refuse what the bits
allow) falls back to the cache too: nothing is ever left half-written beside the input.

Compression is sniffed from the bytes. Plain gzip cannot be read at random positions: such a genome
is read through a BGZF copy made once in the cache (:func:`genomamba.io.genome_cache.bgzf_copy`),
indexed beside the copy. xz/bzip2/zstd are refused with what to do.

A GenBank file (:mod:`genomamba.io.genbank`, any compression) is not indexed: its records are
parsed once and held in memory. GenBank is how bacterial, viral and organelle genomes and single
loci are shared (a few Mb; NCBI ships chromosome-scale assemblies as FASTA), so holding them costs
little, while an indexed FASTA copy would be a second file to keep in step with its source.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from genomamba.alphabet import InvalidCharacterError, encode
from genomamba.errors import InputDataError
from genomamba.io.atomic import temporary_directory
from genomamba.io.compression import sha256_file, sniff_path
from genomamba.io.fai import index_problem
from genomamba.io.genbank import genbank_sequences, is_genbank
from genomamba.io.genome_cache import NOT_WRITABLE, bgzf_copy, cache_folder, cannot_write_cache, fingerprint
from genomamba.io.locks import output_lock
from genomamba.io.records import invalid_character_message

SIDECAR_SUFFIX = ".fai.genomamba.json"
_BGZF_NAMES = (".gz", ".bgz")
_log = logging.getLogger("genomamba.io")
_FINGERPRINT_PARTS = {"size": "size", "mtime_ns": "modification time", "edges_sha256": "first or last MiB"}


@dataclass(frozen=True)
class IndexFiles:
    """Where a FASTA's index is. ``fasta``: the file to read (the input, or the cached BGZF copy
    of a plain-gzip input); ``gzi``: None for plain text; ``sidecar``: what genomamba records of
    an index it built."""

    fasta: str
    fai: str
    gzi: str | None
    sidecar: str

    @property
    def files(self) -> list[str]:
        return [self.fai] if self.gzi is None else [self.fai, self.gzi]


def _beside(fasta: str, bgzf: bool) -> IndexFiles:
    return IndexFiles(fasta, fasta + ".fai", fasta + ".gzi" if bgzf else None, fasta + SIDECAR_SUFFIX)


def _in_cache(fasta: str, bgzf: bool) -> IndexFiles:
    folder = cache_folder(fasta)
    gzi = str(folder / "index.gzi") if bgzf else None
    return IndexFiles(fasta, str(folder / "index.fai"), gzi, str(folder / "index.json"))


def _check_compression(path: str) -> str:
    compression = sniff_path(path)
    if compression in ("xz", "bz2", "zstd"):
        raise InputDataError(
            f"{path}: {compression}-compressed FASTA cannot be read at random positions; decompress it or "
            "recompress it with bgzip"
        )
    lower = path.lower()
    if compression == "bgzf" and not lower.endswith(_BGZF_NAMES):
        raise InputDataError(f"{path}: BGZF-compressed, but its name does not end in .gz or .bgz; rename it")
    if compression == "plain" and lower.endswith(_BGZF_NAMES):
        raise InputDataError(f"{path}: plain text, but its name ends in .gz/.bgz; rename it")
    return compression


def _writable(folder: str) -> bool:
    """What the permission bits say (a write may still fail: see the module docstring)."""
    return os.access(folder, os.W_OK | os.X_OK)


def _read_sidecar(index: IndexFiles) -> dict | None:
    """The sidecar, if it is there and each index file that is there is as it was built (else the
    index, edited or remade by another tool since, is no longer genomamba's)."""
    try:
        with open(index.sidecar, encoding="utf-8") as handle:
            meta = json.load(handle)
        recorded = {index.fai: meta.get("fai_sha256"), index.gzi: meta.get("gzi_sha256")}
        if any(os.path.exists(p) and recorded[p] != sha256_file(p) for p in index.files):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    return meta


def _problem(index: IndexFiles) -> tuple[str | None, bool]:
    """(What is wrong with ``index`` as the index of its FASTA, or None; whether genomamba wrote
    it, so that it may be replaced)."""
    meta = _read_sidecar(index)
    if missing := [p for p in index.files if not os.path.exists(p)]:
        return f"{missing[0]} is missing", meta is not None
    if problem := index_problem(index.fasta, index.fai, index.gzi):
        return problem, meta is not None
    if meta is not None:
        built = meta.get("fasta")
        if not isinstance(built, dict):
            return f"{index.fai} was built by an earlier genomamba", True
        now = fingerprint(index.fasta)
        changed = [shown for key, shown in _FINGERPRINT_PARTS.items() if built.get(key) != now[key]]
        if changed:
            return f"{index.fasta} changed ({', '.join(changed)}) since {index.fai} was built", True
        return None, True
    fasta_mtime = os.stat(index.fasta).st_mtime_ns
    for path in index.files:
        if os.stat(path).st_mtime_ns < fasta_mtime:
            return f"{path} is older than {index.fasta}", False
    return None, False


def _build(path: str, folder: str, bgzf: bool, shown: str) -> dict[str, str]:
    """Build .fai (and .gzi) for ``path`` inside ``folder``; returns their paths."""
    import pyfaidx

    built = {"fai": os.path.join(folder, "index.fai"), "gzi": os.path.join(folder, "index.gzi")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            faidx = pyfaidx.Faidx(path, indexname=built["fai"], gzi_indexname=built["gzi"] if bgzf else None)
            faidx.close()
    except (pyfaidx.FastaIndexingError, ValueError) as exc:
        raise InputDataError(f"{shown}: cannot be indexed for random access: {exc}") from exc
    return built


def _build_into(index: IndexFiles, shown: str, *, force: bool, note: Callable[[str], None]) -> None:
    """Build the index at ``index``'s paths: in a temporary folder beside them, renamed into place
    (the sidecar last), holding the lock of the ``.fai``. A process killed meanwhile leaves only that
    folder, which the next build removes (:func:`genomamba.io.locks.remove_stale_temporaries`).

    Raises:
        InputDataError: pyfaidx cannot index the FASTA.
        OSError: the place cannot be written (nothing is left there).
    """
    with output_lock(index.fai, wait=True, note=note):
        if not force and _problem(index)[0] is None:
            return  # built by another process while this one waited for the lock
        os.makedirs(os.path.dirname(index.fai), exist_ok=True)  # a new cache folder
        folder = str(temporary_directory(index.fai))
        try:
            built = _build(index.fasta, folder, index.gzi is not None, shown)
            if index.gzi is not None:
                os.replace(built["gzi"], index.gzi)
            os.replace(built["fai"], index.fai)
            meta = {
                "source": os.path.realpath(shown),
                "fasta": fingerprint(index.fasta),
                "fai_sha256": sha256_file(index.fai),
                "gzi_sha256": sha256_file(index.gzi) if index.gzi is not None else None,
            }
            with open(os.path.join(folder, "index.json"), "w", encoding="utf-8") as handle:
                json.dump(meta, handle, indent=1)
            os.replace(handle.name, index.sidecar)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def ensure_index(
    path: str | os.PathLike, *, rebuild: bool = False, note: Callable[[str], None] | None = None
) -> IndexFiles:
    """Find or make the index of the FASTA ``path``; see the module docstring for where.

    Args:
        rebuild: build a fresh index even if a valid one exists.
        note: receives one line when the index is not where it is looked for first (in the cache,
            and why), when a stale one is rebuilt, and when a BGZF copy is made (default: the
            ``genomamba.io`` logger's warning).

    Raises:
        InputDataError: xz/bzip2/zstd input, a name that contradicts the compression, a FASTA
            pyfaidx cannot index (e.g. lines of unequal length inside a record), truncated gzip.
        CacheUnwritableError: the index belongs in the cache and the cache cannot be written.
    """
    shown = str(path)
    note = note or _log.warning
    compression = _check_compression(shown)
    fasta = bgzf_copy(shown, note=note) if compression == "gzip" else shown
    bgzf = compression in ("bgzf", "gzip")
    beside = _beside(fasta, bgzf)
    folder = os.path.dirname(os.path.abspath(fasta))
    present = [p for p in beside.files if os.path.exists(p)]
    problem, ours = _problem(beside) if present else (None, False)
    if present and problem is None and not rebuild:
        return beside
    if (ours or not present) and _writable(folder):
        try:
            _build_into(beside, shown, force=rebuild, note=note)
        except OSError as exc:
            if exc.errno not in NOT_WRITABLE:
                raise
        else:
            if problem is not None:
                note(f"{shown}: {problem}; rebuilt it")
            return beside
    if problem is not None and not ours:
        reason = f"{problem} (left as it is: genomamba did not write it)"
    elif present and not ours:
        reason = f"{beside.fai} was not written by genomamba (left as it is)"
    else:
        reason = problem or f"{folder} cannot be written"
    cached = _in_cache(fasta, bgzf)
    where = os.path.dirname(cached.fai)
    if not rebuild and os.path.exists(cached.fai) and _problem(cached)[0] is None:
        if present:  # said on every use: the index beside the FASTA is the user's to fix
            note(f"{shown}: {reason}; using the index kept in {where}")
        return cached
    try:
        _build_into(cached, shown, force=rebuild, note=note)
    except OSError as exc:
        if exc.errno in NOT_WRITABLE:
            raise cannot_write_cache(shown, where, exc) from exc
        raise
    note(f"{shown}: {reason}; its index is kept in {where}")
    return cached


class IndexedFasta:
    """Fetch ``(record, start, end)`` (0-based, half-open) from a plain, BGZF or gzip FASTA, or from a
    GenBank file (held in memory; see the module docstring).

    Args:
        path: the FASTA; its index is found or made by :func:`ensure_index`.
        rebuild: rebuild the index even if one exists.
        note: receives :func:`ensure_index`'s notes (where the index is kept, a BGZF copy made).

    Raises:
        InputDataError: see :func:`ensure_index`; for GenBank, what
            :func:`genomamba.io.genbank.genbank_sequences` rejects.
        CacheUnwritableError: see :func:`ensure_index`.
    """

    def __init__(
        self, path: str | os.PathLike, *, rebuild: bool = False, note: Callable[[str], None] | None = None
    ):
        import pyfaidx

        self.path = str(path)
        self._faidx = None
        if is_genbank(self.path):
            self._sequences = genbank_sequences(self.path)
            self.lengths: dict[str, int] = {name: len(seq) for name, seq in self._sequences.items()}
            return
        index = ensure_index(self.path, rebuild=rebuild, note=note)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyfaidx's own mtime check; ours is done above
            self._faidx = pyfaidx.Faidx(
                index.fasta,
                indexname=index.fai,
                gzi_indexname=index.gzi,
                as_raw=True,
                rebuild=False,
                build_index=False,
                strict_bounds=True,
            )
        self.lengths = {name: int(entry.rlen) for name, entry in self._faidx.index.items()}

    def __enter__(self) -> IndexedFasta:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._faidx is not None:
            self._faidx.close()

    def fetch(self, record: str, start: int, end: int) -> bytes:
        """The bases ``[start, end)`` of ``record`` as they are in the file (case kept).

        Raises:
            InputDataError: unknown record, or a region outside it.
        """
        if record not in self.lengths:
            raise InputDataError(f"{self.path}: no record named '{record}'")
        length = self.lengths[record]
        if not 0 <= start <= end <= length:
            raise InputDataError(
                f"{self.path}: region {record}:{start}-{end} (0-based, half-open) is outside '{record}' "
                f"of length {length}"
            )
        if start == end:
            return b""
        if self._faidx is None:
            return self._sequences[record][start:end]
        sequence = self._faidx.fetch(record, start + 1, end)  # pyfaidx: 1-based, inclusive
        return str(sequence).encode("ascii").replace(b"\r", b"")

    def fetch_ids(
        self, record: str, start: int, end: int, *, rna: bool = False, lenient: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (uint8) and soft-mask track (bool) of ``[start, end)`` of ``record``."""
        raw = self.fetch(record, start, end)
        try:
            ids, softmask, _ = encode(raw, rna=rna, lenient=lenient, want_softmask=True)
        except InvalidCharacterError as exc:
            raise InputDataError(
                f"{self.path}: record '{record}', position {start + exc.offset + 1}: "
                f"{invalid_character_message(exc.byte)}"
            ) from None
        return ids, softmask
