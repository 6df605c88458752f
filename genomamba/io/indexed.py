"""Random access to plain or BGZF FASTA through pyfaidx, with an index that is checked, not trusted.

pyfaidx decides whether a ``.fai`` is stale from modification times only; a copied, restored or
regenerated FASTA can be newer or older than its index for reasons unrelated to its content.
Here every ``.fai`` we build gets a sidecar ``<fasta>.fai.genomamba.json`` holding the FASTA's
size and SHA-256 and the SHA-256 of the ``.fai`` (and ``.gzi`` for BGZF). On open:

* sidecar present: the FASTA's size and SHA-256 and the index files' SHA-256 must match, else
  :class:`InputDataError` ("stale or mismatched index"), unless ``rebuild=True``;
* ``.fai`` without sidecar (made by samtools, say): a fresh index is built in a temporary
  folder and compared entry by entry; equal -> the sidecar is written, different -> error;
* no ``.fai``: built into a temporary folder, then renamed into place (never half-written).

Compression is sniffed from the bytes: plain gzip cannot be read at random (error with the
fix: recompress with ``bgzip``, or use a streaming command); xz/bzip2 likewise.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings

import numpy as np

from genomamba.alphabet import InvalidCharacterError, encode
from genomamba.errors import InputDataError
from genomamba.io.compression import sha256_file, sniff_path
from genomamba.io.records import invalid_character_message

SIDECAR_SUFFIX = ".fai.genomamba.json"
_BGZF_NAMES = (".gz", ".bgz")


def _index_paths(path: str) -> dict[str, str]:
    return {"fai": path + ".fai", "gzi": path + ".gzi", "sidecar": path + SIDECAR_SUFFIX}


def _check_compression(path: str) -> str:
    compression = sniff_path(path)
    if compression == "gzip":
        raise InputDataError(
            f"{path}: plain gzip cannot be read at random positions; recompress it with bgzip "
            f"(`zcat {path} | bgzip > {path.removesuffix('.gz')}.bgz.gz`) or use a command that streams "
            "(genomamba validate / tokenize read gzip directly)"
        )
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


def _build(path: str, folder: str, bgzf: bool) -> dict[str, str]:
    """Build .fai (and .gzi) for ``path`` inside ``folder``; returns their paths."""
    import pyfaidx

    built = {"fai": os.path.join(folder, "index.fai"), "gzi": os.path.join(folder, "index.gzi")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            faidx = pyfaidx.Faidx(path, indexname=built["fai"], gzi_indexname=built["gzi"] if bgzf else None)
            faidx.close()
    except (pyfaidx.FastaIndexingError, ValueError, OSError) as exc:
        raise InputDataError(f"{path}: cannot be indexed for random access: {exc}") from exc
    return built


def _read_fai(path: str) -> list[list[str]]:
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n").split("\t")[:5] for line in handle if line.strip()]


def _write_sidecar(path: str, paths: dict[str, str], bgzf: bool, fasta_sha: str) -> None:
    meta = {
        "fasta_size": os.path.getsize(path),
        "fasta_sha256": fasta_sha,
        "fai_sha256": sha256_file(paths["fai"]),
        "gzi_sha256": sha256_file(paths["gzi"]) if bgzf else None,
    }
    tmp = paths["sidecar"] + f".tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)
    os.replace(tmp, paths["sidecar"])


def ensure_index(path: str | os.PathLike, *, rebuild: bool = False) -> dict[str, str]:
    """Make sure ``path`` has a ``.fai`` (and ``.gzi``) that matches it; see the module docstring.

    Returns the index paths (keys ``fai``, ``gzi``, ``sidecar``).

    Raises:
        InputDataError: gzip/xz/bzip2 input, a stale or mismatched index, a FASTA pyfaidx cannot
            index (e.g. lines of unequal length inside a record).
    """
    path = str(path)
    bgzf = _check_compression(path) == "bgzf"
    paths = _index_paths(path)
    fasta_sha = sha256_file(path)
    have_index = os.path.exists(paths["fai"]) and (not bgzf or os.path.exists(paths["gzi"]))
    if have_index and not rebuild and os.path.exists(paths["sidecar"]):
        with open(paths["sidecar"], encoding="utf-8") as handle:
            meta = json.load(handle)
        problems = []
        size = os.path.getsize(path)
        if meta.get("fasta_size") != size:
            problems.append(
                f"the FASTA is now {size} bytes, the index was built for {meta.get('fasta_size')}"
            )
        elif meta.get("fasta_sha256") != fasta_sha:
            problems.append("the FASTA's sha256 differs from the one the index was built for")
        if meta.get("fai_sha256") != sha256_file(paths["fai"]):
            problems.append(f"{paths['fai']} was changed after it was built")
        if bgzf and meta.get("gzi_sha256") != sha256_file(paths["gzi"]):
            problems.append(f"{paths['gzi']} was changed after it was built")
        if problems:
            raise InputDataError(
                f"{path}: stale or mismatched index: {'; '.join(problems)}. Delete {paths['fai']} and "
                f"{paths['sidecar']} to rebuild it (or pass rebuild=True)"
            )
        return paths
    folder = tempfile.mkdtemp(prefix=".genomamba-fai-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        built = _build(path, folder, bgzf)
        if os.path.exists(paths["fai"]) and not rebuild:
            if _read_fai(paths["fai"]) != _read_fai(built["fai"]):
                raise InputDataError(
                    f"{path}: stale or mismatched index: {paths['fai']} does not describe this FASTA (it "
                    f"differs from a freshly built index). Delete it to rebuild it (or pass rebuild=True)"
                )
            if bgzf and not os.path.exists(paths["gzi"]):
                os.replace(built["gzi"], paths["gzi"])
        else:
            if bgzf:
                os.replace(built["gzi"], paths["gzi"])
            os.replace(built["fai"], paths["fai"])
        _write_sidecar(path, paths, bgzf, fasta_sha)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return paths


class IndexedFasta:
    """Fetch ``(record, start, end)`` (0-based, half-open) from a plain or BGZF FASTA.

    Args:
        path: the FASTA; its index is created or checked by :func:`ensure_index`.
        rebuild: rebuild the index even if one exists.

    Raises:
        InputDataError: see :func:`ensure_index`.
    """

    def __init__(self, path: str | os.PathLike, *, rebuild: bool = False):
        import pyfaidx

        self.path = str(path)
        paths = ensure_index(self.path, rebuild=rebuild)
        bgzf = sniff_path(self.path) == "bgzf"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyfaidx's own mtime check; ours is done above
            self._faidx = pyfaidx.Faidx(
                self.path,
                indexname=paths["fai"],
                gzi_indexname=paths["gzi"] if bgzf else None,
                as_raw=True,
                rebuild=False,
                build_index=False,
                strict_bounds=True,
            )
        self.lengths: dict[str, int] = {name: int(entry.rlen) for name, entry in self._faidx.index.items()}

    def __enter__(self) -> IndexedFasta:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
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
