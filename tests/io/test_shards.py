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


# -- checks on open, token ids, checksums ----------------------------------------------------------


def _lambda_like(tmp_path):
    """A directory of three windows in two shards, written by the real writer."""
    rng = np.random.default_rng(1)
    windows = [(f"r{i}", 0, rng.integers(5, 10, 12).astype(np.uint8), None) for i in range(3)]
    write_directory(tmp_path, windows, shard_tokens=24)
    return tmp_path


def test_manifest_records_each_shards_sha256(tmp_path):
    import hashlib

    directory = _lambda_like(tmp_path)
    shards = json.loads((directory / MANIFEST).read_text())["shards"]
    for entry in shards:
        for key in ("tokens", "softmask"):
            assert entry[f"{key}_sha256"] == hashlib.sha256((directory / entry[key]).read_bytes()).hexdigest()
    TokenShards(directory).verify_checksums()  # nothing to report


def test_a_truncated_shard_is_an_input_error_on_open(tmp_path):
    from genomamba.errors import InputDataError

    directory = _lambda_like(tmp_path)
    path = directory / "tokens-00000.npy"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(InputDataError, match=r"tokens-00000\.npy: truncated: 147 bytes on disk, its header "
                                             r"says 24 tokens \(152 bytes\); re-make the directory"):
        TokenShards(directory)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("dtype", r"tokens-00000\.npy: holds int16 of shape \(24,\), a shard holds 1-D uint8 token ids"),
        ("count", r"tokens-00000\.npy: holds 24 tokens, the manifest lists 25"),
        ("missing", r"tokens-00001\.npy: shard file missing"),
        ("garbage", r"tokens-00000\.npy: not a readable \.npy shard"),
        ("index", r"index\.parquet: window 2 \(r2:0-12\) lies outside tokens-00001\.npy"),
    ],
)
def test_damaged_directories_are_input_errors_naming_the_file(tmp_path, damage, message):
    import pyarrow as pa

    from genomamba.errors import InputDataError

    directory = _lambda_like(tmp_path)
    if damage == "dtype":
        np.save(directory / "tokens-00000.npy", np.zeros(24, np.int16))
    elif damage == "count":
        manifest = json.loads((directory / MANIFEST).read_text())
        manifest["shards"][0]["n_tokens"] = 25
        (directory / MANIFEST).write_text(json.dumps(manifest))
    elif damage == "missing":
        (directory / "tokens-00001.npy").unlink()
    elif damage == "garbage":
        (directory / "tokens-00000.npy").write_bytes(b"not numpy at all")
    else:
        table = pq.read_table(directory / "index.parquet")
        offsets = table.column("offset").to_numpy().copy()
        offsets[2] = 5  # 5 + 12 tokens in a 12-token shard
        table = table.set_column(table.column_names.index("offset"), "offset", pa.array(offsets))
        pq.write_table(table, directory / "index.parquet")
    with pytest.raises(InputDataError, match=message):
        TokenShards(directory)


@pytest.mark.parametrize("bad_id", [ab.VOCAB_SIZE, 255, ab.MASK_ID])
def test_token_ids_that_are_not_bases_name_the_window(tmp_path, bad_id):
    from genomamba.errors import InputDataError

    directory = _lambda_like(tmp_path)
    path = directory / "tokens-00001.npy"
    data = bytearray(path.read_bytes())
    data[128 + 3] = bad_id  # the 4th token of the shard's only window (r2)
    path.write_bytes(bytes(data))
    store = TokenShards(directory)  # the layout is fine
    with pytest.raises(InputDataError, match=rf"tokens-00001\.npy: token id {bad_id} at offset 3 \(window 2, "
                                             r"r2:0-12\) is not a base or padding"):
        store.check_tokens()


def test_padding_is_a_valid_token(tmp_path):
    ids = np.array([5, 6, 7, ab.PAD_ID, ab.PAD_ID], np.uint8)
    writer = ShardWriter(tmp_path)
    writer.add("r", 0, 3, ids, None)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "shards": writer.close()}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    TokenShards(tmp_path).check_tokens()


def test_checksums_are_verified_on_request(tmp_path):
    from genomamba.errors import InputDataError

    directory = _lambda_like(tmp_path)
    path = directory / "softmask-00000.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # a flipped bit that every other check lets through
    path.write_bytes(bytes(data))
    store = TokenShards(directory)
    store.check_tokens()
    with pytest.raises(InputDataError, match=r"softmask-00000\.npy: sha256 [0-9a-f]{64}, the manifest rec"):
        store.verify_checksums()
    manifest = json.loads((directory / MANIFEST).read_text())
    for entry in manifest["shards"]:
        del entry["tokens_sha256"], entry["softmask_sha256"]
    (directory / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputDataError, match=r"records no sha256 for tokens-00000\.npy \(made by an older"):
        TokenShards(directory).verify_checksums()
