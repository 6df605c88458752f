"""Token shards (genomamba.io.shards): streamed .npy files, the parquet index and the reader."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from genomamba import alphabet as ab
from genomamba.io.shards import FORMAT, FORMAT_VERSION, MANIFEST, ShardWriter, TokenShards, npy_header


def test_npy_header_is_fixed_size_and_loadable(tmp_path):
    for n in (0, 7, 10**12):
        assert len(npy_header(n)) == 128
    path = tmp_path / "a.npy"
    path.write_bytes(npy_header(5) + bytes([5, 6, 7, 8, 9]))
    assert np.load(path).tolist() == [5, 6, 7, 8, 9]
    assert np.load(path, mmap_mode="r").dtype == np.uint8


def write_directory(tmp_path, windows, shard_tokens=25):
    writer = ShardWriter(tmp_path, shard_tokens=shard_tokens)
    for record, start, ids, mask in windows:
        writer.add(record, start, start + ids.size, ids, mask)
    shards = writer.close()
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "shards": shards}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    return shards


def test_write_and_read_back(tmp_path):
    rng = np.random.default_rng(0)
    windows = []
    for i in range(7):
        n = int(rng.integers(1, 20))
        windows.append((f"chr{i % 2}", i * 100, rng.integers(5, 10, n).astype(np.uint8), rng.random(n) < 0.5))
    shards = write_directory(tmp_path, windows)
    assert len(shards) > 1  # 25-token shards force several
    assert sum(s["n_windows"] for s in shards) == 7
    reader = TokenShards(tmp_path)
    assert len(reader) == 7
    for i, (record, start, ids, mask) in enumerate(windows):
        got = reader[i]
        assert isinstance(got, np.memmap) or isinstance(got.base, np.memmap)
        assert np.array_equal(got, ids)
        assert np.array_equal(reader.softmask(i), mask)
        assert reader.coordinates(i) == (record, start, start + ids.size)
        assert np.array_equal(reader.get(i, strand="-"), ab.reverse_complement(ids))
        assert np.array_equal(reader.softmask(i, strand="-"), mask[::-1])
    assert reader.windows_of("chr1") == [1, 3, 5]
    table = pq.read_table(tmp_path / "index.parquet")
    assert table.column_names == [
        "record", "start", "end", "strand", "shard", "offset", "length", "mask_offset",
        "n_fraction", "softmask_fraction", "input",
    ]  # fmt: skip
    assert set(table.column("strand").to_pylist()) == {"+"}
    frame = table.to_pandas()
    assert (frame["end"] - frame["start"] == frame["length"]).all()
    for i, (_, _, ids, mask) in enumerate(windows):
        assert frame["n_fraction"][i] == pytest.approx(np.mean(ids == ab.N_ID))
        assert frame["softmask_fraction"][i] == pytest.approx(np.mean(mask))


def test_every_shard_memory_maps(tmp_path):
    shards = write_directory(tmp_path, [("a", 0, np.full(30, ab.A_ID, np.uint8), None)] * 3)
    for shard in shards:
        tokens = np.load(tmp_path / shard["tokens"], mmap_mode="r")
        assert tokens.shape == (shard["n_tokens"],) and (tokens == ab.A_ID).all()


def test_padded_window_minus_strand_keeps_padding_at_the_end(tmp_path):
    ids = np.array([ab.A_ID, ab.C_ID, ab.PAD_ID, ab.PAD_ID], np.uint8)
    writer = ShardWriter(tmp_path)
    writer.add("r", 10, 12, ids, np.array([True, False, False, False]))
    shards = writer.close()
    (tmp_path / MANIFEST).write_text(
        json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "shards": shards})
    )
    reader = TokenShards(tmp_path)
    assert reader.get(0, "-").tolist() == [ab.G_ID, ab.T_ID, ab.PAD_ID, ab.PAD_ID]
    assert reader.softmask(0, "-").tolist() == [False, True, False, False]
    assert reader.index.column("n_fraction").to_pylist() == [0.0]
    with pytest.raises(ValueError):
        reader.get(0, "x")
    with pytest.raises(IndexError):
        reader.get(5)


def test_reader_refuses_other_directories(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a version-1"):
        TokenShards(tmp_path)
