"""Compression sniffing and streaming decompression (genomamba.io.compression)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import sys

import pytest
from Bio import bgzf

from genomamba.errors import InputDataError
from genomamba.io.compression import BGZF_EOF, open_input, sha256_file, sniff_compression, sniff_path

TEXT = b">r1\n" + b"ACGT" * 5000 + b"\n>r2\n" + b"N" * 30000 + b"\n"


def write_bgzf(path, data: bytes) -> None:
    writer = bgzf.BgzfWriter(str(path), "wb")
    writer.write(data)
    writer.close()


def make(tmp_path, kind: str, data: bytes = TEXT):
    path = tmp_path / f"input.{kind}"
    if kind == "plain":
        path.write_bytes(data)
    elif kind == "gzip":
        path.write_bytes(gzip.compress(data))
    elif kind == "bgzf":
        write_bgzf(path, data)
    elif kind == "xz":
        path.write_bytes(lzma.compress(data))
    elif kind == "bz2":
        path.write_bytes(bz2.compress(data))
    return path


def read_all(path, block_size=1 << 20) -> tuple[bytes, object]:
    with open_input(path, block_size=block_size) as stream:
        blocks = list(stream.blocks())
    assert all(len(b) <= block_size for b in blocks) or stream.compression == "plain"
    return b"".join(blocks), stream


@pytest.mark.parametrize("kind", ["plain", "gzip", "bgzf", "xz", "bz2"])
def test_sniffed_from_bytes_not_name_and_round_trips(tmp_path, kind):
    path = make(tmp_path, kind)
    misleading = tmp_path / "genome.txt"  # the name says nothing
    path.rename(misleading)
    assert sniff_path(misleading) == kind
    data, stream = read_all(misleading)
    assert data == TEXT
    assert stream.compression == kind
    assert stream.sha256 == hashlib.sha256(misleading.read_bytes()).hexdigest() == sha256_file(misleading)
    assert stream.raw_bytes_read == misleading.stat().st_size


@pytest.mark.parametrize("kind", ["gzip", "bgzf", "xz", "bz2"])
def test_small_blocks_bound_output(tmp_path, kind):
    # 30,000 N compress to almost nothing: each block must still respect the bound.
    data, _ = read_all(make(tmp_path, kind), block_size=4096)
    assert data == TEXT


def test_multi_member_gzip_and_trailing_zeros(tmp_path):
    path = tmp_path / "multi.gz"
    path.write_bytes(gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:]) + b"\0" * 512)
    assert read_all(path)[0] == TEXT


def test_concatenated_xz_streams(tmp_path):
    path = tmp_path / "multi.xz"
    path.write_bytes(lzma.compress(TEXT[:77]) + lzma.compress(TEXT[77:]))
    assert read_all(path)[0] == TEXT


def test_bgzf_is_recognised_and_has_eof_block(tmp_path):
    path = make(tmp_path, "bgzf")
    assert sniff_compression(path.read_bytes()[:32]) == "bgzf"
    assert path.read_bytes().endswith(BGZF_EOF)
    assert sniff_compression(gzip.compress(b"x")) == "gzip"


@pytest.mark.parametrize("kind", ["gzip", "bgzf", "xz", "bz2"])
def test_truncated_stream_is_an_error(tmp_path, kind):
    path = make(tmp_path, kind)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(
        InputDataError, match=rf"{path}: truncated {'BGZF' if kind == 'bgzf' else kind} stream"
    ):
        read_all(path)


def test_bgzf_cut_at_a_block_boundary_is_detected_by_missing_eof_marker(tmp_path):
    path = make(tmp_path, "bgzf")
    path.write_bytes(path.read_bytes()[: -len(BGZF_EOF)])
    with pytest.raises(InputDataError, match="without its end-of-file marker block: it is truncated"):
        read_all(path)


def test_corrupt_gzip_and_garbage_after_end(tmp_path):
    path = tmp_path / "bad.gz"
    raw = bytearray(gzip.compress(TEXT))
    raw[20:40] = b"\xff" * 20
    path.write_bytes(bytes(raw))
    with pytest.raises(InputDataError, match="corrupt gzip data"):
        read_all(path)
    path.write_bytes(gzip.compress(TEXT) + b"garbage")
    with pytest.raises(InputDataError):
        read_all(path)


def test_zstd_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "x.fa.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 20)
    with pytest.raises(InputDataError, match="zstd-compressed input is not supported"):
        open_input(path)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputDataError, match="cannot open"):
        open_input(tmp_path / "absent.fa")


def test_stdin(monkeypatch):
    payload = gzip.compress(TEXT)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
    with open_input("-") as stream:
        assert stream.name == "<stdin>"
        assert b"".join(stream.blocks()) == TEXT
        assert stream.sha256 == hashlib.sha256(payload).hexdigest()
        assert stream.size is None
