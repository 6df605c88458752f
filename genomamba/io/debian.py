"""One file out of a Debian binary package (``.deb``), without dpkg.

A ``.deb`` is an ``ar`` archive: the magic ``!<arch>\\n``, then members, each a 60-byte text
header (name 16, mtime 12, uid 6, gid 6, mode 8, size 10, the two bytes ``\\x60\\n``) followed by
``size`` bytes and a padding byte when ``size`` is odd. Its members are ``debian-binary``,
``control.tar.*`` and ``data.tar.*``, the files the package installs (paths like
``./usr/share/doc/pkg/file``). :func:`iter_deb_member` finds ``data.tar``, lets :mod:`tarfile`
undo its compression (xz, gzip, bzip2 or none) and streams one file out of it, so a genome of
tens of megabytes is never held in memory. zstd-compressed data archives (used by some Debian
derivatives, not by Debian itself) are reported as unsupported.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from genomamba.errors import InputDataError

AR_MAGIC = b"!<arch>\n"
_HEADER_BYTES = 60
_TAR_SUFFIXES = ("", ".xz", ".gz", ".bz2")  # what tarfile's "r|*" mode can open


def normalise_member(member: str) -> str:
    """``./usr/x``, ``/usr/x`` and ``usr/x`` all name the same file of a package."""
    while member.startswith("./"):
        member = member[2:]
    return member.lstrip("/")


def iter_deb_member(deb: str | os.PathLike, member: str, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """Yield the bytes of file ``member`` of the package ``deb`` (a path), in chunks.

    Raises:
        InputDataError: ``deb`` is not an ar archive or has no data.tar, its data archive is
            damaged or zstd-compressed, or ``member`` is missing or is not a regular file (a
            link's message names its target, the path to use instead).
    """
    wanted = normalise_member(member)
    with open(deb, "rb") as handle:
        name, size = _find_data_tar(handle, deb)
        suffix = name[len("data.tar") :]
        if suffix not in _TAR_SUFFIXES:
            raise InputDataError(f"{deb}: {name} is not supported (data.tar{'|'.join(_TAR_SUFFIXES)} are)")
        try:
            with tarfile.open(fileobj=_Bounded(handle, size), mode="r|*") as archive:
                for info in archive:
                    if normalise_member(info.name) != wanted:
                        continue
                    if info.issym() or info.islnk():
                        raise InputDataError(
                            f"{deb}: {member} is a link to {info.linkname}; name that file instead"
                        )
                    if not info.isfile():
                        raise InputDataError(f"{deb}: {member} is not a regular file")
                    stream = archive.extractfile(info)
                    assert stream is not None  # a regular file always has a stream
                    while chunk := stream.read(chunk_bytes):
                        yield chunk
                    return
        except (tarfile.TarError, EOFError, OSError) as exc:  # lzma/zlib errors are OSError or EOFError
            raise InputDataError(f"{deb}: damaged {name}: {exc}") from exc
    raise InputDataError(f"{deb}: the package has no file {member}")


def _find_data_tar(handle: BinaryIO, deb: str | os.PathLike) -> tuple[str, int]:
    """Move ``handle`` to the start of the data.tar member; return its name and size."""
    if handle.read(len(AR_MAGIC)) != AR_MAGIC:
        raise InputDataError(f"{deb}: not a Debian package (no ar archive header)")
    while True:
        header = handle.read(_HEADER_BYTES)
        if not header:
            raise InputDataError(f"{deb}: not a Debian package (no data.tar member)")
        if len(header) < _HEADER_BYTES or header[58:60] != b"`\n":
            raise InputDataError(f"{deb}: damaged ar archive (bad member header at byte {handle.tell()})")
        # GNU ar ends names with '/'; dpkg pads them with spaces
        name = header[:16].decode("ascii", errors="replace").rstrip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise InputDataError(f"{deb}: damaged ar archive (bad size of member {name!r})") from None
        if name.startswith("data.tar"):
            return name, size
        handle.seek(size + size % 2, io.SEEK_CUR)


class _Bounded(io.RawIOBase):
    """The next ``size`` bytes of ``handle`` as a read-only stream (one ar member)."""

    def __init__(self, handle: BinaryIO, size: int):
        self._handle, self._left = handle, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        data = self._handle.read(n)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)
