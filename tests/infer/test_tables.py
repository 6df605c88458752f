"""genomamba.infer.tables: tables written chunk by chunk, renamed into place only when whole."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from genomamba.infer.tables import read_provenance, streaming_table


def _chunks():
    yield pd.DataFrame({"record": ["a", "b"], "start": [0, 5], "emb_0000": [0.5, 1.25]})
    yield pd.DataFrame({"record": ["c"], "start": [9], "emb_0000": [-2.0]})


def _hidden(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_parquet_gets_a_row_group_per_chunk_and_the_provenance(tmp_path):
    out = tmp_path / "t.parquet"
    with streaming_table(out, {"command": "embed"}) as append:
        for chunk in _chunks():
            append(chunk)
    assert pq.ParquetFile(out).num_row_groups == 2
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.concat(list(_chunks()), ignore_index=True))
    assert read_provenance(out) == {"command": "embed"}


@pytest.mark.parametrize("suffix, sep", [(".tsv", "\t"), (".csv", ",")])
def test_text_tables_have_one_header(tmp_path, suffix, sep):
    out = tmp_path / f"t{suffix}"
    with streaming_table(out) as append:
        for chunk in _chunks():
            append(chunk)
    assert out.read_text().count("record") == 1
    pd.testing.assert_frame_equal(pd.read_csv(out, sep=sep), pd.concat(list(_chunks()), ignore_index=True))


@pytest.mark.parametrize("suffix", [".parquet", ".tsv"])
def test_a_failure_after_some_chunks_leaves_the_earlier_file_whole(tmp_path, suffix):
    out = tmp_path / f"t{suffix}"
    out.write_text("an earlier result")
    with pytest.raises(RuntimeError, match="reader failed"), streaming_table(out) as append:
        append(next(_chunks()))
        raise RuntimeError("reader failed")
    assert out.read_text() == "an earlier result"
    assert _hidden(tmp_path) == []


def test_no_rows_writes_nothing(tmp_path):
    out = tmp_path / "t.parquet"
    with pytest.raises(ValueError, match="no rows to write"), streaming_table(out):
        pass
    assert not out.exists() and _hidden(tmp_path) == []


def test_unknown_suffix_is_refused_before_the_block_runs(tmp_path):
    ran = []
    with pytest.raises(ValueError, match="must end in one of"), streaming_table(tmp_path / "t.xlsx"):
        ran.append(True)
    assert ran == []


def test_bedgraph_takes_the_window_columns_and_one_value(tmp_path):
    out = tmp_path / "t.bedgraph"
    with pytest.raises(ValueError, match="name its column"), streaming_table(out):
        pass
    with streaming_table(out, track="emb_0000") as append:
        for chunk in _chunks():
            append(chunk.assign(end=chunk["start"] + 4))
    lines = out.read_text().splitlines()
    assert lines[0].startswith('track type=bedGraph name="emb_0000"')
    assert lines[1:] == ["a\t0\t4\t0.5", "b\t5\t9\t1.25", "c\t9\t13\t-2"]


@pytest.mark.parametrize("name", ["t.tsv.gz", "t.csv.gz", "t.bedgraph.gz"])
def test_text_tables_can_be_gzip_compressed(tmp_path, name):
    import gzip

    out = tmp_path / name
    track = "emb_0000" if "bedgraph" in name else None
    with streaming_table(out, track=track) as append:
        for chunk in _chunks():
            append(chunk.assign(end=chunk["start"] + 4))
    plain = tmp_path / name.removesuffix(".gz")
    with streaming_table(plain, track=track) as append:
        for chunk in _chunks():
            append(chunk.assign(end=chunk["start"] + 4))
    assert gzip.decompress(out.read_bytes()) == plain.read_bytes()


def test_parquet_is_not_gzipped_again(tmp_path):
    with pytest.raises(ValueError, match="drop the .gz"), streaming_table(tmp_path / "t.parquet.gz"):
        pass
