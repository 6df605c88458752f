"""Open an input file (or ``-`` for stdin) and stream its decompressed bytes in large blocks.

The compression is detected from the first bytes (magic numbers), never from the file name:
plain text, gzip, BGZF (gzip whose members carry the ``BC`` extra field), xz and bzip2.
zstd is recognised only to say that it is not supported.

Decompression is bounded per call (``max_length``), so a highly compressible input (a run of
a million N) never expands into one huge string. The SHA-256 of the *raw* input bytes (what is
on disk, compressed or not) is computed on the fly, so no input is read twice.

Errors are :class:`genomamba.errors.InputDataError` naming the file: unreadable file, truncated
or corrupt gzip/BGZF/xz/bzip2 stream, BGZF without its end-of-file marker block, unsupported
compression.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from genomamba.errors import InputDataError

STDIN = "-"
#: Raw bytes read per call. Large reads keep the Python overhead per byte negligible.
RAW_READ_SIZE = 1 << 18
#: Upper bound on one decompressed block handed to the parser.
BLOCK_SIZE = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
BZ2_MAGIC = b"BZh"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: The 28-byte empty block that ends every well-formed BGZF file (SAM/BAM specification §4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def display_name(path: str | os.PathLike) -> str:
    """How a path appears in messages: ``-`` is shown as ``<stdin>``."""
    return "<stdin>" if str(path) == STDIN else str(path)


def sniff_compression(head: bytes) -> str:
    """Name the compression of a stream from its first bytes (at least 18 for BGZF).

    Returns one of ``plain``, ``gzip``, ``bgzf``, ``xz``, ``bz2``, ``zstd``.
    """
    if head.startswith(GZIP_MAGIC):
        # BGZF: FLG.FEXTRA set and a first extra subfield with identifiers 'B', 'C'.
        if len(head) >= 16 and head[3] & 0x04 and head[12:14] == b"BC":
            return "bgzf"
        return "gzip"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(BZ2_MAGIC) and len(head) >= 4 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "plain"


def sniff_path(path: str | os.PathLike) -> str:
    """:func:`sniff_compression` of a file on disk. Raises InputDataError if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return sniff_compression(handle.read(32))
    except OSError as exc:
        raise InputDataError(f"{display_name(path)}: cannot read: {exc.strerror or exc}") from exc


def sha256_file(path: str | os.PathLike, chunk: int = RAW_READ_SIZE) -> str:
    """Hex SHA-256 of a file's bytes as stored on disk."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while data := handle.read(chunk):
            digest.update(data)
    return digest.hexdigest()


class InputStream:
    """One input file opened for streaming; use as a context manager.

    Attributes:
        name: the path as shown in messages (``<stdin>`` for ``-``).
        compression: what :func:`sniff_compression` found.
        size: raw size in bytes (None for stdin).
        raw_bytes_read: raw bytes consumed so far (for progress bars).
        sha256: hex digest of the raw bytes; set once :meth:`blocks` is exhausted.

    Raises:
        InputDataError: the file cannot be opened, or uses zstd.
    """

    def __init__(self, path: str | os.PathLike, *, block_size: int = BLOCK_SIZE):
        self.path = str(path)
        self.name = display_name(path)
        self.block_size = block_size
        self.read_size = min(RAW_READ_SIZE, block_size)
        self.raw_bytes_read = 0
        self.sha256: str | None = None
        self._digest = hashlib.sha256()
        self._tail = b""
        if self.path == STDIN:
            self._handle: BinaryIO = sys.stdin.buffer
            self.size = None
        else:
            try:
                self._handle = open(self.path, "rb")  # noqa: SIM115 - closed in close()
                self.size = os.fstat(self._handle.fileno()).st_size
            except OSError as exc:
                raise InputDataError(f"{self.name}: cannot open: {exc.strerror or exc}") from exc
        self._first = self._read_raw(max(self.read_size, 64))  # enough bytes to sniff BGZF
        self.compression = sniff_compression(self._first)
        if self.compression == "zstd":
            self.close()
            raise InputDataError(
                f"{self.name}: zstd-compressed input is not supported; decompress it (zstd -d) "
                "or recompress it with bgzip"
            )

    def __enter__(self) -> InputStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self.path != STDIN:
            self._handle.close()

    def _read_raw(self, size: int | None = None) -> bytes:
        try:
            data = self._handle.read(size or self.read_size)
        except OSError as exc:
            raise InputDataError(f"{self.name}: read error: {exc.strerror or exc}") from exc
        self._digest.update(data)
        self.raw_bytes_read += len(data)
        self._tail = (self._tail + data)[-len(BGZF_EOF) :] if len(data) < 64 else data[-len(BGZF_EOF) :]
        return data

    def _raw_chunks(self) -> Iterator[bytes]:
        data = self._first
        self._first = b""
        while data:
            yield data
            data = self._read_raw()
        self.sha256 = self._digest.hexdigest()

    def blocks(self) -> Iterator[bytes]:
        """Decompressed bytes in blocks of at most ``block_size`` (plain input: whatever was read).

        Raises:
            InputDataError: truncated or corrupt compressed data.
        """
        if self.compression == "plain":
            yield from self._raw_chunks()
            return
        if self.compression in ("gzip", "bgzf"):
            yield from self._gzip_blocks()
            if self.compression == "bgzf" and self._tail != BGZF_EOF:
                raise InputDataError(
                    f"{self.name}: BGZF file ends without its end-of-file marker block: it is truncated "
                    "(re-download or re-create it with bgzip)"
                )
        else:
            yield from self._xz_bz2_blocks()

    def _truncated(self, label: str) -> InputDataError:
        return InputDataError(
            f"{self.name}: truncated {label} stream: the compressed data ends before the end of the "
            f"stream (after {self.raw_bytes_read} bytes); the file is incomplete"
        )

    def _after_end(self, label: str, data: bytes) -> None:
        """Bytes after the last complete member: NUL padding is tolerated (as gzip does), else error."""
        if data.strip(b"\0"):
            raise InputDataError(f"{self.name}: unexpected data after the end of the {label} stream")

    def _gzip_blocks(self) -> Iterator[bytes]:
        label = "BGZF" if self.compression == "bgzf" else "gzip"
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        finished = False  # only NUL padding seen after a complete member
        try:
            for chunk in self._raw_chunks():
                data = chunk
                while data:
                    if finished:
                        self._after_end(label, data)
                        break
                    if decoder.eof:  # next member (BGZF is a series of gzip members)
                        if not data.startswith(GZIP_MAGIC[:1]) and not data.strip(b"\0"):
                            finished = True
                            break
                        decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
                    out = decoder.decompress(data, self.block_size)
                    if out:
                        yield out
                    # max_length leaves input in unconsumed_tail; a member's end leaves unused_data.
                    data = decoder.unused_data if decoder.eof else decoder.unconsumed_tail
            if not decoder.eof:
                tail = decoder.flush()
                if tail:
                    yield tail
                if not decoder.eof:
                    raise self._truncated(label)
        except zlib.error as exc:
            raise InputDataError(f"{self.name}: corrupt {label} data: {exc}") from exc

    def _xz_bz2_blocks(self) -> Iterator[bytes]:
        label = self.compression
        factory = lzma.LZMADecompressor if label == "xz" else bz2.BZ2Decompressor
        decoder = factory()
        finished = False
        try:
            for chunk in self._raw_chunks():
                data = chunk
                while True:
                    if finished:
                        self._after_end(label, data)
                        break
                    if decoder.eof:  # next stream of a concatenated file
                        data = decoder.unused_data + data
                        if not data:
                            break
                        if not data.strip(b"\0"):
                            finished = True
                            break
                        decoder = factory()
                    if not data and decoder.needs_input:
                        break
                    out = decoder.decompress(data, self.block_size)
                    data = b""  # the decoder keeps what it did not consume
                    if out:
                        yield out
            if not decoder.eof:
                raise self._truncated(label)
        except (lzma.LZMAError, OSError, EOFError) as exc:
            raise InputDataError(f"{self.name}: corrupt {label} data: {exc}") from exc


def open_input(path: str | os.PathLike | Path, *, block_size: int = BLOCK_SIZE) -> InputStream:
    """Open ``path`` (``-`` for stdin) for streaming; see :class:`InputStream`."""
    return InputStream(path, block_size=block_size)


def read_text(path: str | os.PathLike) -> str:
    """A whole (possibly compressed) UTF-8 text file, without a byte-order mark.

    Raises:
        InputDataError: not UTF-8, naming the line.
    """
    with open_input(path) as stream:
        data = b"".join(stream.blocks())
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputDataError(f"{path}: line {line}: not valid UTF-8 text") from None
